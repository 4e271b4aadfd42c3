"""One prompt format, used verbatim by training and evaluation. Its fingerprint is recorded at training time
and checked at evaluation time, so a candidate is never scored with a prompt it was not trained on."""

from __future__ import annotations

import hashlib
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
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        env = ImmutableSandboxedEnvironment(trim_blocks=False, lstrip_blocks=False, keep_trailing_newline=True)
        return env.from_string(BUILTIN.get(self.template, self.template))

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
        return self._jinja.render(messages=dicts, add_generation_prompt=True)


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
