"""The Hub emulator speaks the Hub API as huggingface_hub expects it: ids, ETags, errors, auth, faults, persistence."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from adapterci.hub_emulator import HubEmulator

REPO_ID = "tester/demo"


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def test_hub_emulator_commits_refs_and_downloads_through_the_client(hub_emulator, tmp_path):
    from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download

    api = HfApi()
    assert api.whoami()["name"] == "tester"
    url = api.create_repo(REPO_ID, private=True)
    assert url == f"{hub_emulator.url}/{REPO_ID}" and api.create_repo(REPO_ID, exist_ok=True) == url
    data = os.urandom(35_000).hex().encode()  # text: a regular git file (LFS: tests/test_hub_emulator_lfs.py)
    info = api.create_commit(REPO_ID, [CommitOperationAdd("w/model.txt", data), CommitOperationAdd("README.md", b"hi")],
                             commit_message="first", commit_description="body")
    assert len(info.oid) == 40 and info.commit_url == f"{hub_emulator.url}/{REPO_ID}/commit/{info.oid}"
    api.create_tag(REPO_ID, tag="v1", revision=info.oid)
    api.create_branch(REPO_ID, branch="canary", revision="v1")
    refs = api.list_repo_refs(REPO_ID)
    assert {t.name: t.target_commit for t in refs.tags} == {"v1": info.oid}
    assert {b.name for b in refs.branches} == {"main", "canary"} and refs.converts == []
    commits = api.list_repo_commits(REPO_ID)
    assert [c.title for c in commits] == ["first", "initial commit"] and commits[0].message == "body"
    files = {f.path: f for f in api.list_repo_tree(REPO_ID, revision="canary", recursive=True)}
    assert set(files) == {".gitattributes", "README.md", "w", "w/model.txt"}
    assert files["w/model.txt"].blob_id == git_sha1(data) and files["w/model.txt"].size == len(data)
    assert files["w/model.txt"].lfs is None
    path = hf_hub_download(REPO_ID, "w/model.txt", revision="v1", cache_dir=tmp_path)
    assert Path(path).read_bytes() == data
    assert Path(path).resolve().name == git_sha1(data)  # the ETag names the cache blob
    assert api.model_info(REPO_ID, revision="v1").sha == info.oid


def test_hub_emulator_errors_carry_the_client_error_codes(hub_emulator):
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import (EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    api = HfApi()
    with pytest.raises(RepositoryNotFoundError):
        api.list_repo_refs("tester/missing")
    api.create_repo(REPO_ID)
    with pytest.raises(RevisionNotFoundError):
        api.model_info(REPO_ID, revision="nope")
    with pytest.raises(EntryNotFoundError):
        api.get_hf_file_metadata(url=f"{hub_emulator.url}/{REPO_ID}/resolve/main/missing.txt")
    first = api.model_info(REPO_ID).sha
    api.create_commit(REPO_ID, [CommitOperationAdd("a.txt", b"a")], commit_message="a", parent_commit=first)
    with pytest.raises(HfHubHTTPError) as stale:  # the head moved since `first`
        api.create_commit(REPO_ID, [CommitOperationAdd("b.txt", b"b")], commit_message="b", parent_commit=first)
    assert stale.value.response.status_code == 412 and "The branch was updated since" in str(stale.value)
    api.create_tag(REPO_ID, tag="v1")
    with pytest.raises(HfHubHTTPError) as conflict:
        api.create_tag(REPO_ID, tag="v1")
    assert conflict.value.response.status_code == 409
    with pytest.raises(HfHubHTTPError) as denied:
        HfApi(token="hf_wrong").create_tag(REPO_ID, tag="v2")
    assert denied.value.response.status_code == 401
    hub_emulator.state.repo("models", REPO_ID).private = True
    with pytest.raises(RepositoryNotFoundError):  # a private repo is invisible without the token
        HfApi(token=False).list_repo_refs(REPO_ID)


def test_hub_emulator_faults_armed_over_http_from_another_process(hub_emulator):
    script = (
        "import json, os, urllib.request\n"
        "req = urllib.request.Request(os.environ['HF_ENDPOINT'] + '/_emulator/faults', method='POST',\n"
        "    data=json.dumps({'path': '/api/whoami', 'status': 503, 'times': 2}).encode())\n"
        "print(urllib.request.urlopen(req).read().decode())\n")
    armed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert armed.returncode == 0 and json.loads(armed.stdout)["times"] == 2
    whoami = urllib.request.Request(f"{hub_emulator.url}/api/whoami-v2",
                                    headers={"authorization": f"Bearer {hub_emulator.token}"})
    codes = []
    for _ in range(3):
        try:
            codes.append(urllib.request.urlopen(whoami).status)
        except urllib.error.HTTPError as exc:
            codes.append(exc.code)
    assert codes == [503, 503, 200]
    faults = json.loads(urllib.request.urlopen(f"{hub_emulator.url}/_emulator/faults").read())
    assert faults[0]["fired"] == 2
    bad = urllib.request.Request(f"{hub_emulator.url}/_emulator/faults", method="POST",
                                 data=json.dumps({"path": "x", "action": "explode"}).encode())
    with pytest.raises(urllib.error.HTTPError) as rejected:
        urllib.request.urlopen(bad)
    assert rejected.value.code == 400


def test_hub_emulator_keeps_repos_in_its_data_dir(tmp_path):
    with HubEmulator(token="t", data_dir=tmp_path) as hub:
        repo = hub.state.create_repo("models", REPO_ID, private=True)
        commit = hub.state.commit(repo, "main", {"a.txt": b"hello"}, [], "add a", "", None)
        hub.state.create_ref(repo, "tag", "v1", commit.id)
    with HubEmulator(token="t", data_dir=tmp_path) as again:
        repo = again.state.repo("model", REPO_ID)  # singular or plural type
        assert repo.tags == {"v1": commit.id} and repo.private
        assert again.state.blobs[repo.commits[commit.id].files["a.txt"]] == b"hello"


def test_hub_emulator_cli_serves_until_interrupted(tmp_path):
    env = {**os.environ, "ADAPTERCI_EMULATOR_TOKEN": "hf_cli_token"}
    proc = subprocess.Popen([sys.executable, "-m", "adapterci", "hub-emulator", "--port", "0", "--data-dir",
                             str(tmp_path / "hub")], env=env, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        url = line.split("serving ")[1].split()[0]
        req = urllib.request.Request(f"{url}/api/whoami-v2", headers={"authorization": "Bearer hf_cli_token"})
        assert json.loads(urllib.request.urlopen(req, timeout=10).read())["name"] == "tester"
        assert "hf_cli_token" not in line
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert proc.returncode == 0
    missing = subprocess.run([sys.executable, "-m", "adapterci", "hub-emulator", "--port", "0"],
                             env={k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "ADAPTERCI_EMULATOR_TOKEN")},
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "needs a token" in missing.stderr


def test_hub_emulator_revisions_ref_names_and_card_metadata_like_the_hub(hub_emulator):
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi()
    api.create_repo(REPO_ID)
    card = b"---\nbase_model: org/base\nlibrary_name: peft\ntags: [lora]\n---\n# demo\n"
    sha = api.create_commit(REPO_ID, [CommitOperationAdd("README.md", card)], commit_message="card").oid
    api.create_tag(REPO_ID, tag="v1", revision=sha[:7])  # a short commit id names the commit
    for rev in (sha[:7], sha[:12], "refs/heads/main", "refs/tags/v1", "v1"):
        assert api.model_info(REPO_ID, revision=rev).sha == sha, rev
    info = api.model_info(REPO_ID)
    assert (info.library_name, info.card_data.base_model) == ("peft", "org/base")
    assert info.tags == ["peft", "lora", "base_model:org/base"]
    for bad in ("", "a b", "../x", "x.lock", "a~1"):
        with pytest.raises(HfHubHTTPError) as refused:
            api.create_tag(REPO_ID, tag=bad, revision=sha)
        assert refused.value.response.status_code == 400, bad
    assert {t.name for t in api.list_repo_refs(REPO_ID).tags} == {"v1"}
    with pytest.raises(ValueError, match="Invalid metadata in README.md"):  # validate-yaml, before any upload
        api.create_commit(REPO_ID, [CommitOperationAdd("README.md", b"---\nbase_model: [1, 2\n---\n")],
                          commit_message="bad card")
    assert api.model_info(REPO_ID).sha == sha


def raw(hub, method: str, path: str, body: bytes = b"", headers: dict | None = None, length: int | None = None,
        close_early: bool = False, chunked: bool = False) -> tuple[int, dict, bytes] | None:
    """One HTTP request over a plain socket (so a body can be cut short); None when the server did not answer.
    `chunked`: no Content-Length (the caller frames the body and sets Transfer-Encoding)."""
    import socket

    host, port = hub.url.rsplit("/", 1)[-1].split(":")
    size = [] if chunked else [f"Content-Length: {len(body) if length is None else length}"]
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", f"Authorization: Bearer {hub.token}", *size,
             "Connection: close", *[f"{k}: {v}" for k, v in (headers or {}).items()]]
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall("\r\n".join(lines).encode() + b"\r\n\r\n" + body)
        if close_early:
            sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    if not data:
        return None
    head, _, payload = data.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    fields = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])
    return status, fields, payload


def test_hub_emulator_rejects_cut_and_malformed_commits_and_serves_ranges(hub_emulator):
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi()
    api.create_repo(REPO_ID)
    data = bytes(range(256)) * 4
    head = api.create_commit(REPO_ID, [CommitOperationAdd("w.bin", data)], commit_message="w").oid
    header = json.dumps({"key": "header", "value": {"summary": "cut"}}).encode()
    line = json.dumps({"key": "file", "value": {"path": "x.txt", "content": "aGk=", "encoding": "base64"}}).encode()
    payload = header + b"\n" + line + b"\n"
    url = f"/api/models/{REPO_ID}/commit/main"
    assert raw(hub_emulator, "POST", url, payload[:-30], length=len(payload), close_early=True) is None
    status, _, body = raw(hub_emulator, "POST", url, header + b"\n" + line[:-20] + b"\n")  # cut mid-line
    assert status == 400 and b"line 2 is malformed" in body
    assert api.model_info(REPO_ID).sha == head  # neither request committed anything
    resolve = f"/{REPO_ID}/resolve/main/w.bin"
    status, fields, body = raw(hub_emulator, "GET", resolve, headers={"Range": "bytes=10-19"})
    assert (status, body, fields["Content-Range"]) == (206, data[10:20], f"bytes 10-19/{len(data)}")
    status, _, body = raw(hub_emulator, "GET", resolve, headers={"Range": "bytes=-4"})
    assert (status, body) == (206, data[-4:])
    status, fields, _ = raw(hub_emulator, "GET", resolve, headers={"Range": f"bytes={len(data)}-"})
    assert (status, fields["Content-Range"]) == (416, f"bytes */{len(data)}")


def test_hub_emulator_late_fault_acts_before_the_answer_is_lost(hub_emulator):
    import httpx2
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(REPO_ID)
    hub_emulator.add_fault(r"/tag/", method="POST", action="late", delay=1.5)
    with pytest.raises(httpx2.TimeoutException):
        httpx2.post(f"{hub_emulator.url}/api/models/{REPO_ID}/tag/main", json={"tag": "v1"}, timeout=0.5,
                    headers={"authorization": f"Bearer {hub_emulator.token}"})
    assert "v1" in {t.name for t in api.list_repo_refs(REPO_ID).tags}  # acted, although the client gave up


def test_hub_emulator_stale_fault_lags_listings_behind_writes(hub_emulator):
    import time

    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(REPO_ID)
    time.sleep(0.3)
    api.create_tag(REPO_ID, tag="v1")
    hub_emulator.add_fault(r"/refs$", method="GET", action="stale", delay=0.2, times=1)
    assert [t.name for t in api.list_repo_refs(REPO_ID).tags] == []  # the listing of 0.2 s ago
    assert [t.name for t in api.list_repo_refs(REPO_ID).tags] == ["v1"]


def test_hub_emulator_rate_limit_carries_retry_after_and_the_client_waits(hub_emulator):
    import time

    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi()
    api.create_repo(REPO_ID)
    hub_emulator.add_fault(r"/preupload/", method="POST", status=429, headers={"Retry-After": "0"}, times=1)
    began = time.monotonic()
    api.create_commit(REPO_ID, [CommitOperationAdd("a.txt", b"a")], commit_message="a")
    assert time.monotonic() - began >= 1.0  # huggingface_hub waits Retry-After + 1 s
    preuploads = [(r["status"], r["fault"]) for r in hub_emulator.requests if r["path"].endswith("/preupload/main")]
    assert preuploads == [(429, "status"), (200, None)]
    hub_emulator.add_fault(r"/whoami", status=429, headers={"Retry-After": "7"})
    status, fields, _ = raw(hub_emulator, "GET", "/api/whoami-v2")
    assert (status, fields["Retry-After"]) == (429, "7")
    bad = urllib.request.Request(f"{hub_emulator.url}/_emulator/faults", method="POST",
                                 data=json.dumps({"path": "x", "headers": {"X-A": "1\r\nSet-Cookie: a"}}).encode())
    with pytest.raises(urllib.error.HTTPError) as rejected:  # a header value cannot smuggle another header
        urllib.request.urlopen(bad)
    assert rejected.value.code == 400


def test_hub_emulator_repo_ids_are_case_insensitive(hub_emulator):
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi()
    url = api.create_repo("Tester/Mixed-Case")
    assert api.create_repo("tester/mixed-case", exist_ok=True) == url
    sha = api.create_commit("TESTER/MIXED-CASE", [CommitOperationAdd("a.txt", b"a")], commit_message="a").oid
    info = api.model_info("tester/mixed-case")
    assert (info.id, info.sha) == ("Tester/Mixed-Case", sha)  # the canonical spelling comes back
    assert api.file_exists("tEsTeR/mIxEd-CaSe", "a.txt")


def test_hub_emulator_paginates_tree_and_commit_listings(hub_emulator):
    from huggingface_hub import CommitOperationAdd, HfApi

    hub_emulator.tree_page, hub_emulator.commits_page = 2, 2
    api = HfApi()
    api.create_repo(REPO_ID)
    for i in range(3):
        api.create_commit(REPO_ID, [CommitOperationAdd(f"d/f{i}.txt", b"%d" % i), CommitOperationAdd(f"g{i}.txt", b"g")],
                          commit_message=f"c{i}")
    start = len(hub_emulator.requests)
    paths = [f.path for f in api.list_repo_tree(REPO_ID, recursive=True)]
    assert paths == sorted([".gitattributes", "d", "d/f0.txt", "d/f1.txt", "d/f2.txt", "g0.txt", "g1.txt", "g2.txt"])
    assert [f.path for f in api.list_repo_tree(REPO_ID, "d")] == ["d/f0.txt", "d/f1.txt", "d/f2.txt"]
    assert [c.title for c in api.list_repo_commits(REPO_ID)] == ["c2", "c1", "c0", "initial commit"]
    pages = [r["path"].split(f"/{REPO_ID}/", 1)[1] for r in hub_emulator.requests[start:]]
    assert pages == ["tree/main"] * 4 + ["tree/main/d"] * 2 + ["commits/main"] * 2  # 2 entries a page, Link: next


def test_hub_emulator_reads_chunked_bodies_and_checks_their_parent(hub_emulator):
    import httpx2
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(REPO_ID)
    first = api.model_info(REPO_ID).sha

    def lines(parent: str, name: str):
        yield json.dumps({"key": "header", "value": {"summary": name, "parentCommit": parent}}).encode() + b"\n"
        yield json.dumps({"key": "file", "value": {"path": name, "content": "aGk=", "encoding": "base64"}}).encode()

    url, auth = f"{hub_emulator.url}/api/models/{REPO_ID}/commit/main", {"authorization": f"Bearer {hub_emulator.token}"}
    landed = httpx2.post(url, content=lines(first, "a.txt"), headers=auth)  # a generator: Transfer-Encoding: chunked
    assert landed.request.headers["transfer-encoding"] == "chunked" and landed.status_code == 200
    head = landed.json()["commitOid"]
    assert set(hub_emulator.state.repo("models", REPO_ID).commits[head].files) == {".gitattributes", "a.txt"}
    stale = httpx2.post(url, content=lines(first, "b.txt"), headers=auth)
    assert stale.status_code == 412 and api.model_info(REPO_ID).sha == head
    cut = b"%x\r\n" % 200 + b"x" * 50  # the client goes away mid-chunk
    assert raw(hub_emulator, "POST", url.split(hub_emulator.url)[1], cut, headers={"Transfer-Encoding": "chunked"},
               length=None, close_early=True, chunked=True) is None
    empty = httpx2.post(url, content=iter([b""]), headers=auth)
    assert empty.status_code == 400 and api.model_info(REPO_ID).sha == head  # no header line: no commit


def test_hub_emulator_replica_lag_reaches_resolve(hub_emulator, tmp_path):
    import time

    import httpx2
    from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download

    api = HfApi()
    api.create_repo(REPO_ID)
    api.create_commit(REPO_ID, [CommitOperationAdd("a.txt", b"old")], commit_message="old")
    time.sleep(0.6)
    api.create_commit(REPO_ID, [CommitOperationAdd("a.txt", b"new")], commit_message="new")
    assert httpx2.post(f"{hub_emulator.url}/_emulator/lag", json={"seconds": 0.5}).json() == {"seconds": 0.5}
    assert Path(hf_hub_download(REPO_ID, "a.txt", cache_dir=tmp_path / "a")).read_bytes() == b"old"
    assert api.list_repo_commits(REPO_ID)[0].title == "old"
    time.sleep(0.5)
    assert Path(hf_hub_download(REPO_ID, "a.txt", cache_dir=tmp_path / "b")).read_bytes() == b"new"
    assert httpx2.post(f"{hub_emulator.url}/_emulator/lag", json={"seconds": -1}).status_code == 400
