"""Fault injection: rules that make chosen requests fail, stall or lose their connection.

A rule matches on method, a regex searched in the request path and optionally a substring of the body;
it fires `times` times (-1: until cleared). Actions:
  status  answer with `status` (default 503), a JSON error and `headers` (e.g. 429 with {"Retry-After": "2"})
  delay   sleep `delay` seconds, then act and answer (the client may have timed out by then)
  late    act at once, answer after `delay` seconds (a timeout after the server acted: the answer is lost)
  drop    read half of the request body, then close the connection without answering (a dropped upload)
  stale   answer a read (listing, revision, tree, paths-info, resolve) with the refs as they were `delay` seconds
          ago (a replica lagging behind the writes)
  truncate  an LFS storage upload keeps only the first half of the object it received and answers 200
"""

from __future__ import annotations

import re
import threading
from dataclasses import asdict, dataclass
from typing import Literal

ACTIONS = ("status", "delay", "late", "drop", "stale", "truncate")


@dataclass
class Fault:
    path: str
    action: Literal["status", "delay", "late", "drop", "stale", "truncate"] = "status"
    method: str | None = None
    status: int = 503
    delay: float = 0.0
    times: int = 1
    body_contains: str | None = None
    headers: dict[str, str] | None = None
    fired: int = 0

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown fault action {self.action!r}")
        if self.headers is not None and not (isinstance(self.headers, dict) and all(
                isinstance(k, str) and isinstance(v, str) and "\n" not in k + v and "\r" not in k + v
                for k, v in self.headers.items())):
            raise ValueError("`headers` must map header names to single-line strings")
        if self.action == "drop" and self.body_contains:
            raise ValueError("a `drop` fault fires before the body is read: `body_contains` cannot be used")
        re.compile(self.path)

    def matches(self, method: str, path: str, body: bytes | None) -> bool:
        if self.times >= 0 and self.fired >= self.times:
            return False
        if self.method and self.method.upper() != method:
            return False
        if not re.search(self.path, path):
            return False
        if self.body_contains is not None:
            return body is not None and self.body_contains.encode() in body
        return True

    def as_dict(self) -> dict:
        return asdict(self)


class FaultTable:
    """The armed faults of one emulator (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def list(self) -> list[dict]:
        with self._lock:
            return [f.as_dict() for f in self._faults]

    def take(self, method: str, path: str, body: bytes | None, *, drops: bool) -> Fault | None:
        """The first rule matching this request (only `drop` rules when `drops`, only others otherwise); counts it."""
        with self._lock:
            for fault in self._faults:
                if (fault.action == "drop") == drops and fault.matches(method, path, body):
                    fault.fired += 1
                    return fault
        return None
