"""`adapterci init`: scaffold an adapter repository (config, data, eval sets, workflows, README section).

The files come from `adapterci/templates/project/`; `__NAME__`, `__BASE_MODEL__` and `__ACTION__` are
filled in. By default the base model is the tiny offline model built from the starter data, so the new
repository passes `adapterci check` (and runs `adapterci run`) without network access.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from adapterci import __version__
from adapterci.errors import UsageError
from adapterci.fsio import write_text_atomic
from adapterci.tiny import build_tiny_model

TINY_MODEL = "models/tiny-llama"
DEFAULT_ACTION = f"adapterci/adapterci@v{__version__}"
README_MARKER = "<!-- adapterci -->"
RENAMES = {"gitignore": ".gitignore"}
SKIP = {"README-section.md"}


@dataclass
class ScaffoldResult:
    root: Path
    created: list[Path] = field(default_factory=list)
    readme: Path | None = None
    model_built: bool = False


def templates() -> Path:
    return Path(str(resources.files("adapterci") / "templates" / "project"))


def scaffold(target: Path, name: str | None = None, base_model: str | None = None, action: str = DEFAULT_ACTION,
             force: bool = False) -> ScaffoldResult:
    """Write the project into `target`. Refuses to overwrite existing files unless `force`.
    `base_model` None builds the tiny model into models/tiny-llama; otherwise it is written as given (a Hub id)."""
    target = Path(target).resolve()
    name = name or _slug(target.name)
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", name):
        raise UsageError(f"invalid adapter name {name!r}: use lowercase letters, digits, '.', '_' and '-' (--name)")
    values = {"__NAME__": name, "__BASE_MODEL__": base_model or TINY_MODEL, "__ACTION__": action}
    src = templates()
    files = sorted(p for p in src.rglob("*") if p.is_file() and p.name not in SKIP and "__pycache__" not in p.parts)
    plan = {target / RENAMES.get(p.name, str(p.relative_to(src))) if p.parent == src else target / p.relative_to(src): p
            for p in files}
    clashes = [d for d in plan if d.exists()]
    if clashes and not force:
        shown = ", ".join(str(d.relative_to(target)) for d in clashes[:5])
        raise UsageError(f"{target} already has {shown}{' ...' if len(clashes) > 5 else ''}: use --force to overwrite")
    result = ScaffoldResult(target)
    for dest, source in plan.items():
        write_text_atomic(dest, _fill(source.read_text(encoding="utf-8"), values))
        dest.chmod(0o644)
        result.created.append(dest)
    result.readme = _readme(target, _fill((src / "README-section.md").read_text(encoding="utf-8"), values))
    if base_model is None:
        build_tiny_model(target / TINY_MODEL, [target / "data" / "train.jsonl", target / "data" / "valid.jsonl",
                                               target / "evalsets" / "sentiment.jsonl",
                                               target / "evalsets" / "safety.jsonl"])
        result.model_built = True
    return result


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
