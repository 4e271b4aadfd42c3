"""`adapterci init`: scaffold an adapter repository (config, data, eval sets, workflows, README section).

The files come from `adapterci/templates/project/`; `__NAME__`, `__BASE_MODEL__`, `__ACTION__` (the workflows'
`uses:` of the adapterci action) and `__INSTALL__` (the README's pip requirement) are filled in. The action and
the install are pinned to one commit of adapterci's git repository: `--action`'s, else the one this adapterci
was installed from when pip recorded it (adapterci.distribution), else the placeholder UNPINNED, which fails any
workflow run and pip install until it is replaced. By default the base model is the tiny offline model built
from the starter data, so the new repository passes `adapterci check` (and runs `adapterci run`) without network
access.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Iterator

from adapterci.distribution import COMMIT, REPOSITORY, UNPINNED, installed_origin, requirement
from adapterci.errors import UsageError
from adapterci.fsio import staged_dir, write_text_atomic
from adapterci.tiny import BUILD_INFO, CORPUS, build_tiny_model

TINY_MODEL = "models/tiny-llama"
# OWNER/NAME@COMMIT, then an optional comment (`# v0.1.0`): a tag or a branch can be moved, a commit cannot
ACTION = re.compile(rf"(?P<repo>[\w.-]+/[\w.-]+)@(?P<commit>{COMMIT.pattern})(?:\s+#.*)?")
README_MARKER = "<!-- adapterci -->"
RENAMES = {"gitignore": ".gitignore"}
SKIP = {"README-section.md"}
CORPUS_FILES = ("data/train.jsonl", "data/valid.jsonl", "evalsets/sentiment.jsonl", "evalsets/safety.jsonl")
# what a tiny-model build writes (transformers' save_pretrained + adapterci.tiny); `--force` replaces
# models/tiny-llama only when it holds nothing else
TINY_FILES = frozenset({BUILD_INFO, CORPUS, "config.json", "generation_config.json", "model.safetensors",
                        "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"})


@dataclass
class ScaffoldResult:
    root: Path
    created: list[Path] = field(default_factory=list)
    readme: Path | None = None
    model_built: bool = False
    action: str = ""  # what the workflows' `uses:` says
    pinned: bool = True  # False: the placeholder UNPINNED stands where the commit goes


def templates() -> Path:
    return Path(str(resources.files("adapterci") / "templates" / "project"))


def scaffold(target: Path, name: str | None = None, base_model: str | None = None, action: str | None = None,
             force: bool = False) -> ScaffoldResult:
    """Write the project into `target`: plan every path first, refuse (UsageError, nothing written) when one is
    in the way, then write. Existing files are overwritten only with `force`, and only the scaffold's own paths:
    a file where a folder must go (`data` as a file) or a folder where a file must go is always refused, and
    `models/tiny-llama` is replaced only when it holds nothing but a tiny model that init built (a file of yours
    in it is never deleted). A write that fails (a full disk) undoes the writes before it: nothing half-written.
    `base_model` None builds the tiny model into models/tiny-llama; otherwise it is written as given (a Hub id).
    `action` (OWNER/NAME@COMMIT) None: the commit adapterci was installed from, else the placeholder UNPINNED."""
    target = Path(target).resolve()
    name = name or _slug(target.name)
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", name):
        raise UsageError(f"invalid adapter name {name!r}: use lowercase letters, digits, '.', '_' and '-' (--name)")
    action, repository, commit = _pin(action)
    values = {"__NAME__": name, "__BASE_MODEL__": base_model or TINY_MODEL, "__ACTION__": action,
              "__INSTALL__": requirement(repository, commit)}
    src = templates()
    files = sorted(p for p in src.rglob("*") if p.is_file() and p.name not in SKIP and "__pycache__" not in p.parts)
    plan = {target / RENAMES.get(p.name, str(p.relative_to(src))) if p.parent == src else target / p.relative_to(src):
            _fill(p.read_text(encoding="utf-8"), values) for p in files}
    readme = target / "README.md"
    model = target / TINY_MODEL if base_model is None else None
    _check_plan(target, plan, readme, model, force)

    result = ScaffoldResult(target, action=action, pinned=commit != UNPINNED)
    with tempfile.TemporaryDirectory(prefix="adapterci-init-") as tmp:
        built = _build_model(Path(tmp), plan, target) if model is not None else None  # before any write
        if built is not None and model is not None and model.is_dir():  # --force over an earlier build
            foreign = _not_built_by_init(model, {p.name for p in built.iterdir()})
            if foreign:
                raise UsageError(f"{model} holds files that init did not write ({', '.join(foreign[:5])}"
                                 f"{' ...' if len(foreign) > 5 else ''}): nothing was written. Move them away, or "
                                 "pass --base-model to keep this folder")
        with _undo_on_failure(target, [*plan, readme], model if built is not None else None):
            for dest, text in plan.items():
                write_text_atomic(dest, text)
                dest.chmod(0o644)
                result.created.append(dest)
            if built is not None and model is not None:
                with staged_dir(model) as staging:
                    shutil.copytree(built, staging, dirs_exist_ok=True)
                result.model_built = True
            result.readme = _readme(target, _fill((src / "README-section.md").read_text(encoding="utf-8"), values))
    return result


def _pin(action: str | None) -> tuple[str, str, str]:
    """The workflows' `uses:` reference, and the repository and commit the README installs adapterci from."""
    if action is None:
        origin = installed_origin()
        repository, commit = origin if origin is not None else (REPOSITORY, UNPINNED)
        return f"{repository}@{commit}", repository, commit
    found = ACTION.fullmatch(action.strip())
    if found is None:
        raise UsageError(f"--action {action!r}: give OWNER/NAME@COMMIT, a full 40-character commit SHA of the "
                         "adapterci repository (a tag or a branch can be moved); nothing was written")
    return action.strip(), found["repo"], found["commit"]


def _check_plan(target: Path, plan: dict[Path, str], readme: Path, model: Path | None, force: bool) -> None:
    """Every path init would write, checked before anything is written (UsageError naming them all)."""
    def rel(path: Path) -> str:
        return str(path.relative_to(target)) if path != target else str(target)

    blocked: set[str] = set()
    for dest in [*plan, readme, *([model] if model else [])]:
        for folder in [target, *(target / p for p in reversed(dest.relative_to(target).parents[:-1]))]:
            if folder.is_symlink() or folder.exists() and not folder.is_dir():
                blocked.add(f"{rel(folder)} is {'a symlink' if folder.is_symlink() else 'a file'}, not a folder")
    for dest in [*plan, readme]:
        if dest.is_symlink() or dest.exists() and not dest.is_file():
            blocked.add(f"{rel(dest)} is {'a symlink' if dest.is_symlink() else 'not a regular file'}")
    if model is not None and (model.is_symlink() or model.exists() and not model.is_dir()):
        blocked.add(f"{rel(model)} is {'a symlink' if model.is_symlink() else 'a file'}, not a folder")
    if blocked:
        raise UsageError(f"cannot scaffold into {target}: {'; '.join(sorted(blocked))}. Nothing was written: move "
                         "them away (--force never replaces them)")
    clashes = [rel(d) for d in plan if d.exists()] + ([rel(model)] if model is not None and model.exists() else [])
    if clashes and not force:
        shown = ", ".join(clashes[:5])
        raise UsageError(f"{target} already has {shown}{' ...' if len(clashes) > 5 else ''}: nothing was written; "
                         "use --force to overwrite")


def _not_built_by_init(model: Path, built: set[str]) -> list[str]:
    """The entries of `model` that a tiny-model build does not write (all of them without a build record)."""
    entries = sorted(str(p.relative_to(model)) for p in model.rglob("*") if not p.is_dir() or p.is_symlink())
    if not (model / BUILD_INFO).is_file():
        return entries
    return [e for e in entries if e not in built | TINY_FILES]


def _build_model(tmp: Path, plan: dict[Path, str], target: Path) -> Path:
    """The tiny model built from the scaffold's own corpus, in `tmp` (the target is not touched yet)."""
    corpus = []
    for rel in CORPUS_FILES:
        path = tmp / "corpus" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(plan[target / rel], encoding="utf-8")
        corpus.append(path)
    return build_tiny_model(tmp / "model", corpus)


@contextmanager
def _undo_on_failure(target: Path, paths: list[Path], model: Path | None) -> Iterator[None]:
    """On any failure, put back what the block changed: files it created are removed, files it overwrote get
    their old bytes, a model folder it created is removed, and so is every folder it created (when empty: a
    user's file is never removed)."""
    before = {p: p.read_bytes() if p.is_file() else None for p in paths}
    inside = [q for p in [*paths, *([model] if model else [])] for q in (p, *p.parents)
              if q == target or target in q.parents]
    created = sorted({q for q in inside if not q.exists() and q not in before}, key=lambda q: -len(q.parts))
    model_existed = model is not None and model.exists()
    try:
        yield
    except BaseException:
        for path, data in before.items():
            if data is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(data)
        if model is not None and not model_existed:
            shutil.rmtree(model, ignore_errors=True)
        for folder in created:
            try:
                folder.rmdir()
            except OSError:
                pass
        raise


def _fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace(key, value)
    return text


def _readme(target: Path, section: str) -> Path:
    """Append the adapterci section to README.md (created if missing) unless it is already there."""
    readme = target / "README.md"
    current = readme.read_text(encoding="utf-8") if readme.is_file() else f"# {target.name}\n"
    if README_MARKER not in current:
        write_text_atomic(readme, current.rstrip("\n") + "\n\n" + section)
        readme.chmod(0o644)
    return readme


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._") or "adapter"
