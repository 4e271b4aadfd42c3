"""Release, promote and roll back adapters in a registry (see DESIGN.md, "Registry semantics").

release: upload the adapter, model card and manifest as one commit on `main` -> read the files back and compare
hashes -> create the immutable version tag -> move `canary` -> read the refs back. A failure leaves the refs
where they were (a tag created in this call is removed again) and says what happened; running `release`
again finishes the job, reusing the uploaded commit instead of minting another version. Releasing content
that is already released is a no-op that reports the existing version.

promote moves `stable` to the canary (or a version); rollback moves it to the previous stable; retract_canary (a
canary analysis rolled it back) moves `canary` back to stable. The history of
`stable` is kept in the registry as tags `stable-history-N`; an interrupted promote/rollback is repaired by the
next one. Commit messages carry `adapterci-version:` and `adapterci-content:` lines: how a rerun finds its
earlier upload.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from adapterci.errors import GateFailed, RegistryError, UsageError
from adapterci.fingerprint import hash_file, hash_json
from adapterci.registry import RefConflict, Refs, Registry, open_registry
from adapterci.registry.base import (HISTORY_PREFIX, MANIFEST, VERSION_RE, Commit, file_digest,
                                     parse_version)
from adapterci.registry.card import (BaseRef, build_manifest, model_card, portable_adapter_config,
                                     portable_provenance, read_tolerant)
from adapterci.runs import RunDir, run_dir_for, write_json_atomic

Bump = Literal["major", "minor", "patch"]
TRAIN_JSON = "adapterci-train.json"
MAX_ATTEMPTS = 5


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
    repaired: str | None = None

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
            registry: Registry | None = None) -> ReleaseResult:
    """Release `adapter_dir` as the next version and move `canary` to it; writes release.json into the run dir.

    Eval results and the gate verdict come from the run directory: the given one, or the default one when the
    adapter is that run's adapter. A run whose gate verdict is FAIL is refused (GateFailed, exit 1)."""
    next_version([], bump)  # validates `bump` before anything else
    adapter_dir = Path(adapter_dir).resolve()
    files = adapter_files(adapter_dir)
    rd = _run_dir(cfg, adapter_dir, run_dir)
    gate = read_tolerant(rd.gate_json) if rd is not None else None
    if gate and gate.get("verdict") == "FAIL":
        raise GateFailed(f"the gate verdict in {rd.gate_json} is FAIL: this adapter is not released")  # type: ignore[union-attr]
    reg = registry or open_registry(cfg)
    content = content_hash(files)
    train = read_tolerant(adapter_dir / TRAIN_JSON)
    with tempfile.TemporaryDirectory(prefix="adapterci-release-") as tmp, reg.lock():
        base = _base_ref(cfg, train)
        published = _portable(files, base, Path(tmp) / "portable")
        for _ in range(MAX_ATTEMPTS):
            try:
                result = _release_once(cfg, reg, adapter_dir, published, content, rd, bump, base)
                break
            except RefConflict:  # another writer took this version number: start over with the next one
                continue
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
                  rd: RunDir | None, bump: Bump, base: BaseRef) -> ReleaseResult:
    refs = reg.refs()
    versions = refs.versions()
    tag_of = {sha: tag for tag, sha in versions.items()}
    latest = next(reversed(versions), None)
    same = [c for c in reg.commits() if _trailer(c, "content") == content]

    for commit in same:  # already released: report it (and finish moving canary if that was interrupted)
        if commit.id in tag_of:
            version = tag_of[commit.id]
            finishing = version == latest and refs.branches.get("canary") != commit.id
            if finishing:
                _verify(reg, commit.id, files)
                _move_canary(reg, version, commit.id, created_tag=False)
            return _result(reg, version, commit.id, content, no_op=not finishing, finished=finishing)

    resumable = [c for c in same if (v := _trailer(c, "version")) and VERSION_RE.match(v) and v not in versions
                 and (latest is None or parse_version(v) > parse_version(latest))]
    if resumable:  # uploaded by an earlier attempt that failed before tagging: finish that one
        sha, version = resumable[0].id, _trailer(resumable[0], "version")
    else:
        version = next_version(versions, bump)
        with tempfile.TemporaryDirectory(prefix="adapterci-release-") as tmp:
            stage = _stage(cfg, reg, Path(tmp) / "release", adapter_dir, files, content, version, rd, base)
            sha = reg.upload(stage, f"Release {version}",
                             f"adapterci-version: {version}\nadapterci-content: {content}")
    _verify(reg, sha, files)
    if not reg.create_tag(version, sha):  # already there: another writer (or our lost request) tagged it
        raise RefConflict(f"{version} was tagged meanwhile")  # start over: the next round sees it released
    _move_canary(reg, version, sha, created_tag=True)
    return _result(reg, version, sha, content, no_op=False, finished=bool(resumable))


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
    write_json_atomic(stage / MANIFEST, manifest)
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
        raise RegistryError(f"verification of the uploaded commit {sha[:12]} in {reg.url} failed: "
                            f"{'; '.join(problems)}. No version was tagged; run `adapterci release` again")


def _move_canary(reg: Registry, version: str, sha: str, created_tag: bool) -> None:
    """Point `canary` at the new version unless it already points at a newer one; undo the tag on failure."""
    refs = reg.refs()  # fresh: a concurrent release may have moved canary meanwhile
    old = refs.branches.get("canary")
    if _newer(refs, old, version):
        return
    try:
        reg.move_ref("canary", sha)
        after = reg.refs()
        canary = after.branches.get("canary")
        if after.tags.get(version) != sha or (canary != sha and not _newer(after, canary, version)):
            raise RegistryError(f"read back: {version} -> {after.tags.get(version)}, canary -> {canary}")
    except RegistryError as exc:
        undone = _undo(reg, version if created_tag else None, old)
        raise RegistryError(f"release {version}: commit {sha[:12]} is uploaded and verified, but moving `canary` "
                            f"failed: {exc}. {undone} Run `adapterci release` again to finish.") from None


def _newer(refs: Refs, commit: str | None, version: str) -> bool:
    """Whether `commit` carries a version tag newer than `version`."""
    tags = [t for t, s in refs.versions().items() if s == commit]
    return any(parse_version(t) > parse_version(version) for t in tags)


def _undo(reg: Registry, tag: str | None, old_canary: str | None) -> str:
    """Put the refs back as they were before this release; returns what was (or could not be) done."""
    notes = []
    try:
        if tag:
            reg.delete_tag(tag)
            notes.append(f"The tag {tag} was removed.")
        if reg.refs().branches.get("canary") != old_canary:
            if old_canary:
                reg.move_ref("canary", old_canary)
            else:
                reg.delete_ref("canary")
        notes.append(f"`canary` is at {old_canary[:12] if old_canary else 'nothing'}, as before.")
    except RegistryError as exc:
        notes.append(f"Restoring the refs failed too ({exc}).")
    return " ".join(notes)


def _result(reg: Registry, version: str, sha: str, content: str, no_op: bool, finished: bool) -> ReleaseResult:
    refs = reg.refs()
    at = [name for name in ("canary", "stable") if refs.branches.get(name) == sha]
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
        refs, repaired = _repair_stable(reg)
        if version is not None:
            target = refs.tags.get(version)
            if target is None:
                raise UsageError(f"unknown version {version} in {reg.url} (see `adapterci versions`)")
        else:
            target = refs.branches.get("canary")
            if target is None:
                raise UsageError(f"{reg.url} has no `canary` yet: run `adapterci release` first")
        current = refs.branches.get("stable")
        if current == target:
            return _move_result(reg, refs, target, current, no_op=True, repaired=repaired)
        reg.move_ref("stable", target)
        _push_history(reg, refs.stable_history(), target)
        return _move_result(reg, refs, target, current, no_op=False, repaired=repaired)


def rollback(cfg, registry: Registry | None = None) -> RefMove:
    """Move `stable` back to the version it pointed at before the current one."""
    reg = registry or open_registry(cfg)
    with reg.lock():
        refs, repaired = _repair_stable(reg)
        history = refs.stable_history()
        if len(history) < 2:
            raise UsageError(f"{reg.url} has no earlier stable version to roll back to "
                             f"({'`stable` was set only once' if history else '`stable` was never set'})")
        current, target = history[-1], history[-2]
        reg.move_ref("stable", target)
        reg.delete_tag(f"{HISTORY_PREFIX}{len(history)}")
        return _move_result(reg, refs, target, current, no_op=False, repaired=repaired)


def retract_canary(cfg, commit: str | None = None, registry: Registry | None = None) -> RefMove:
    """Move `canary` back to `stable`. With `commit`, only while `canary` still points there (a newer release
    is not touched: RegistryError). A no-op when `canary` is already at stable."""
    reg = registry or open_registry(cfg)
    with reg.lock():
        refs = reg.refs()
        stable, canary = refs.branches.get("stable"), refs.branches.get("canary")
        if stable is None:
            raise UsageError(f"{reg.url} has no `stable` to move `canary` back to")
        if canary == stable:
            return _move_result(reg, refs, stable, canary, no_op=True, repaired=None, ref="canary")
        if commit is not None and canary != commit:
            raise RegistryError(f"`canary` in {reg.url} moved to {(canary or 'nothing')[:12]} since the analysis of "
                                f"{commit[:12]}: not rolled back; analyze the new canary")
        reg.move_ref("canary", stable)
        if reg.refs().branches.get("canary") != stable:
            raise RegistryError(f"read back: `canary` in {reg.url} is not at stable {stable[:12]}; run it again")
        return _move_result(reg, refs, stable, canary, no_op=False, repaired=None, ref="canary")


def _repair_stable(reg: Registry) -> tuple[Refs, str | None]:
    """Bring `stable` and its history back in step after an interrupted promote or rollback."""
    refs = reg.refs()
    history, stable = refs.stable_history(), refs.branches.get("stable")
    if stable is None and history:  # a move died between delete and create: put stable back where it was
        reg.move_ref("stable", history[-1])
        note = "restored `stable` after an interrupted move"
    elif stable is not None and (not history or history[-1] != stable):
        if len(history) >= 2 and history[-2] == stable:  # rollback moved stable but kept the old history entry
            reg.delete_tag(f"{HISTORY_PREFIX}{len(history)}")
            note = "finished an interrupted rollback"
        else:  # promote moved stable but did not record it
            _push_history(reg, history, stable)
            note = "recorded an interrupted promote"
    else:
        return refs, None
    return reg.refs(), note


def _push_history(reg: Registry, history: list[str], sha: str) -> None:
    if not history or history[-1] != sha:
        reg.create_tag(f"{HISTORY_PREFIX}{len(history) + 1}", sha)


def _move_result(reg: Registry, refs: Refs, target: str, previous: str | None, no_op: bool,
                 repaired: str | None, ref: str = "stable") -> RefMove:
    tag_of = {sha: tag for tag, sha in refs.versions().items()}
    return RefMove(ref=ref, version=tag_of.get(target), commit=target,
                   previous=tag_of.get(previous, previous) if previous else None, no_op=no_op,
                   registry=reg.url, repaired=repaired)
