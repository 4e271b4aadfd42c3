"""Every `ADAPTERCI_*` environment variable, read in this one place and typed.

Read when asked (`current()`), never cached: a test or a wrapper that changes the environment is seen at once.
Options that click reads from the environment itself name their variable here too."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from adapterci.errors import UsageError

HOME = "ADAPTERCI_HOME"  # per-user state: the converted GGUF cache (default ~/.cache/adapterci)
CACHE_DIR = "ADAPTERCI_CACHE_DIR"  # root of the run caches (default .adapterci/cache beside the config)
TRUST_DOMAIN = "ADAPTERCI_TRUST_DOMAIN"  # default-branch | pr | local (default local), see adapterci.trust
REGISTRY = "ADAPTERCI_REGISTRY"  # overrides the config's `registry` (the GitHub Action's input)
RAISE_ERRORS = "ADAPTERCI_RAISE_ERRORS"  # let internal errors propagate with their traceback
HUB_RETRY_S = "ADAPTERCI_HUB_RETRY_S"  # time budget of one Hub call's retries (default 20 s)
HUB_BACKOFF = "ADAPTERCI_HUB_BACKOFF"  # first wait between retries (default 1 s)
HUB_TIMEOUT = "ADAPTERCI_HUB_TIMEOUT"  # per Hub request (default 60 s)
CANARY_LOGS = "ADAPTERCI_CANARY_LOGS"  # `adapterci canary --logs` (read by click)
EMULATOR_TOKEN = "ADAPTERCI_EMULATOR_TOKEN"  # `adapterci hub-emulator --token` (read by click)
CACHE_KEY = "ADAPTERCI_CACHE_KEY"  # seals the caches a trusted run shares; only the release environment holds it
# Set by the CI service, not by us: GitHub Actions (and act) set both, most other CI services set `CI`
GITHUB_ACTIONS, CI = "GITHUB_ACTIONS", "CI"


@dataclass(frozen=True)
class Settings:
    home: Path
    cache_dir: Path | None
    trust_domain: str
    registry: str | None
    raise_errors: bool
    hub_retry_s: float
    hub_backoff_s: float
    hub_timeout_s: float
    in_ci: bool  # a CI job (GITHUB_ACTIONS=true or CI set), not a person's machine
    cache_key: str | None = field(default=None, repr=False)  # a secret: never in a repr, a log or a report


def current() -> Settings:
    """The settings of this process, from its environment now."""
    env = os.environ
    home = env.get(HOME) or Path(env.get("XDG_CACHE_HOME", "~/.cache")) / "adapterci"
    return Settings(
        home=Path(home).expanduser(),
        cache_dir=Path(env[CACHE_DIR]).expanduser() if env.get(CACHE_DIR) else None,
        trust_domain=env.get(TRUST_DOMAIN) or "local",
        registry=env.get(REGISTRY) or None,
        raise_errors=bool(env.get(RAISE_ERRORS)),
        hub_retry_s=_seconds(HUB_RETRY_S, 20.0),
        hub_backoff_s=_seconds(HUB_BACKOFF, 1.0),
        hub_timeout_s=_seconds(HUB_TIMEOUT, 60.0),
        in_ci=env.get(GITHUB_ACTIONS) == "true" or env.get(CI, "").lower() not in ("", "0", "false"),
        cache_key=env.get(CACHE_KEY) or None,
    )


def _seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise UsageError(f"{name}={raw!r}: expected a number of seconds (>= 0)")
    return value
