"""The three accepted row formats, normalised to one `Example`: prompt messages plus the answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from adapterci.data.load import Problem, RawRow, Source

Format = Literal["alpaca", "chat", "prompt_completion"]
ROLES = ("system", "user", "assistant")
_KNOWN_KEYS = {
    "alpaca": {"instruction", "input", "output"},
    "chat": {"messages"},
    "prompt_completion": {"prompt", "completion"},
}


@dataclass(frozen=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True)
class Example:
    """One normalised row. `completion` is the answer to learn (or the expected answer of an eval item);
    it is None for eval items that have none (safety prompts). `meta` keeps every other field of the row."""

    messages: tuple[Message, ...]
    completion: str | None
    source: Source
    format: Format
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def prompt_text(self) -> str:
        """The user-visible prompt: the contents of all prompt messages, joined."""
        return "\n\n".join(m.content for m in self.messages)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready canonical form (used for fingerprints)."""
        return {"messages": [[m.role, m.content] for m in self.messages], "completion": self.completion}


def detect_format(data: dict[str, Any]) -> Format | None:
    """The format whose keys the row carries, or None."""
    if "messages" in data:
        return "chat"
    if "instruction" in data:
        return "alpaca"
    if "prompt" in data:
        return "prompt_completion"
    return None


def normalise(row: RawRow, fmt: str = "auto", require_completion: bool = True) -> Example | Problem:
    """Turn a raw row into an Example, or a Problem naming the file, line and field."""
    data, source = row.data, row.source
    detected = detect_format(data)
    kind = detected if fmt == "auto" else fmt
    if kind is None:
        return Problem(source, "unknown row format: expected `messages`, `instruction`/`output` or `prompt`/`completion`")
    if fmt != "auto" and detected not in (None, fmt):
        return Problem(source, f"row is in {detected} format but `data.format` is {fmt}")
    meta = {k: v for k, v in data.items() if k not in _KNOWN_KEYS[kind]}
    try:
        if kind == "alpaca":
            instruction = _text(data, "instruction")
            extra = _text(data, "input", optional=True)
            content = f"{instruction}\n\n{extra}" if extra else instruction
            return Example((Message("user", content),), _text(data, "output", optional=not require_completion),
                           source, kind, meta)
        if kind == "prompt_completion":
            return Example((Message("user", _text(data, "prompt")),),
                           _text(data, "completion", optional=not require_completion), source, kind, meta)
        return _from_messages(data, source, meta, require_completion)
    except _FieldError as exc:
        return Problem(source, str(exc))


class _FieldError(ValueError):
    pass


def _text(data: dict[str, Any], key: str, optional: bool = False) -> str | None:
    value = data.get(key)
    if value is None:
        if optional:
            return None
        raise _FieldError(f"missing field `{key}`")
    if not isinstance(value, str):
        raise _FieldError(f"field `{key}` must be a string, got {type(value).__name__}")
    if not value.strip() and not optional:
        raise _FieldError(f"field `{key}` is empty")
    return value


def _from_messages(data: dict[str, Any], source: Source, meta: dict, require_completion: bool) -> Example:
    messages = data["messages"]
    if not isinstance(messages, list) or not messages:
        raise _FieldError("`messages` must be a non-empty list")
    parsed = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise _FieldError(f"`messages[{i}]` must be an object with string `role` and `content`")
        if m["role"] not in ROLES:
            raise _FieldError(f"`messages[{i}].role` is {m['role']!r}: expected one of {', '.join(ROLES)}")
        if not m["content"].strip():
            raise _FieldError(f"`messages[{i}].content` is empty")
        parsed.append(Message(m["role"], m["content"]))
    if any(m.role == "system" for m in parsed[1:]):
        raise _FieldError("a `system` message may only come first")
    turns = [m for m in parsed if m.role != "system"]
    for i, (a, b) in enumerate(zip(turns, turns[1:])):
        if a.role == b.role:
            raise _FieldError(f"two `{a.role}` turns in a row: roles must alternate user/assistant")
    if not turns or turns[0].role != "user":
        raise _FieldError("the first non-system message must be from `user`")
    if parsed[-1].role == "assistant":
        return Example(tuple(parsed[:-1]), parsed[-1].content, source, "chat", meta)
    if require_completion:
        raise _FieldError("the last message must be from `assistant` (the answer to learn)")
    return Example(tuple(parsed), None, source, "chat", meta)
