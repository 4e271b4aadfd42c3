"""The one retry layer of the `hf://` backend.

huggingface_hub retries some calls itself (`http_backoff`: pagination, preupload, LFS batch; 5 retries and up
to 23 s each) and not others. Wrapping those in a retry loop of our own multiplies the requests and the time
before a clear error. So while a registry call runs (`fail_fast()`), the HTTP transport of the client's shared
session turns every transient failure (5xx, 408, 429, timeouts, dropped connections) into `HubTransient` at
once, before the client's own backoff can see it, and `retrying` is the only place that waits and tries again:
exponential backoff within a total time budget (longer when the server asks for it with `Retry-After`, seconds
or an HTTP date), then one error naming the call, the attempts and the time.

The transport is mounted per URL pattern as httpx does for the environment's proxies (HTTP_PROXY, HTTPS_PROXY,
ALL_PROXY, NO_PROXY, lowercase too): a client given a transport of its own ignores them otherwise.
"""

from __future__ import annotations

import contextvars
import json
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Callable, Iterator, TypeVar

if TYPE_CHECKING:
    import httpx2

T = TypeVar("T")
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_FAIL_FAST: contextvars.ContextVar[bool] = contextvars.ContextVar("adapterci_hub_fail_fast", default=False)


class HubTransient(Exception):
    """A failure worth retrying: a transient HTTP status or a transport error, with what was asked."""

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after  # seconds the server asked us to wait (`Retry-After`), if it did


def retry_after_s(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` in seconds: a number of seconds or an HTTP date (None when absent or unreadable)."""
    if not value or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def client_factory(timeout_s: float) -> Callable[[], "httpx2.Client"]:
    """A huggingface_hub client factory (`set_client_factory`): the client's own event hooks (offline mode,
    request ids), taken from its current session, plus a per-request timeout and a transport that raises
    HubTransient for transient failures while `fail_fast()` is active (otherwise a plain transport), through
    the environment's proxies (read when a client is made)."""
    import httpx2
    from httpx2._utils import get_environment_proxies
    from huggingface_hub import get_session

    hooks = get_session().event_hooks

    class FailFastTransport(httpx2.BaseTransport):
        def __init__(self, inner: httpx2.BaseTransport):
            self.inner = inner

        def handle_request(self, request: httpx2.Request) -> httpx2.Response:
            if not _FAIL_FAST.get():
                return self.inner.handle_request(request)
            what = f"{request.method} {request.url.path}"
            try:
                response = self.inner.handle_request(request)
            except (httpx2.TimeoutException, httpx2.NetworkError, httpx2.RemoteProtocolError) as exc:
                raise HubTransient(f"{what}: {type(exc).__name__} ({exc or 'no answer'})") from exc
            if response.status_code not in TRANSIENT_STATUS:
                return response
            response.read()
            response.close()
            wait = retry_after_s(response.headers.get("retry-after"))
            asked = f" (Retry-After: {wait:.0f} s)" if wait is not None else ""
            raise HubTransient(f"{what}: HTTP {response.status_code} {_error_text(response.content)}".rstrip() + asked,
                               response.status_code, wait)

        def close(self) -> None:
            self.inner.close()

    def make() -> httpx2.Client:
        # a NO_PROXY entry maps to None: the client's own (direct) transport, as httpx's env handling does
        mounts = {pattern: FailFastTransport(httpx2.HTTPTransport(proxy=proxy)) if proxy else None
                  for pattern, proxy in get_environment_proxies().items()}
        return httpx2.Client(event_hooks=hooks, follow_redirects=True, timeout=httpx2.Timeout(timeout_s),
                             transport=FailFastTransport(httpx2.HTTPTransport()), mounts=mounts)

    return make


@contextmanager
def fail_fast() -> Iterator[None]:
    token = _FAIL_FAST.set(True)
    try:
        yield
    finally:
        _FAIL_FAST.reset(token)


def retrying(fn: Callable[[], T], transient: Callable[[BaseException], bool], budget_s: float, backoff_s: float,
             describe: Callable[[BaseException, int, float], Exception], grace_s: float = 0.0) -> T:
    """`fn()`, retried on `transient` failures with exponential backoff (first wait `backoff_s`, at most 8 s; at
    least what a `Retry-After` asked for) while the next attempt can still start within `budget_s` of the first;
    then `describe(last error, attempts, elapsed)` is raised. One retry always (a request that timed out may have
    taken effect, and only asking again tells), after the server's `Retry-After` when that is at most `grace_s`
    (one request timeout: the most a retry may overrun the budget anyway); a longer one ends the call at once.
    Other failures propagate unchanged."""
    start, backoff, attempt = time.monotonic(), backoff_s, 0
    while True:
        attempt += 1
        try:
            with fail_fast():
                return fn()
        except Exception as exc:  # noqa: BLE001 - classified by `transient`
            if not transient(exc):
                raise
            elapsed = time.monotonic() - start
            asked = _retry_after(exc)
            wait = max(backoff, asked or 0.0)
            guaranteed = attempt == 1 and (asked is None or asked <= grace_s)
            if elapsed + wait > budget_s and not guaranteed:
                raise describe(exc, attempt, elapsed) from exc
        time.sleep(wait)
        backoff = min(backoff * 2, 8.0)


def causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and the exceptions it was raised from or while handling, outermost first."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _retry_after(exc: BaseException) -> float | None:
    """The `Retry-After` of a HubTransient, also when the client wrapped it in an exception of its own."""
    return next((e.retry_after for e in causes(exc) if isinstance(e, HubTransient)), None)


def _error_text(body: bytes) -> str:
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        return ""
    return str(data.get("error") or "")[:200] if isinstance(data, dict) else ""
