"""Generate the config reference (docs/config.md) from the pydantic schema, so it cannot drift.

Used by the cog block in docs/config.md:  cog -r -I docs/tools docs/config.md"""

from __future__ import annotations

import types
import typing

from pydantic import BaseModel
from pydantic_core import PydanticUndefined


def reference(root: type[BaseModel]) -> str:
    """One Markdown section per config model, top level first, nested sections after their parent."""
    out: list[str] = []
    _section(root, "", set(), out)
    return "\n".join(out).rstrip() + "\n"


def _section(model: type[BaseModel], key: str, seen: set, out: list[str]) -> None:
    if model in seen:
        return
    seen.add(model)
    summary = _doc(model)
    out += [f"### `{key or 'top level'}`", "", f"{summary} (`{model.__name__}`)", "",
            "| key | type | default | description |", "|---|---|---|---|"]
    nested = []
    for name, field in model.model_fields.items():
        subs = list(_models(field.annotation))
        described = field.description or "; ".join(f"{_doc(m)} (below)" for m in subs)
        description = described.replace("|", "\\|")
        out.append(f"| `{name}` | {_type(field.annotation)}{_range(field.metadata)} | {_default(field)} | {description} |")
        suffix = "[]" if typing.get_origin(field.annotation) is list else ""
        nested += [(m, f"{key}.{name}{suffix}" if key else f"{name}{suffix}") for m in subs]
    out.append("")
    for sub, sub_key in nested:
        _section(sub, sub_key, seen, out)


def _range(metadata: list) -> str:
    """` (1 to 4,096)`, ` (> 0 to < 1)`, ` (0 or more)`: the bounds of a number, as validated."""
    bounds = {type(m).__name__.lower(): getattr(m, type(m).__name__.lower()) for m in metadata
              if type(m).__name__ in ("Ge", "Gt", "Le", "Lt")}
    low = f"{bounds['ge']:,}" if "ge" in bounds else f"> {bounds['gt']:,}" if "gt" in bounds else None
    high = f"{bounds['le']:,}" if "le" in bounds else f"< {bounds['lt']:,}" if "lt" in bounds else None
    if low and high:
        return f" ({low} to {high})"
    if low:
        return f" ({low} or more)" if "ge" in bounds else f" ({low})"
    return f" (at most {high})" if high else ""


def _doc(model: type[BaseModel]) -> str:
    return (model.__doc__ or "").strip().splitlines()[0]


def _type(t) -> str:
    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type(a) for a in args)
    if origin is list:
        return f"list of {_type(args[0])}"
    if origin is dict:
        return f"mapping of {_type(args[0])} to {_type(args[1])}"
    if origin is typing.Annotated:
        return _type(args[0])
    if t is type(None):
        return "null"
    if isinstance(t, type) and issubclass(t, BaseModel):
        return "section"
    return getattr(t, "__name__", str(t))


def _models(t):
    for arg in typing.get_args(t):
        yield from _models(arg)
    if isinstance(t, type) and issubclass(t, BaseModel):
        yield t


def _default(field) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
        return "(see section)" if isinstance(value, BaseModel) else f"`{value!r}`"
    if field.default is PydanticUndefined:
        return "**required**"
    return "`null`" if field.default is None else f"`{field.default!r}`"
