"""Building blocks shared by every typed config section: strict models and project-relative paths."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationInfo


class StrictModel(BaseModel):
    """A config section written by users: unknown keys are errors, values are validated on assignment, numbers
    are finite (`.inf` and `.nan` are refused)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False, allow_inf_nan=False)


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


def confine(path: str | Path, root: Path, what: str | None = None, must_exist: bool = True) -> Path:
    """`path` with every symlink resolved, refused (ValueError naming it) when it lies outside `root` or is
    not a regular file (a FIFO, a device or a directory would hang or break the reader). A missing path is
    returned as is unless `must_exist`. `what` names it in messages (default: the path)."""
    what = what or str(path)
    resolved = Path(path).resolve()
    root = Path(root).resolve()
    if resolved != root and root not in resolved.parents:
        via = f" (a symlink to {resolved})" if os.path.abspath(path) != str(resolved) else ""
        raise ValueError(f"{what}{via} is outside the repository root {root}")
    try:
        mode = os.stat(resolved).st_mode
    except FileNotFoundError:
        if must_exist:
            raise ValueError(f"{what} not found") from None
        return resolved
    if not stat.S_ISREG(mode):
        raise ValueError(f"{what} is not a regular file ({_kind(mode)})")
    return resolved


def confine_tree(directory: Path, root: Path, what: str) -> None:
    """Every entry below `directory` must resolve inside `root` and be a regular file or a directory
    (ValueError naming the first that does not)."""
    for path in sorted(Path(directory).rglob("*")):
        if not path.is_dir() or path.is_symlink():
            confine(path, root, f"{what} file {path.relative_to(directory)}")


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a file"


def _project_path(value: str | Path, info: ValidationInfo) -> Path:
    return resolve_in_project(value, info)


ProjectPath = Annotated[Path, AfterValidator(_project_path)]
"""A file or directory inside the repository, given relative to the config file."""
