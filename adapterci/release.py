"""Release, promote and roll back adapters in a registry (see DESIGN.md, "Registry semantics").

release: choose the next version from the tags and every version a release commit on `main` already claims ->
upload the adapter, model card and manifest as one commit on top of the `main` head that choice was made from
(a concurrent upload makes it fail, and the round starts again) -> read the files back and compare hashes ->
create the immutable version tag -> advance `canary` unless it serves a newer version. Every ref write is a
create-if-absent or a compare-and-swap (registry/base.py), so faults and concurrent releases cannot make a ref
go missing or backwards. A failure says what happened; running `release` again finishes the job, reusing the
uploaded commit when it verifies (a leftover that does not verify is skipped). Releasing content that is
already released is a no-op that reports the existing version.

promote moves `stable` to the canary (or a version); rollback moves it to the version it served before;
retract_canary (a canary analysis rolled it back) moves `canary` back to what `stable` serves. Each is one
compare-and-swap of the ref, whose state carries its own history; a release never moves `canary` back to a commit
it served before (so a rerun cannot undo a retraction). Commit messages carry `adapterci-version:` and
`adapterci-content:` lines: how a rerun finds its earlier upload.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from adapterci.errors import GateFailed, RegistryError, UsageError
from adapterci.fingerprint import hash_file, hash_json
from adapterci.registry import RefConflict, Refs, Registry, open_registry
from adapterci.registry.base import MANIFEST, VERSION_RE, Commit, RefRace, file_digest, parse_version
from adapterci.registry.card import (BaseRef, build_manifest, model_card, portable_adapter_config,
                                     portable_provenance, read_tolerant)
from adapterci.runs import RunDir, run_dir_for, write_json_atomic

Bump = Literal["major", "minor", "patch"]
TRAIN_JSON = "adapterci-train.json"
MAX_ATTEMPTS = 8  # rounds of choosing a version; each lost round means another release took one


class VerificationFailed(RegistryError):
    """The files of an uploaded commit do not match the adapter."""


@dataclass
class ReleaseResult:
    version: str
    commit: str
    no_op: bool
    url: str
    registry: str
    content_hash: str
    refs: list[str] = field(default_factory=list)
    finished: bool = False  # this call completed an earlier, interrupted release

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class RefMove:
    """The outcome of promote / rollback."""

    ref: str
    version: str | None
    commit: str
    previous: str | None
    no_op: bool
    registry: str

    def as_dict(self) -> dict:
        return asdict(self)


# --- versions --------------------------------------------------------------------------------------------------
def next_version(existing, bump: Bump = "patch") -> str:
    """The version after the highest of `existing` (`v0.1.0` first)."""
    found = [parse_version(v) for v in existing if VERSION_RE.match(v)]
    if not found:
        return "v0.1.0"
    major, minor, patch = max(found)
    if bump == "major":
        return f"v{major + 1}.0.0"
    if bump == "minor":
        return f"v{major}.{minor + 1}.0"
    if bump == "patch":
        return f"v{major}.{minor}.{patch + 1}"
    raise UsageError(f"--bump must be major, minor or patch, not {bump!r}")


ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json", "added_tokens.json", "chat_template.jinja", "chat_template.json",
                 "tokenizer.model", "vocab.json", "merges.txt", "generation_config.json")
"""What a release may contain from an adapter directory: PEFT's config and safetensors weights, and the tokenizer
files `save_pretrained` writes. Anything else there (pickles, notes, scratch) is never published."""


def adapter_files(adapter_dir: Path) -> dict[str, Path]:
    """The files of a PEFT adapter directory to release: the known names of ADAPTER_FILES that are present, each
    a regular file (not a symlink). UsageError if it is not an adapter directory with safetensors weights."""
    adapter_dir = Path(adapter_dir)
    if not adapter_dir.is_dir():
        raise UsageError(f"adapter directory not found: {adapter_dir}")
    if not (adapter_dir / "adapter_config.json").is_file():
        raise UsageError(f"{adapter_dir} is not a PEFT adapter: adapter_config.json is missing")
    if not (adapter_dir / "adapter_model.safetensors").exists():
        pickled = " (adapter_model.bin is a pickle and is never released: save the adapter with safetensors)" \
            if (adapter_dir / "adapter_model.bin").exists() else ""
        raise UsageError(f"{adapter_dir} has no adapter weights (adapter_model.safetensors){pickled}")
    files = {}
    for name in (*ADAPTER_FILES, TRAIN_JSON):
        path = adapter_dir / name
        if path.is_symlink() or (path.exists() and not path.is_file()):
            raise UsageError(f"{path} is {'a symlink' if path.is_symlink() else 'not a regular file'}: an adapter "
                             "directory holds regular files only")
        if path.is_file() and name != TRAIN_JSON:
            files[name] = path
    return files


def content_hash(files: dict[str, Path]) -> str:
    return hash_json({rel: hash_file(path) for rel, path in files.items()})


# --- release ---------------------------------------------------------------------------------------------------
def release(cfg, adapter_dir: str | Path, run_dir: RunDir | str | Path | None = None, bump: Bump = "patch",
            registry: Registry | None = None, verified: bool = False) -> ReleaseResult:
    """Release `adapter_dir` as the next version and move `canary` to it; writes release.json into the run dir.

    Eval results and the gate verdict come from the run directory: the given one, or the default one when the
    adapter is that run's adapter. A run whose gate verdict is FAIL is refused (GateFailed, exit 1). `verified`
    also refuses (ReleaseRefused, exit 1) unless a trusted run's PASS verdict vouches for exactly these files
    (`provenance.verify_release`): what the CLI and `adapterci run` require."""
    next_version([], bump)  # validates `bump` before anything else
    adapter_dir = Path(adapter_dir).resolve()
    files = adapter_files(adapter_dir)
    rd = _run_dir(cfg, adapter_dir, run_dir)
    gate = read_tolerant(rd.gate_json) if rd is not None else None
    if gate and gate.get("verdict") == "FAIL":
        raise GateFailed(f"the gate verdict in {rd.gate_json} is FAIL: this adapter is not released")  # type: ignore[union-attr]
    if verified:
        from adapterci.provenance import verify_release

        verify_release(cfg, rd, adapter_dir)
    reg = registry or open_registry(cfg)
    content = content_hash(files)
    train = read_tolerant(adapter_dir / TRAIN_JSON)
    with tempfile.TemporaryDirectory(prefix="adapterci-release-") as tmp, reg.lock():
        base = _base_ref(cfg, train)
        published = _portable(files, base, Path(tmp) / "portable")
        attempted: set[str] = set()  # versions this call uploaded (an upload whose answer was lost still counts)
        for attempt in range(MAX_ATTEMPTS):
            try:
                result = _release_once(cfg, reg, adapter_dir, published, content, rd, bump, base, attempted)
                break
            except RefConflict:  # another writer took this version number: start over with the next one
                _after_race(attempt)
        else:
            raise RegistryError(f"could not claim a version in {reg.url} after {MAX_ATTEMPTS} attempts "
                                "(other releases kept taking the next number); run `adapterci release` again")
    if rd is not None:
        from adapterci.serving import serving_manifest

        write_json_atomic(rd.release_json, {**result.as_dict(), "released_at": _now()})
        write_json_atomic(rd.serving_json, serving_manifest(cfg, registry=reg))
    return result


def _base_ref(cfg, train: dict | None) -> BaseRef:
    """The base model the adapter was trained on, as its provenance records it (else as the config names it)."""
    identity = (train or {}).get("base_model")
    if not isinstance(identity, dict) or not identity.get("base_model"):
        from adapterci.modelio import base_model_identity

        identity = base_model_identity(cfg)
    return BaseRef.from_identity(identity)


def _portable(files: dict[str, Path], base: BaseRef, dest: Path) -> dict[str, Path]:
    """The adapter files as published: `adapter_config.json` names the base by Hub id, never by a local path."""
    source = files["adapter_config.json"]
    try:
        config = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{source}: not a readable JSON file ({exc})") from None
    if not isinstance(config, dict):
        raise UsageError(f"{source}: expected a JSON object")
    dest.mkdir(parents=True)
    (dest / "adapter_config.json").write_text(json.dumps(portable_adapter_config(config, base), indent=2,
                                                         sort_keys=True) + "\n", encoding="utf-8")
    return {**files, "adapter_config.json": dest / "adapter_config.json"}


def _release_once(cfg, reg: Registry, adapter_dir: Path, files: dict[str, Path], content: str,
                  rd: RunDir | None, bump: Bump, base: BaseRef, attempted: set[str]) -> ReleaseResult:
    refs = reg.refs()
    versions = refs.versions()
    commits = reg.commits()
    tag_of = {sha: tag for tag, sha in versions.items()}
    latest = next(reversed(versions), None)
    same = [c for c in commits if _trailer(c, "content") == content]

    for commit in same:  # already released: report it (and finish moving canary if that was interrupted)
        if commit.id in tag_of:
            version = tag_of[commit.id]
            serves, moved = _advance_canary(reg, version, commit.id)
            return _result(reg, version, commit.id, content, no_op=not moved, finished=moved, canary=serves)

    sha, version = _resumable(reg, same, versions, latest, files, attempted)
    resumed = sha is not None
    if sha is None:  # nothing to finish: claim the next number not named by any release commit
        claimed = [v for c in commits if (v := _trailer(c, "version")) and VERSION_RE.match(v)]
        version = next_version([*versions, *claimed], bump)
        attempted.add(version)
        with tempfile.TemporaryDirectory(prefix="adapterci-release-") as tmp:
            stage = _stage(cfg, reg, Path(tmp) / "release", adapter_dir, files, content, version, rd, base)
            sha = reg.upload(stage, f"Release {version}", f"adapterci-version: {version}\nadapterci-content: {content}",
                             parent=commits[0].id if commits else None)
        _verify(reg, sha, files)
    reg.create_tag(version, sha)  # False: our own earlier request created it
    try:
        serves, _ = _advance_canary(reg, version, sha)
    except RegistryError as exc:
        raise RegistryError(f"release {version}: commit {sha[:12]} is uploaded, verified and tagged, but moving "
                            f"`canary` failed: {exc}. Run `adapterci release` again to finish.") from None
    return _result(reg, version, sha, content, no_op=False, finished=resumed, canary=serves)


def _resumable(reg: Registry, same: list[Commit], versions: dict[str, str], latest: str | None,
               files: dict[str, Path], attempted: set[str]) -> tuple[str | None, str | None]:
    """An upload of this content that stopped before tagging and whose files verify: one made by this call, or
    one newer than every version (an older leftover is not tagged late: the release gets a new number, which
    `canary` can move to). A leftover that does not verify is skipped; its version number stays unused."""
    for commit in same:
        version = _trailer(commit, "version")
        if not version or not VERSION_RE.match(version) or version in versions:
            continue
        if version not in attempted and latest is not None and parse_version(version) <= parse_version(latest):
            continue
        try:
            _verify(reg, commit.id, files)
        except VerificationFailed:
            continue
        return commit.id, version
    return None, None


def _stage(cfg, reg: Registry, stage: Path, adapter_dir: Path, files: dict[str, Path], content: str,
           version: str, rd: RunDir | None, base: BaseRef) -> Path:
    """The release folder: adapter files, adapterci-train.json, adapterci.json and README.md."""
    from adapterci.train.provenance import git_commit

    for rel, path in files.items():
        (stage / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, stage / rel)
    train = read_tolerant(adapter_dir / TRAIN_JSON)
    if train is not None:
        write_json_atomic(stage / TRAIN_JSON, portable_provenance(train, base))
    manifest = build_manifest(
        name=cfg.name, version=version, content_hash=content,
        files={rel: hash_file(path) for rel, path in files.items()}, base=base, train=train,
        results=read_tolerant(rd.eval_json if rd else None), gate=read_tolerant(rd.gate_json if rd else None),
        git_commit=git_commit(cfg.base_dir), released_at=_now())
    # unique per upload: a commit identical to main's head is skipped by the client without asking the Hub,
    # which would bypass the `parent_commit` check that makes concurrent uploads safe
    write_json_atomic(stage / MANIFEST, {**manifest, "upload_id": uuid.uuid4().hex})
    repo_id = reg.url[len("hf://"):] if reg.url.startswith("hf://") else None
    (stage / "README.md").write_text(model_card(manifest, repo_id), encoding="utf-8")
    return stage


def _verify(reg: Registry, sha: str, files: dict[str, Path]) -> None:
    """Read the commit's file list back and compare every adapter file's hash with the local one."""
    remote = reg.tree(sha)
    problems = []
    for rel, path in files.items():
        digest = remote.get(rel)
        if digest is None:
            problems.append(f"{rel} is missing")
        elif digest != file_digest(path, digest.split(":")[0]):
            problems.append(f"{rel} differs")
    problems += [f"{name} is missing" for name in (MANIFEST, "README.md") if name not in remote]
    if problems:
        raise VerificationFailed(f"verification of the uploaded commit {sha[:12]} in {reg.url} failed: "
                                 f"{'; '.join(problems)}. No version was tagged; run `adapterci release` again")


def _advance_canary(reg: Registry, version: str, sha: str) -> tuple[bool, bool]:
    """Point `canary` at `sha` unless it already serves it, served it before (a retracted or superseded release
    stays where it was put) or serves a newer version. Compare-and-swap: when another writer moved it meanwhile,
    read it again and decide again. Returns (serves `sha` now, moved by this call)."""
    tried = False
    for attempt in range(MAX_ATTEMPTS):
        refs = reg.refs()
        state = refs.moving.get("canary")
        if state is not None and (sha in state.history or _newer(refs, state.target, version)):
            return state.target == sha, tried and state.target == sha
        try:
            tried = True
            reg.set_ref("canary", sha, (*(state.history if state else ()), sha), state, f"canary -> {version}")
            return True, True
        except RefRace:  # moved meanwhile (maybe by our own request whose answer was lost): look again
            _after_race(attempt)
    raise RegistryError(f"`canary` kept moving in {reg.url} ({MAX_ATTEMPTS} attempts)")


def _after_race(attempt: int) -> None:
    """Wait a little after losing a race (0.05 s doubling, at most 2 s): the winner's write may not show in the
    Hub's listings yet, and reading again at once would only lose again."""
    time.sleep(min(0.05 * 2 ** attempt, 2.0))


def _newer(refs: Refs, commit: str | None, version: str) -> bool:
    """Whether `commit` carries a version tag newer than `version`."""
    tags = [t for t, s in refs.versions().items() if s == commit]
    return any(parse_version(t) > parse_version(version) for t in tags)


def _result(reg: Registry, version: str, sha: str, content: str, no_op: bool, finished: bool,
            canary: bool) -> ReleaseResult:
    """`canary`: what this call knows about `canary` serving `sha` (a read right after a write may be stale)."""
    refs = reg.refs()
    at = [name for name in ("canary", "stable") if refs.target(name) == sha or (name == "canary" and canary)]
    return ReleaseResult(version=version, commit=sha, no_op=no_op, url=f"{reg.url}@{version}", registry=reg.url,
                         content_hash=content, refs=[version, *at], finished=finished)


def _trailer(commit: Commit, key: str) -> str | None:
    for line in (commit.message or "").splitlines():
        if line.startswith(f"adapterci-{key}: "):
            return line.split(": ", 1)[1].strip()
    return None


def _run_dir(cfg, adapter_dir: Path, run_dir) -> RunDir | None:
    if run_dir is not None:
        return run_dir if isinstance(run_dir, RunDir) else RunDir(Path(run_dir).resolve())
    default = run_dir_for(cfg)
    return default if adapter_dir == default.adapter.resolve() else None


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- promote / rollback ----------------------------------------------------------------------------------------
def promote(cfg, version: str | None = None, registry: Registry | None = None) -> RefMove:
    """Move `stable` to the canary's commit, or to `version`. A no-op when it is already there."""
    if version is not None and not VERSION_RE.match(version):
        raise UsageError(f"{version!r} is not a version (expected vMAJOR.MINOR.PATCH, e.g. v0.1.0)")
    reg = registry or open_registry(cfg)
    with reg.lock():
        refs = reg.refs()
        if version is not None:
            target = refs.tags.get(version)
            if target is None:
                raise UsageError(f"unknown version {version} in {reg.url} (see `adapterci versions`)")
        else:
            target = refs.target("canary")
            if target is None:
                raise UsageError(f"{reg.url} has no `canary` yet: run `adapterci release` first")
        state = refs.moving.get("stable")
        if state is not None and state.target == target:
            return _move_result(reg, refs, target, state.target, no_op=True)
        previous = state.target if state else None
        for attempt in range(MAX_ATTEMPTS):
            try:
                reg.set_ref("stable", target, (*(state.history if state else ()), target), state,
                            f"stable -> {refs.version_of(target) or target[:12]} (promote)")
                return _move_result(reg, refs, target, previous, no_op=False)
            except RefRace:  # moved meanwhile (maybe by our own request whose answer was lost): look again
                _after_race(attempt)
                refs = reg.refs()
                state = refs.moving.get("stable")
                if state is not None and state.target == target:
                    return _move_result(reg, refs, target, previous, no_op=False)
        raise RegistryError(f"`stable` kept moving in {reg.url} while promoting; run `adapterci promote` again")


def rollback(cfg, registry: Registry | None = None) -> RefMove:
    """Move `stable` back to the version it served before the current one."""
    reg = registry or open_registry(cfg)
    with reg.lock():
        refs = reg.refs()
        state = refs.moving.get("stable")
        if state is None or len(state.history) < 2:
            raise UsageError(f"{reg.url} has no earlier stable version to roll back to "
                             f"({'`stable` was set only once' if state else '`stable` was never set'})")
        target, history = state.history[-2], state.history[:-1]
        try:
            reg.set_ref("stable", target, history, state,
                        f"stable -> {refs.version_of(target) or target[:12]} (rollback)")
        except RefRace:  # done by our own request whose answer was lost, or a concurrent move: never roll twice
            now = state
            for attempt in range(MAX_ATTEMPTS):  # a read that still shows `state` lags behind the Hub: wait
                if now != state:
                    break
                _after_race(attempt)
                now = reg.refs().moving.get("stable")
            if now is None or (now.target, now.history) != (target, history):
                raise RegistryError(f"`stable` moved in {reg.url} while rolling back; nothing was changed by this "
                                    "call: check `adapterci versions` and run `adapterci rollback` again if needed") from None
        return _move_result(reg, refs, target, state.target, no_op=False)


def retract_canary(cfg, commit: str | None = None, registry: Registry | None = None) -> RefMove:
    """Move `canary` back to what `stable` serves. With `commit`, only while `canary` still serves that commit (a
    newer release is not touched: RegistryError). A no-op when `canary` already serves stable's commit."""
    reg = registry or open_registry(cfg)
    with reg.lock():
        for attempt in range(MAX_ATTEMPTS):
            refs = reg.refs()
            stable, state = refs.target("stable"), refs.moving.get("canary")
            if stable is None:
                raise UsageError(f"{reg.url} has no `stable` to move `canary` back to")
            current = state.target if state else None
            if current == stable:
                return _move_result(reg, refs, stable, current, no_op=True, ref="canary")
            if commit is not None and current != commit:
                raise RegistryError(f"`canary` in {reg.url} moved to {(current or 'nothing')[:12]} since the analysis "
                                    f"of {commit[:12]}: not rolled back; analyze the new canary")
            try:
                reg.set_ref("canary", stable, (*(state.history if state else ()), stable), state,
                            f"canary -> {refs.version_of(stable) or stable[:12]} (retracted)")
                return _move_result(reg, refs, stable, current, no_op=False, ref="canary")
            except RefRace:  # moved meanwhile (maybe by our own request whose answer was lost): look again
                _after_race(attempt)
        raise RegistryError(f"`canary` kept moving in {reg.url}; run it again")


def _move_result(reg: Registry, refs: Refs, target: str, previous: str | None, no_op: bool,
                 ref: str = "stable") -> RefMove:
    return RefMove(ref=ref, version=refs.version_of(target), commit=target,
                   previous=(refs.version_of(previous) or previous) if previous else None, no_op=no_op,
                   registry=reg.url)
