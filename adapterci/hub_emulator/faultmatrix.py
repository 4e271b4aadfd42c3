"""Fault cases for an `hf://` registry on the emulator, and the audit that says whether a repo is still consistent.

A case is one operation (the first release, a release, promote, rollback) × one Hub call it makes × one fault:
  5xx    the call answers 503 until the faults are cleared
  late   the server acts, but its answer comes after the client's timeout (the client never learns it acted)
  drop   the connection is closed mid-request, nothing done
  kill   the server acts and the client is killed with SIGKILL while it waits for the answer
  429    the call is rate limited once: 429 with `Retry-After: 1`, under a retry budget of at least
         RATE_LIMIT_BUDGET_S (the wait fits it, so the operation must ride it out)
  stale  a read (listing, tree, paths-info, resolve) answers from a replica lagging `late_s` behind the writes,
         until the faults are cleared
  truncate  the LFS storage keeps half of the uploaded object and answers 200 (verify must catch it)
The weights are LFS objects (the Hub's rule for `*.safetensors`): the first release uploads them through the LFS
batch API (the later ones find the object stored), and every ref move copies them with an `lfsFile` line.

`audit` reads the emulator's state directly (not through adapterci), so it judges the registry code from outside:
every version tag points at a complete commit whose manifest names that version and whose files match the
manifest's hashes (LFS files: the stored object's content); no other commit on the release branch (`releases`
when it exists, else `main`) claims a tagged version; no adapter is released under two
versions; `canary` and `stable` serve exactly the files of the version they name. `Scenario.run` plays one case
(seed the repo, arm the fault, run the operation, audit, clear the faults, run it again, audit) and returns what
went wrong. Used by tests/test_release_faults.py and bench/release_faults.py.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from adapterci import settings
from adapterci.errors import RegistryError
from adapterci.hub_emulator.server import HubEmulator
from adapterci.hub_emulator.state import repo_key
from adapterci.release import promote, release, rollback

CALLS = {  # name -> (method, path regex) of the requests a release, promote or rollback makes
    "list refs": ("GET", r"/refs$"),
    "list commits": ("GET", r"/commits/(main|releases)$"),
    "repo info": ("GET", r"/revision/"),
    "preupload": ("POST", r"/preupload/(main|releases)$"),
    "commit": ("POST", r"/commit/(main|releases)$"),
    "read tree": ("GET", r"/tree/"),
    "create tag": ("POST", r"/tag/"),
    "create branch": ("POST", r"/branch/"),
    "copy lookup": ("POST", r"/paths-info/"),
    "download": (None, r"/resolve/"),
    "move canary": ("POST", r"/commit/canary$"),
    "move stable": ("POST", r"/commit/stable$"),
    "lfs batch": ("POST", r"\.git/info/lfs/objects/batch$"),
    "lfs upload": ("PUT", r"^/lfs-storage/"),
    "lfs verify": ("POST", r"\.git/info/lfs/objects/verify$"),
}
KINDS = ("5xx", "late", "drop", "kill", "429", "stale", "truncate")
RELEASE_CALLS = ("list refs", "list commits", "repo info", "preupload", "commit", "read tree", "create tag",
                 "copy lookup", "download", "move canary")
LFS_CALLS = ("lfs batch", "lfs upload", "lfs verify")  # made by the first release only (then the object is stored)
WRITES = {"commit", "create tag", "move canary", "create branch", "move stable", "lfs upload", "lfs verify"}
READS = {"list refs", "list commits", "repo info", "read tree", "copy lookup", "download"}  # served by replicas


def _applies(call: str, kind: str) -> bool:
    """Whether fault `kind` can happen on `call` (a kill needs a write, a lag a read, a truncation an upload)."""
    return {"kill": call in WRITES, "stale": call in READS, "truncate": call == "lfs upload"}.get(kind, True)


CASES = ([("release", call, kind) for call in RELEASE_CALLS for kind in KINDS if _applies(call, kind)]
         + [("first", call, kind) for call in ("create branch", *LFS_CALLS) for kind in KINDS if _applies(call, kind)]
         + [(op, "move stable", kind) for op in ("promote", "rollback") for kind in KINDS if _applies("move stable", kind)])
LEVELS = ("empty", "released", "two", "promoted")  # the registry states operations start from, in build order
SEED = {"first": "empty", "release": "released", "promote": "two", "rollback": "promoted"}
BEFORE = {"empty": {}, "released": {"canary": "v0.1.0", "stable": "v0.1.0"},
          "two": {"canary": "v0.1.1", "stable": "v0.1.0"}, "promoted": {"canary": "v0.1.1", "stable": "v0.1.1"}}
AFTER = {"first": {"canary": "v0.1.0"}, "release": {"canary": "v0.1.1", "stable": "v0.1.0"},
         "promote": {"canary": "v0.1.1", "stable": "v0.1.1"}, "rollback": {"canary": "v0.1.1", "stable": "v0.1.0"}}
RATE_LIMIT_BUDGET_S = 3.0
VERSION_RE = re.compile(r"^v\d+\.\d+\.\d+$")
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapterci.json", "README.md")


def arm(hub: HubEmulator, call: str, kind: str, late_s: float) -> None:
    """Arm the fault of `kind` on `call` (`late_s`: how long a late answer is held)."""
    method, path = CALLS[call]
    if kind == "5xx":
        hub.add_fault(path, method=method, status=503, times=-1)
    elif kind == "429":
        hub.add_fault(path, method=method, status=429, headers={"Retry-After": "1"}, times=1)
    elif kind == "stale":
        hub.add_fault(path, method=method, action="stale", delay=late_s, times=-1)
    elif kind == "truncate":
        hub.add_fault(path, method=method, action="truncate", times=1)
    elif kind == "drop":
        hub.add_fault(path, method=method, action="drop", times=1)
    else:
        hub.add_fault(path, method=method, action="late", delay=late_s, times=1)


def fired(hub: HubEmulator) -> int:
    return sum(f["fired"] for f in hub.faults.list())


def run_killed(cmd: list[str], env: dict[str, str], hub: HubEmulator, timeout_s: float) -> str:
    """Run `cmd`; SIGKILL it as soon as an armed fault fires. Returns how it ended: killed / exit N."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + timeout_s
    while proc.poll() is None and time.monotonic() < deadline:
        if fired(hub):
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return "killed"
        time.sleep(0.01)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        return "timed out"
    return f"exit {proc.returncode}"


@dataclass
class Audit:
    versions: dict[str, str] = field(default_factory=dict)  # tag -> commit
    serving: dict[str, str] = field(default_factory=dict)  # moving ref -> the version it serves
    problems: list[str] = field(default_factory=list)


def audit(hub: HubEmulator, repo_id: str) -> Audit:
    """The registry state of `repo_id` as seen from the emulator, and everything inconsistent in it."""
    state = hub.state
    with state.lock:
        try:
            repo = state.repo("models", repo_id)
        except Exception:  # noqa: BLE001 - no repo yet: nothing released, nothing inconsistent
            return Audit()
        out = Audit(versions={t: s for t, s in repo.tags.items() if VERSION_RE.match(t)})
        claims: dict[str, list[str]] = {}
        for commit in repo.history("releases" if "releases" in repo.branches else "main"):
            match = re.search(r"^adapterci-version: (\S+)$", commit.message, re.M)
            if match:
                claims.setdefault(match.group(1), []).append(commit.id)
        contents: dict[str, str] = {}
        for tag, sha in out.versions.items():
            manifest = _manifest(state, repo, sha)
            missing = [f for f in ADAPTER_FILES if f not in repo.commits[sha].files]
            if missing or manifest is None:
                out.problems.append(f"{tag}: incomplete commit {sha[:12]} (missing {missing or ['adapterci.json']})")
                continue
            if manifest.get("version") != tag:
                out.problems.append(f"{tag}: its manifest says {manifest.get('version')}")
            for rel, digest in (manifest.get("files") or {}).items():
                blob = repo.commits[sha].files.get(rel)
                if blob is None or hashlib.sha256(state.blobs[blob]).hexdigest() != digest:
                    out.problems.append(f"{tag}: {rel} does not match the manifest")
            if claims.get(tag, []) != [sha]:
                out.problems.append(f"{tag}: claimed by {[c[:12] for c in claims.get(tag, [])]}, "
                                    f"tagged {sha[:12]}")
            content = manifest.get("content_hash")
            if content in contents:
                out.problems.append(f"{tag}: the same adapter is already released as {contents[content]}")
            contents[content] = tag
        for ref in ("canary", "stable"):
            head = repo.branches.get(ref)
            if head is None:
                continue
            manifest = _manifest(state, repo, head)
            version = (manifest or {}).get("version")
            target = out.versions.get(version or "")
            if target is None:
                out.problems.append(f"`{ref}` serves {version!r}, which is not a released version")
                continue
            served = {p: b for p, b in repo.commits[head].files.items() if p != "adapterci-ref.json"}
            if served != repo.commits[target].files:
                out.problems.append(f"`{ref}` does not serve exactly the files of {version}")
            out.serving[ref] = version
    return out


class Scenario:
    """The fault cases of one `cfg` (whose registry is `hf://{repo_id}` on `hub`); `adapters(i)` is an adapter
    directory whose content differs for each i. `snapshots` caches the seeded registry states across scenarios."""

    def __init__(self, hub: HubEmulator, cfg, repo_id: str, adapters: Callable[[int], Path], late_s: float,
                 snapshots: dict[str, Any]):
        self.hub, self.cfg, self.repo_id, self.adapters = hub, cfg, repo_id, adapters
        self.late_s, self.snapshots = late_s, snapshots

    def seed(self, level: str) -> None:
        """Put the registry in state `level`: built once from an empty repo through the real operations, then
        restored from a snapshot."""
        key = repo_key("models", self.repo_id)
        self.hub.state.repos.pop(key, None)
        if level not in self.snapshots:
            steps = {"released": ["first", "promote"], "two": ["release"], "promoted": ["promote"]}
            for name in LEVELS[:LEVELS.index(level) + 1]:
                for op in steps.get(name, []):
                    self.operate(op)
            repo = self.hub.state.repos.get(key)
            self.snapshots[level] = (copy.deepcopy(repo), dict(self.hub.state.blobs))
            return
        repo, blobs = self.snapshots[level]
        if repo is not None:
            self.hub.state.repos[key] = copy.deepcopy(repo)
        self.hub.state.blobs.update(blobs)

    def operate(self, op: str) -> None:
        if op in ("first", "release"):
            release(self.cfg, self.adapters(0 if op == "first" else 1))
        else:
            (promote if op == "promote" else rollback)(self.cfg)

    def command(self, op: str) -> list[str]:
        """`op` as an `adapterci` command line (the environment must name the registry)."""
        # --unverified: the matrix is about registry faults; no gate verdict vouches for its test adapters
        args = ["release", "--unverified", "--adapter", str(self.adapters(0 if op == "first" else 1))] \
            if op in ("first", "release") else [op]
        return [sys.executable, "-m", "adapterci", args[0], "--config", str(self.cfg.path), *args[1:]]

    def run(self, op: str, call: str, kind: str) -> list[str]:
        """Play one case; returns every violation (empty: the registry stayed consistent and the rerun finished)."""
        self.seed(SEED[op])
        arm(self.hub, call, kind, self.late_s)
        violations = []
        if kind == "kill":
            outcome = run_killed(self.command(op), dict(os.environ), self.hub, timeout_s=60)
            if outcome != "killed":
                violations.append(f"the fault never fired ({outcome})")
        else:
            try:
                with _retry_budget(RATE_LIMIT_BUDGET_S if kind == "429" else None):
                    self.operate(op)
            except RegistryError as exc:  # a clear error is fine under a persistent outage, nothing else
                if kind != "5xx":
                    violations.append(f"not ridden out: {exc}")
        if not fired(self.hub):
            violations.append(f"the operation never made the call {call!r}: the case tests nothing")
        found = audit(self.hub, self.repo_id)
        violations += found.problems
        for ref, version in BEFORE[SEED[op]].items():  # never missing, never on a version not meant to be reached
            if found.serving.get(ref) not in (version, AFTER[op][ref]):
                violations.append(f"after the fault `{ref}` serves {found.serving.get(ref)}")
        self.hub.faults.clear()
        try:
            if not (op == "rollback" and found.serving.get("stable") == AFTER[op]["stable"]):  # never roll twice
                self.operate(op)
        except RegistryError as exc:
            violations.append(f"the rerun failed: {exc}")
        found = audit(self.hub, self.repo_id)
        violations += found.problems
        if found.serving != AFTER[op]:
            violations.append(f"after the rerun the refs serve {found.serving}, not {AFTER[op]}")
        if set(found.versions) != ({"v0.1.0"} if op == "first" else {"v0.1.0", "v0.1.1"}):
            violations.append(f"versions after the rerun: {sorted(found.versions)}")
        return violations


@contextmanager
def _retry_budget(seconds: float | None) -> Iterator[None]:
    """Run with a Hub retry budget of at least `seconds` (a `Retry-After` that fits it must be waited out)."""
    before = os.environ.get(settings.HUB_RETRY_S)
    if seconds is None or settings.current().hub_retry_s >= seconds:
        yield
        return
    os.environ[settings.HUB_RETRY_S] = str(seconds)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(settings.HUB_RETRY_S, None)
        else:
            os.environ[settings.HUB_RETRY_S] = before


def _manifest(state, repo, sha: str) -> dict | None:
    blob = repo.commits[sha].files.get("adapterci.json")
    try:
        return json.loads(state.blobs[blob]) if blob else None
    except ValueError:
        return None
