"""A small HTTP proxy in a thread, for the tests of the Hub client behind an egress proxy: it forwards
absolute-URI requests (`GET http://host/path`, what a client sends for http:// URLs through HTTP_PROXY) and
tunnels CONNECT (what it sends for https://), and records every request it handled. `truncate` (a regex) makes
it answer a matching GET with the first half of the upstream body (a copy source cut short in transit)."""

from __future__ import annotations

import http.client
import re
import select
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authorization", "proxy-connection", "te", "trailer",
              "transfer-encoding", "upgrade", "content-length"}


class Proxy:
    """`with Proxy() as proxy:` -> `proxy.url`, `proxy.seen` (["METHOD target", ...])."""

    def __init__(self, truncate: str | None = None):
        self.seen: list[str] = []
        self.truncate = re.compile(truncate) if truncate else None
        self.truncated = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args) -> None:  # noqa: A002 - quiet
                pass

            def do_CONNECT(self) -> None:  # noqa: N802 - http.server's naming
                proxy.seen.append(f"CONNECT {self.path}")
                host, _, port = self.path.rpartition(":")
                upstream = socket.create_connection((host, int(port)), timeout=30)
                self.send_response(200, "Connection established")
                self.end_headers()
                sockets = [self.connection, upstream]
                while True:
                    ready, _, _ = select.select(sockets, [], [], 30)
                    if not ready:
                        break
                    for sock in ready:
                        data = sock.recv(65536)
                        if not data:
                            upstream.close()
                            self.close_connection = True
                            return
                        (upstream if sock is self.connection else self.connection).sendall(data)

            def _forward(self) -> None:
                proxy.seen.append(f"{self.command} {self.path}")
                url = urlsplit(self.path)
                body = self._body()
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                upstream = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=60)
                upstream.request(self.command, url.path + (f"?{url.query}" if url.query else ""), body=body,
                                 headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                upstream.close()
                if self.command == "GET" and proxy.truncate and proxy.truncate.search(url.path) and data:
                    data = data[: len(data) // 2]
                    proxy.truncated += 1
                self.send_response(answer.status, answer.reason)
                for key, value in answer.getheaders():
                    if key.lower() not in HOP_BY_HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)) if self.command != "HEAD"
                                 else answer.getheader("Content-Length", "0"))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _body(self) -> bytes | None:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else None

            do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _forward  # noqa: N815

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def __enter__(self) -> "Proxy":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
