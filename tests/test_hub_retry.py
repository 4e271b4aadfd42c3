"""The one retry layer of the `hf://` backend (registry/hubhttp.py): `Retry-After` (seconds or an HTTP date)
is honoured within the time budget, and a wait the budget cannot cover fails at once with a clear error."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from adapterci.registry.hubhttp import HubTransient, retry_after_s, retrying


def test_retry_after_reads_seconds_and_http_dates():
    now = datetime(2026, 12, 6, 12, 0, 0, tzinfo=timezone.utc)
    assert retry_after_s("3", now) == 3.0
    assert retry_after_s("Sun, 06 Dec 2026 12:00:05 GMT", now) == 5.0
    assert retry_after_s("Sun, 06 Dec 2026 11:59:00 GMT", now) == 0.0  # in the past: at once
    assert [retry_after_s(v, now) for v in (None, "", "soon", "-1")] == [None] * 4


def _flaky(failures: list[BaseException]):
    calls: list[float] = []

    def fn() -> str:
        calls.append(time.monotonic())
        if len(calls) <= len(failures):
            raise failures[len(calls) - 1]
        return "done"

    return fn, calls


def _gave_up(exc: BaseException, attempts: int, elapsed: float) -> RuntimeError:
    return RuntimeError(f"gave up after {attempts} attempts in {elapsed:.1f} s: {exc}")


def test_retry_after_sets_the_wait_even_when_the_backoff_is_shorter():
    fn, calls = _flaky([HubTransient("GET /x: HTTP 429", 429, retry_after=0.6)])
    assert retrying(fn, lambda e: isinstance(e, HubTransient), budget_s=5, backoff_s=0.01, describe=_gave_up) == "done"
    assert len(calls) == 2 and calls[1] - calls[0] >= 0.6


def test_retry_after_beyond_the_budget_fails_at_once():
    fn, calls = _flaky([HubTransient("GET /x: HTTP 429", 429, retry_after=30)])
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"gave up after 1 attempts .*HTTP 429"):
        retrying(fn, lambda e: isinstance(e, HubTransient), budget_s=2, backoff_s=0.01, describe=_gave_up)
    assert len(calls) == 1 and time.monotonic() - start < 1


def test_retry_after_is_found_through_the_clients_own_wrapping():
    """The client may re-raise a transport error inside its own exception: the server's wait still counts."""
    try:
        try:
            raise HubTransient("POST /commit: HTTP 503", 503, retry_after=0.4)
        except HubTransient as inner:
            raise OSError("upload failed") from inner
    except OSError as wrapped:
        outer = wrapped
    fn, calls = _flaky([outer])
    assert retrying(fn, lambda e: True, budget_s=5, backoff_s=0.01, describe=_gave_up) == "done"
    assert calls[1] - calls[0] >= 0.4


def test_the_one_guaranteed_retry_waits_a_retry_after_up_to_one_request_timeout():
    """A small budget still gets its one retry after a short `Retry-After` (at most `grace_s`, the per-request
    timeout), and no second one."""
    fn, calls = _flaky([HubTransient("GET /x: HTTP 429", 429, retry_after=0.5)])
    assert retrying(fn, lambda e: True, budget_s=0.2, backoff_s=0.01, describe=_gave_up, grace_s=1) == "done"
    assert calls[1] - calls[0] >= 0.5
    fn, calls = _flaky([HubTransient("GET /x: HTTP 429", 429, retry_after=0.3)] * 2)
    with pytest.raises(RuntimeError, match="gave up after 2 attempts"):
        retrying(fn, lambda e: True, budget_s=0.2, backoff_s=0.01, describe=_gave_up, grace_s=1)
