"""Release an adapter to a registry as the next version (see DESIGN.md, "Registry semantics").

release: give a new registry's `main` its placeholder README (main serves `stable`; a release never touches it
otherwise) -> choose the next version from the tags and every version a release commit on `releases` already
claims -> upload the adapter, model card and manifest as one commit on top of the `releases` head that choice was
made from (a concurrent upload makes it fail, and the round starts again) -> read the files back and compare
hashes -> create the immutable version tag -> advance `canary` unless it serves a newer version. Every ref write is a
create-if-absent or a compare-and-swap (registry/base.py), so faults and concurrent releases cannot make a ref
go missing or backwards. A failure says what happened; running `release` again finishes the job, reusing the
uploaded commit when it verifies (a leftover that does not verify is skipped). Releasing content that is
already released is a no-op that reports the existing version.

Commit messages carry `adapterci-version:` and `adapterci-content:` lines: how a rerun finds its earlier
upload. Moving refs are moved by adapterci.release.refs.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from adapterci.adapterdir import TRAIN_JSON, adapter_files, content_digest, file_digests, training_record
from adapterci.errors import GateFailed, RegistryError, UsageError
from adapterci.fsio import read_tolerant, write_json_atomic
from adapterci.modelio import base_model_identity
from adapterci.registry import RefConflict, Registry, open_registry
from adapterci.registry.base import MANIFEST, VERSION_RE, Commit, parse_version
from adapterci.release.card import (
    BaseRef,
    build_manifest,
    main_readme,
    model_card,
    portable_adapter_config,
    portable_provenance,
)
from adapterci.release.refs import advance_canary, rounds
from adapterci.release.serving import serving_manifest
from adapterci.release.verify import VerificationFailed, verify_release, verify_upload
from adapterci.runs import RunDir, run_dir_for
from adapterci.train.provenance import git_commit

Bump = Literal["major", "minor", "patch"]


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


# --- release ---------------------------------------------------------------------------------------------------
def release(cfg, adapter_dir: str | Path, run_dir: RunDir | str | Path | None = None, bump: Bump = "patch",
            registry: Registry | None = None, verified: bool = False) -> ReleaseResult:
    """Release `adapter_dir` as the next version and move `canary` to it; writes release.json into the run dir.

    Eval results and the gate verdict come from the run directory: the given one, or the default one when the
    adapter is that run's adapter. A run whose gate verdict is FAIL is refused (GateFailed, exit 1). `verified`
    also refuses (ReleaseRefused, exit 1) unless a trusted run's PASS verdict vouches for exactly these files
    (`verify.verify_release`): what the CLI and `adapterci run` require."""
    next_version([], bump)  # validates `bump` before anything else
    adapter_dir = Path(adapter_dir).resolve()
    files = adapter_files(adapter_dir)
    rd = _run_dir(cfg, adapter_dir, run_dir)
    if rd is None:
        return _release(cfg, adapter_dir, files, None, bump, registry, verified)
    with rd.locked():
        return _release(cfg, adapter_dir, files, rd, bump, registry, verified)


def _release(cfg, adapter_dir: Path, files: dict[str, Path], rd: RunDir | None, bump: Bump,
             registry: Registry | None, verified: bool) -> ReleaseResult:
    gate = read_tolerant(rd.gate_json) if rd is not None else None
    if gate and gate.get("verdict") == "FAIL":
        raise GateFailed(f"the gate verdict in {rd.gate_json} is FAIL: this adapter is not released")  # type: ignore[union-attr]
    if verified:
        verify_release(cfg, rd, adapter_dir)
    reg = registry or open_registry(cfg)
    content = content_digest(adapter_dir)
    train = training_record(adapter_dir)
    with tempfile.TemporaryDirectory(prefix="adapterci-release-") as tmp, reg.lock():
        base = _base_ref(cfg, train)
        published = _portable(files, base, Path(tmp) / "portable")
        reg.init_main(main_readme(cfg.name, _repo_id(reg)))
        attempted: set[str] = set()  # versions this call uploaded (an upload whose answer was lost still counts)
        for attempt in rounds():
            try:
                result = _release_once(cfg, reg, adapter_dir, published, content, rd, bump, base, attempted)
                break
            except RefConflict:  # another writer took this version number: start over with the next one
                continue
        else:
            raise RegistryError(f"could not claim a version in {reg.url} after {attempt + 1} attempts (other "
                                "releases kept taking the next number until ADAPTERCI_REGISTRY_RACE_S ran out); run "
                                "`adapterci release` again")
    if rd is not None:
        write_json_atomic(rd.release_json, {**result.as_dict(), "released_at": _now()})
        write_json_atomic(rd.serving_json, serving_manifest(cfg, registry=reg))
    return result


def _base_ref(cfg, train: dict | None) -> BaseRef:
    """The base model the adapter was trained on, as its provenance records it (else as the config names it)."""
    identity = (train or {}).get("base_model")
    if not isinstance(identity, dict) or not identity.get("base_model"):
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
            serves, moved = advance_canary(reg, version, commit.id)
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
        verify_upload(reg, sha, files)
    reg.create_tag(version, sha)  # False: our own earlier request created it
    try:
        serves, _ = advance_canary(reg, version, sha)
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
            verify_upload(reg, commit.id, files)
        except VerificationFailed:
            continue
        return commit.id, version
    return None, None


def _stage(cfg, reg: Registry, stage: Path, adapter_dir: Path, files: dict[str, Path], content: str,
           version: str, rd: RunDir | None, base: BaseRef) -> Path:
    """The release folder: adapter files, adapterci-train.json, adapterci.json and README.md."""
    for rel, path in files.items():
        (stage / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, stage / rel)
    train = training_record(adapter_dir)
    if train is not None:
        write_json_atomic(stage / TRAIN_JSON, portable_provenance(train, base))
    manifest = build_manifest(
        name=cfg.name, version=version, content_hash=content,
        files=file_digests(files), base=base, train=train,
        results=read_tolerant(rd.eval_json if rd else None), gate=read_tolerant(rd.gate_json if rd else None),
        git_commit=git_commit(cfg.base_dir), released_at=_now())
    # unique per upload: a commit identical to the head is skipped by the client without asking the Hub,
    # which would bypass the `parent_commit` check that makes concurrent uploads safe
    write_json_atomic(stage / MANIFEST, {**manifest, "upload_id": uuid.uuid4().hex})
    (stage / "README.md").write_text(model_card(manifest, _repo_id(reg)), encoding="utf-8")
    return stage


def _repo_id(reg: Registry) -> str | None:
    return reg.url[len("hf://"):] if reg.url.startswith("hf://") else None


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
        return run_dir_for(cfg, run_dir)
    default = run_dir_for(cfg)
    return default if adapter_dir == default.adapter.resolve() else None


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


