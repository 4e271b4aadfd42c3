"""The accepted row formats, normalised to one `Example`: prompt messages plus the answer (and, for a preference
pair, the rejected answer)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from adapterci.data.load import Problem, RawRow, Source

Format = Literal["alpaca", "chat", "prompt_completion", "preference"]
ROLES = ("system", "user", "assistant")
_KNOWN_KEYS = {
    "alpaca": {"instruction", "input", "output"},
    "chat": {"messages"},
    "prompt_completion": {"prompt", "completion"},
    "preference": {"prompt", "chosen", "rejected"},
}


@dataclass(frozen=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True)
class Example:
    """One normalised row. `completion` is the answer to learn (or the expected answer of an eval item);
    it is None for eval items that have none (safety prompts). A preference pair (format `preference`) has the
    chosen answer as `completion` and the rejected one as `rejected`. `meta` keeps every other field of the row."""

    messages: tuple[Message, ...]
    completion: str | None
    source: Source
    format: Format
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    rejected: str | None = None

    @property
    def is_pair(self) -> bool:
        return self.rejected is not None

    @property
    def prompt_text(self) -> str:
        """The user-visible prompt: the contents of all prompt messages, joined."""
        return "\n\n".join(m.content for m in self.messages)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready canonical form (used for fingerprints)."""
        out: dict[str, Any] = {"messages": [[m.role, m.content] for m in self.messages], "completion": self.completion}
        if self.rejected is not None:
            out["rejected"] = self.rejected
        return out


def detect_format(data: dict[str, Any]) -> Format | None:
    """The format whose keys the row carries, or None."""
    if "chosen" in data or "rejected" in data:
        return "preference"
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
        return Problem(source, "unknown row format: expected `messages`, `instruction`/`output`, `prompt`/`completion` "
                               "or `chosen`/`rejected`")
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
        if kind == "preference":
            return _pair(data, source, meta)
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


def _pair(data: dict[str, Any], source: Source, meta: dict) -> Example:
    """A preference pair in one of TRL's shapes: `prompt` + `chosen` + `rejected` as strings, or as messages
    (`prompt` a conversation ending with the user, each answer one assistant message), or without `prompt`
    (implicit: `chosen` and `rejected` are whole conversations that share every message but the last)."""
    for key in ("chosen", "rejected"):
        if data.get(key) is None:
            raise _FieldError(f"missing field `{key}`: a preference row needs `chosen` and `rejected`")
    prompt = data.get("prompt")
    if isinstance(prompt, str) or (prompt is None and isinstance(data["chosen"], str)):
        if prompt is None:
            raise _FieldError("missing field `prompt`: a plain-text preference row needs `prompt` (only "
                              "conversations may carry the prompt inside `chosen` and `rejected`)")
        return Example((Message("user", _text(data, "prompt")),), _text(data, "chosen"), source, "preference",
                       meta, _text(data, "rejected"))
    if prompt is None:
        chosen, rejected = _messages(data["chosen"], "chosen"), _messages(data["rejected"], "rejected")
        if chosen[:-1] != rejected[:-1]:
            raise _FieldError("`chosen` and `rejected` must share every message but the last (the implicit prompt)")
        prompt_msgs = chosen[:-1]
    else:
        prompt_msgs = _messages(prompt, "prompt")
        chosen, rejected = _messages(data["chosen"], "chosen"), _messages(data["rejected"], "rejected")
        for key, answer in (("chosen", chosen), ("rejected", rejected)):
            if len(answer) != 1:
                raise _FieldError(f"`{key}` must hold one assistant message (the answer), got {len(answer)}")
    for key, answer in (("chosen", chosen), ("rejected", rejected)):
        if answer[-1].role != "assistant":
            raise _FieldError(f"the last message of `{key}` must be from `assistant`")
    if not prompt_msgs:
        raise _FieldError("the pair has no prompt: give `prompt`, or start `chosen` and `rejected` with it")
    _check_turns(list(prompt_msgs) + [chosen[-1]])
    return Example(tuple(prompt_msgs), chosen[-1].content, source, "preference", meta, rejected[-1].content)


def _messages(messages: Any, key: str) -> list[Message]:
    """A list of messages (`key` names the field in errors)."""
    if not isinstance(messages, list) or not messages:
        raise _FieldError("`messages` must be a non-empty list" if key == "messages"
                          else f"`{key}` must be a string or a non-empty list of messages")
    parsed = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise _FieldError(f"`{key}[{i}]` must be an object with string `role` and `content`")
        if m["role"] not in ROLES:
            raise _FieldError(f"`{key}[{i}].role` is {m['role']!r}: expected one of {', '.join(ROLES)}")
        if not m["content"].strip():
            raise _FieldError(f"`{key}[{i}].content` is empty")
        parsed.append(Message(m["role"], m["content"]))
    return parsed


def _check_turns(parsed: list[Message]) -> None:
    """System first (if at all), then user and assistant alternating, starting with the user."""
    if any(m.role == "system" for m in parsed[1:]):
        raise _FieldError("a `system` message may only come first")
    turns = [m for m in parsed if m.role != "system"]
    for a, b in zip(turns, turns[1:]):
        if a.role == b.role:
            raise _FieldError(f"two `{a.role}` turns in a row: roles must alternate user/assistant")
    if not turns or turns[0].role != "user":
        raise _FieldError("the first non-system message must be from `user`")


def _from_messages(data: dict[str, Any], source: Source, meta: dict, require_completion: bool) -> Example:
    parsed = _messages(data["messages"], "messages")
    _check_turns(parsed)
    if parsed[-1].role == "assistant":
        return Example(tuple(parsed[:-1]), parsed[-1].content, source, "chat", meta)
    if require_completion:
        raise _FieldError("the last message must be from `assistant` (the answer to learn)")
    return Example(tuple(parsed), None, source, "chat", meta)
