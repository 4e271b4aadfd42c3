"""Building blocks shared by every typed config section: strict models and project-relative paths."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationInfo


class StrictModel(BaseModel):
    """A config section written by users: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


def resolve_in_project(value: str | Path, info: ValidationInfo | None = None, *, base: Path | None = None,
                       root: Path | None = None) -> Path:
    """Resolve `value` against the config's directory; refuse a path that escapes the repository root."""
    ctx = (info.context if info is not None else None) or {}
    base = base or ctx.get("base") or Path.cwd()
    root = root or ctx.get("root") or base
    path = Path(value).expanduser()
    resolved = (path if path.is_absolute() else Path(base) / path).resolve()
    root = Path(root).resolve()
    if resolved != root and root not in resolved.parents:
        raise ValueError(f"path {str(value)!r} escapes the repository root {root}")
    return resolved


def _project_path(value: str | Path, info: ValidationInfo) -> Path:
    return resolve_in_project(value, info)


ProjectPath = Annotated[Path, AfterValidator(_project_path)]
"""A file or directory inside the repository, given relative to the config file."""
