"""Whether this process may reuse what it finds on disk: stage cache entries, per-model eval outputs, a converted
GGUF base, a downloaded champion.

A local run and a PR run reuse as before (their outputs never vouch for a release on their own). A trusted run in
CI (`default-branch`, with `GITHUB_ACTIONS=true` or `CI`) trusts only what it computed or can verify:

- on a runner that is not ephemeral (`adapterci.machine`) it reuses nothing: a job of that runner (a pull
  request's included) could have written any of it. It recomputes every stage and says so. When the machine shows
  that another job used it, the run refuses (exit 2) unless the config's `trust.shared_runner_reason` says why
  that is acceptable; then it recomputes everything too.
- on an ephemeral runner its caches can only come from outside (e.g. `actions/cache`): an entry is reused only
  when it carries a valid seal, an HMAC-SHA256 under `ADAPTERCI_CACHE_KEY` (a secret of the release environment
  alone) over the entry's kind, key and content digest. Without the key nothing is reused.

Whenever the key is set, what a run stores is sealed and what it reuses must be. A `pr` run must never hold it.
See docs/trusted-runs.md."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from pathlib import Path

from adapterci import machine, settings
from adapterci.console import log_line
from adapterci.errors import UsageError
from adapterci.fingerprint import hash_tree
from adapterci.fsio import read_tolerant, write_json_atomic
from adapterci.trust import trust_domain

SEAL = "adapterci-seal.json"
"""The seal file of a sealed cache folder (left out of the digest it seals)."""


@dataclass(frozen=True)
class Reuse:
    """What this process may reuse: nothing (`allowed` false, `reason` says why), anything that vouches for
    itself, or (`key` set) only what also carries a valid seal."""

    allowed: bool
    reason: str = ""
    key: bytes | None = field(default=None, repr=False)

    def seal(self, kind: str, name: str, digest: str) -> str | None:
        """The seal of an entry (None without a key)."""
        if self.key is None:
            return None
        message = json.dumps([kind, name, digest]).encode()
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()

    def accepts(self, kind: str, name: str, digest: str, seal: object) -> bool:
        """Whether an entry whose content has `digest` may be reused: allowed here, and sealed when a key is set."""
        if not self.allowed:
            return False
        expected = self.seal(kind, name, digest)
        return expected is None or (isinstance(seal, str) and hmac.compare_digest(expected, seal))

    def seal_dir(self, kind: str, name: str, folder: Path) -> None:
        """Seal a cache folder being built (no-op without a key)."""
        seal = self.seal(kind, name, hash_tree(folder, exclude=(SEAL,)))
        if seal is not None:
            write_json_atomic(folder / SEAL, {"seal": seal})

    def reusable_dir(self, kind: str, name: str, folder: Path) -> bool:
        """Whether the cache folder `folder` may be reused; an existing one that may not is named on the console
        with the reason (nothing reused here, or no valid seal)."""
        if not folder.is_dir():
            return False
        if not self.allowed:
            return False
        if self.key is None:
            return True
        seal = (read_tolerant(folder / SEAL) or {}).get("seal")
        if self.accepts(kind, name, hash_tree(folder, exclude=(SEAL,)), seal):
            return True
        log_line(f"cache: ignored {kind}/{name[:12]}: {'its seal is not valid' if seal else 'it is not sealed'} "
                 f"under ADAPTERCI_CACHE_KEY (recomputed)")
        return False


def policy(cfg) -> Reuse:
    """What this process may reuse now (read from the environment and the machine each time). UsageError (exit 2)
    for a `pr` run holding ADAPTERCI_CACHE_KEY, and for a trusted CI run on a machine other jobs used unless
    `trust.shared_runner_reason` names why."""
    current = settings.current()
    domain = trust_domain()
    key = current.cache_key.encode() if current.cache_key else None
    if domain == "pr" and key is not None:
        raise UsageError(f"{settings.CACHE_KEY} is set in a `pr` run: only the release environment may hold it "
                         "(a pull request's code could read it and seal a planted cache entry)")
    if not (current.in_ci and domain == "default-branch"):
        return Reuse(True, key=key)
    found = machine.inspect()
    if found.other_jobs and not cfg.trust.shared_runner_reason:
        raise UsageError(f"this trusted ({domain}) run refuses to run: {found.describe()}. A job of a pull request "
                         "could have left anything on it. Run trusted jobs on ephemeral runners "
                         "(docs/trusted-runs.md), or set `trust.shared_runner_reason` in the config to say why "
                         "this machine is acceptable (every stage is then recomputed)")
    if not found.ephemeral:
        return Reuse(False, f"a trusted run on a runner that is not ephemeral ({found.describe()}): nothing "
                            "cached on it is reused")
    if key is None:
        return Reuse(False, f"no {settings.CACHE_KEY}: cached entries cannot be authenticated, none is reused")
    return Reuse(True, key=key)
