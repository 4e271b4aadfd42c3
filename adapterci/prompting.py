"""One prompt format, used verbatim by training and evaluation. Its fingerprint is recorded at training time
and checked at evaluation time, so a candidate is never scored with a prompt it was not trained on."""

from __future__ import annotations

import contextvars
import functools
import hashlib
import json
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable, Sequence

from adapterci.data.formats import Message
from adapterci.errors import ConfigError

ALPACA = (
    "{% for m in messages %}"
    "{% if m.role == 'system' %}### System:\n{{ m.content }}\n\n"
    "{% elif m.role == 'user' %}### Instruction:\n{{ m.content }}\n\n"
    "{% else %}### Response:\n{{ m.content }}\n\n{% endif %}"
    "{% endfor %}### Response:\n"
)
BUILTIN = {"alpaca": ALPACA}
NAMES = (*BUILTIN, "chat")
_PROBE = "adapterci-probe-prompt"


def template_problem(template: str) -> str | None:
    """Why `template` cannot be a `prompt_template` (None when it can): it must be a known name, or a Jinja
    template that compiles and renders a test conversation's content (a bare word is a typo, not a template)."""
    import difflib

    if template in NAMES:
        return None
    if "{{" not in template and "{%" not in template:
        close = difflib.get_close_matches(template, NAMES, n=1, cutoff=0.6)
        hint = f"did you mean `{close[0]}`? " if close else ""
        return (f"unknown template name {template!r}: {hint}use {', '.join(f'`{n}`' for n in NAMES)} or a Jinja "
                "template over `messages`")
    from jinja2 import TemplateError

    try:
        text = PromptFormat(template).render((Message("system", "Be brief."), Message("user", _PROBE)))
    except TemplateError as exc:
        line = getattr(exc, "lineno", None)
        return f"the Jinja template does not work{f' (template line {line})' if line else ''}: {exc.message or exc}"
    if _PROBE not in text:
        return "the Jinja template never renders the messages' content (`{{ m.content }}` for each of `messages`)"
    return None


class PromptFormat:
    """Renders prompt messages to the text the model sees before its answer.

    `template` is `alpaca`, `chat` (the tokenizer's chat template with a generation prompt) or a Jinja string
    over `messages` (each with `role` and `content`)."""

    def __init__(self, template: str, tokenizer: Any | None = None):
        if template == "chat" and (tokenizer is None or not getattr(tokenizer, "chat_template", None)):
            raise ValueError("`prompt_template: chat` needs a tokenizer with a chat template")
        self.template = template
        self.tokenizer = tokenizer

    @cached_property
    def _jinja(self):
        if self.template in BUILTIN:  # ours: rendered without the work budget
            from jinja2.sandbox import ImmutableSandboxedEnvironment

            env = ImmutableSandboxedEnvironment(trim_blocks=False, lstrip_blocks=False, keep_trailing_newline=True)
            return env.from_string(BUILTIN[self.template])
        return _bounded_template(self.template)

    @property
    def source(self) -> str:
        """The template text actually used."""
        if self.template == "chat":
            return self.tokenizer.chat_template
        return BUILTIN.get(self.template, self.template)

    @property
    def fingerprint(self) -> str:
        """sha256 of the template text: equal fingerprints render equal prompts."""
        return hashlib.sha256(self.source.encode()).hexdigest()

    def render(self, messages: Sequence[Message]) -> str:
        """The prompt text for `messages`, ending where the model's answer starts."""
        dicts = [{"role": m.role, "content": m.content} for m in messages]
        if self.template == "chat":
            return self.tokenizer.apply_chat_template(dicts, tokenize=False, add_generation_prompt=True)
        if self.template in BUILTIN:
            return self._jinja.render(messages=dicts, add_generation_prompt=True)
        return _render_bounded(self._jinja, sum(len(m.content) for m in messages), messages=dicts,
                               add_generation_prompt=True)


def render_rows(render: Callable[[Sequence[Message]], str], examples: Sequence[Any],
                messages: Callable[[Any], Sequence[Message]] = lambda ex: ex.messages) -> list[str]:
    """`render(messages(ex))` (default: the row's own messages) for every example; a template that fails on a
    row is a ConfigError naming it."""
    from jinja2 import TemplateError

    out = []
    for ex in examples:
        try:
            out.append(render(messages(ex)))
        except TemplateError as exc:
            raise ConfigError(f"{ex.source}: `prompt_template` cannot render this row: {exc.message or exc}") from None
    return out


def completion_start(prompt_ids: Sequence[int], full_ids: Sequence[int]) -> int:
    """Where the answer starts in the tokens of prompt + answer: the length of their common token prefix
    (a tokenizer may merge the prompt's last token with the answer's first, so this can be < len(prompt_ids))."""
    n = 0
    for x, y in zip(prompt_ids, full_ids):
        if x != y:
            break
        n += 1
    return n


# --- a user's Jinja template, rendered with bounded work ------------------------------------------------------
#
# A `prompt_template` is policy, but it is code: `{% for i in range(99999) %}{% for j in range(99999) %}` would
# hang `validate`, `{{ "x" * 10**10 }}` or `{{ "a" | center(10**9) }}` would allocate gigabytes. It is rendered in
# Jinja's immutable sandbox, compiled with every loop, every printed value and every `~` routed through a
# per-render `_Budget`, and with every call, filter and arithmetic operator checked: an operation whose result
# would be larger than `limit` is refused before it runs (estimated from its arguments), every value made and
# every loop step is charged to `work`, and running out of either is a `SecurityError` (a TemplateError), which
# `template_problem` reports as a config error naming `prompt_template`. Both limits grow with the messages'
# length, so a template that prints each message a few times never meets them.

TEMPLATE_BASE = 100_000
"""Characters a rendered prompt (and any value made on the way) may have beyond 4x its messages' content."""
WORK_FACTOR = 10
"""Work units (loop steps, calls, characters made and printed) per character of that limit."""
MAX_INT_BITS = 4096
_BUDGET: contextvars.ContextVar["_Budget | None"] = contextvars.ContextVar("adapterci_template_budget", default=None)
_NUMBER = re.compile(r"\d+")


@dataclass
class _Budget:
    limit: int
    work: int

    def charge(self, units: int, what: str) -> None:
        self.work -= units
        if self.work < 0:
            from jinja2.exceptions import SecurityError

            raise SecurityError(f"the template does too much work ({what}): a prompt template may make and print at "
                                f"most {WORK_FACTOR}x {self.limit:,} characters and loop steps")

    def fits(self, size: int, what: str) -> None:
        if size > self.limit:
            from jinja2.exceptions import SecurityError

            raise SecurityError(f"{what} would be {size:,} characters long, more than a prompt may be "
                                f"({self.limit:,})")


def _budget() -> _Budget:
    budget = _BUDGET.get()
    if budget is None:  # compile-time constant folding: leave it to run time, within a budget
        raise RuntimeError("no template budget")
    return budget


def _size(value: Any) -> int:
    """What a value costs: its length (characters, items), or the bytes of an integer."""
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, int):
        return value.bit_length() // 8 + 1
    try:
        return len(value) + 1
    except TypeError:
        return 1


def _made(value: Any, what: str) -> Any:
    """Check and charge a value just made."""
    budget = _budget()
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        from jinja2.exceptions import SecurityError

        raise SecurityError(f"{what} is a {value.bit_length():,}-bit number: a prompt template has no use for it")
    size = _size(value)
    budget.fits(size, what)
    budget.charge(size, what)
    return value


def _strlen(value: Any) -> int:
    return len(value) if isinstance(value, (str, bytes)) else len(str(value)) if isinstance(value, (int, float)) else _size(value)


def _format_estimate(fmt: Any, args: Sequence[Any], markers: str) -> int:
    """An upper bound of the length of `fmt` formatted with `args` (`%` or `str.format`): every marker may insert
    the longest argument, and every number in `fmt` may be a width."""
    if not isinstance(fmt, (str, bytes)):
        return 0
    text = fmt if isinstance(fmt, str) else fmt.decode("latin-1")
    longest = max((_strlen(a) for a in args), default=0)
    widths = sum(int(n) if len(n) < 12 else 10**12 for n in _NUMBER.findall(text))
    ints = sum(abs(a) for a in args if isinstance(a, int) and not isinstance(a, bool))
    return len(text) + sum(text.count(m) for m in markers) * longest + widths + ints


def _flat_args(args: Sequence[Any], kwargs: dict) -> list[Any]:
    out = list(args) + list(kwargs.values())
    for a in list(out):
        if isinstance(a, (tuple, list)):
            out += list(a)[:10_000]
        elif isinstance(a, dict):
            out += list(a.values())[:10_000]
    return out


def _arg(args: Sequence[Any], kwargs: dict, index: int, name: str, default: Any = None) -> Any:
    return args[index] if len(args) > index else kwargs.get(name, default)


def _amplified(name: str, value: Any, args: Sequence[Any], kwargs: dict, method: bool) -> int | None:
    """An upper bound of the size of `value.name(*args, **kwargs)` (a method) or `name(value, *args, **kwargs)`
    (a filter) for the operations whose result can be much larger than their inputs; None for the others."""
    length = _strlen(value)

    def number(x: Any) -> int:
        return abs(x) if isinstance(x, int) and not isinstance(x, bool) else len(x) if isinstance(x, str) else 0

    if name in ("center", "ljust", "rjust", "zfill"):
        return max(length, number(_arg(args, kwargs, 0, "width", 80)))
    if name == "expandtabs":
        return length + (str(value).count("\t") + 1) * number(_arg(args, kwargs, 0, "tabsize", 8))
    if name in ("format", "format_map"):
        return _format_estimate(value, _flat_args(args, kwargs), "%{")
    if name == "join":  # method: value is the separator; filter: value is the sequence, args[0] the separator
        items, sep = (args[0] if args else [], value) if method else (value, _arg(args, kwargs, 0, "d", ""))
        try:
            return len(items) * (_strlen(sep) + 1) + sum(_strlen(x) for x in items)
        except TypeError:
            return None
    if name == "replace":
        old, new = _arg(args, kwargs, 0, "old", ""), _arg(args, kwargs, 1, "new", "")
        count = str(value).count(str(old)) if old else length + 1
        return length + count * _strlen(new)
    if name == "translate":
        table = args[0] if args else None
        longest = max((_strlen(v) for v in table.values()), default=1) if isinstance(table, dict) else 1
        return length * max(longest, 1)
    if name == "to_bytes":
        return number(_arg(args, kwargs, 0, "length", 1))
    if name == "indent":
        width = _arg(args, kwargs, 0, "width", 4)
        return length + (str(value).count("\n") + 1) * number(width)
    if name == "wordwrap":
        width = max(number(_arg(args, kwargs, 0, "width", 79)), 1)
        wrap = _arg(args, kwargs, 2, "wrapstring", None) or "\n"
        return length + (length // width + str(value).count("\n") + 1) * _strlen(wrap)
    if name in ("batch", "slice"):
        return _size(value) + number(_arg(args, kwargs, 0, "linecount" if name == "batch" else "slices", 1))
    if name == "tojson":
        indent = number(_arg(args, kwargs, 0, "indent", 0))
        try:
            flat = json.dumps(value, default=str)
        except (TypeError, ValueError, RecursionError):
            return None
        depth = sum(flat.count(c) for c in "[{")
        return len(flat) + (sum(flat.count(c) for c in ",[{") + 1) * indent * (depth + 1)
    if name == "sum":
        start = _arg(args, kwargs, 1, "start", 0)
        return None if isinstance(start, (int, float)) else 10**12  # summing lists or strings is quadratic
    return None


def _guard_call(name: str, value: Any, args: Sequence[Any], kwargs: dict, method: bool) -> None:
    budget = _budget()
    budget.charge(1, f"call of {name}")
    estimate = _amplified(name, value, args, kwargs, method)
    if estimate is not None:
        budget.fits(estimate, f"the result of `{name}`")


def _guarded_filter(name: str, func: Callable) -> Callable:
    @functools.wraps(func)  # keeps Jinja's pass_context/pass_environment mark
    def guarded(*args: Any, **kwargs: Any) -> Any:
        passes = getattr(func, "jinja_pass_arg", None)
        value_at = 1 if passes is not None else 0
        value = args[value_at] if len(args) > value_at else None
        _guard_call(name, value, args[value_at + 1:], kwargs, method=False)
        return _made(func(*args, **kwargs), f"the result of `{name}`")

    return guarded


def _guarded_range(*args: Any) -> range:
    numbers = range(*args)
    _budget().fits(len(numbers), f"range{args}")
    _budget().charge(len(numbers), f"range{args}")
    return numbers


def _steps(iterable: Any) -> Any:
    budget = _budget()
    for item in iterable:
        budget.charge(1, "loop steps")
        yield item


def _printed(value: Any) -> Any:
    _budget().charge(len(value) if isinstance(value, str) else len(str(value)), "printed text")
    return value


@functools.lru_cache(maxsize=1)
def _bounded_environment():
    from jinja2.runtime import LoopContext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class BoundedEnvironment(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})

        def call_binop(self, context, operator, left, right):
            what = f"`{operator}`"
            if operator == "*":
                for seq, n in ((left, right), (right, left)):
                    if isinstance(seq, (str, bytes, list, tuple)) and isinstance(n, int):
                        _budget().fits(len(seq) * max(n, 0), f"the result of {what}")
                if isinstance(left, int) and isinstance(right, int):
                    _budget().fits((left.bit_length() + right.bit_length()) // 8, f"the result of {what}")
            elif operator == "**" and isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 0:
                if right * left.bit_length() > MAX_INT_BITS:
                    from jinja2.exceptions import SecurityError

                    raise SecurityError(f"{left} ** {right} has more than {MAX_INT_BITS} bits: a prompt template has "
                                        "no use for it")
            elif operator == "%" and isinstance(left, (str, bytes)):
                args = right if isinstance(right, tuple) else (right,)
                _budget().fits(_format_estimate(left, _flat_args(args, {}), "%"), f"the result of {what}")
            return _made(super().call_binop(context, operator, left, right), f"the result of {what}")

        def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 (Jinja's signature)
            if __obj is _steps or __obj is _printed:
                return __obj(*args)
            if isinstance(__obj, LoopContext) and args:  # a recursive loop's next level
                args = (_steps(args[0]), *args[1:])
            owner = getattr(getattr(__obj, "__wrapped__", __obj), "__self__", None)  # the sandbox wraps str.format
            name = getattr(__obj, "__name__", type(__obj).__name__)
            _guard_call(name, owner, args, kwargs, method=owner is not None)
            return _made(super().call(__context, __obj, *args, **kwargs), f"the result of `{name}`")

    env = BoundedEnvironment(trim_blocks=False, lstrip_blocks=False, keep_trailing_newline=True)
    env.globals.pop("lipsum", None)
    env.globals["range"] = _guarded_range
    env.filters = {name: _guarded_filter(name, f) for name, f in env.filters.items()}
    env.adapterci_steps, env.adapterci_printed = _steps, _printed
    return env


def _bounded_template(source: str):
    """`source` compiled in the bounded environment, every loop step, printed value and operand of `~` charged to
    the budget (a `~` result is no longer than the work its operands were charged).
    A template too deeply nested for Jinja's parser or Python's compiler is a TemplateSyntaxError."""
    from jinja2 import TemplateError, nodes
    from jinja2.exceptions import TemplateSyntaxError

    env = _bounded_environment()

    def hook(name: str, node: Any) -> Any:
        return nodes.Call(nodes.EnvironmentAttribute(name), [node], [], None, None, lineno=node.lineno)

    try:
        tree = env.parse(source)
        for loop in tree.find_all(nodes.For):
            loop.iter = hook("adapterci_steps", loop.iter)
        for concat in list(tree.find_all(nodes.Concat)):
            concat.nodes = [hook("adapterci_printed", n) for n in concat.nodes]
        for output in tree.find_all(nodes.Output):
            output.nodes = [hook("adapterci_printed", nodes.Const(n.data, lineno=n.lineno))
                            if isinstance(n, nodes.TemplateData) else hook("adapterci_printed", n) for n in output.nodes]
        return env.from_string(tree)
    except TemplateError:
        raise
    except Exception as exc:  # noqa: BLE001 (RecursionError, Python's "too many statically nested blocks")
        raise TemplateSyntaxError(f"the template cannot be compiled: {type(exc).__name__}: {exc}", 1) from None


def _render_bounded(template: Any, content_chars: int, **context: Any) -> str:
    """Render `template` (from `_bounded_template`) within a budget that grows with the messages' content.
    Any exception of the template's own making (a division by zero, a recursion without end) is a TemplateError."""
    from jinja2 import TemplateError
    from jinja2.exceptions import TemplateRuntimeError

    limit = TEMPLATE_BASE + 4 * content_chars
    token = _BUDGET.set(_Budget(limit, WORK_FACTOR * limit))
    try:
        text = template.render(**context)
    except TemplateError:
        raise
    except Exception as exc:  # noqa: BLE001 (the template's own failure, not ours)
        raise TemplateRuntimeError(f"{type(exc).__name__}: {exc}") from None
    finally:
        _BUDGET.reset(token)
    _budget_limit_check(text, limit)
    return text


def _budget_limit_check(text: str, limit: int) -> None:
    if len(text) > limit:
        from jinja2.exceptions import SecurityError

        raise SecurityError(f"the rendered prompt is {len(text):,} characters long, more than a prompt may be "
                            f"({limit:,})")
