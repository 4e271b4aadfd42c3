"""Hostile or careless policy and config input (issue 25): adapterci.yaml, its prompt template, gate rules and the
results files a gate reads. Each is refused with exit 2 and a message naming the key and its YAML line (or the
file), without a traceback and without writing anything."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapterci.cli import cli

pytestmark = pytest.mark.timeout(120)


def edit(project: Path, old: str, new: str) -> None:
    config = project / "adapterci.yaml"
    text = config.read_text()
    assert old in text, old
    config.write_text(text.replace(old, new, 1))


def line_of(project: Path, snippet: str) -> int:
    """The 1-based line of the first line of the project's config holding `snippet`."""
    lines = (project / "adapterci.yaml").read_text().splitlines()
    return next(n for n, text in enumerate(lines, 1) if snippet in text)


def validate(project: Path):
    """`adapterci validate` on the project's config; asserts the refusal's common shape (exit 2, no traceback,
    nothing written) and returns the output."""
    result = CliRunner().invoke(cli, ["validate", str(project / "adapterci.yaml")])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"Error: invalid config {(project / 'adapterci.yaml').resolve()}:")
    assert "Traceback" not in result.output
    assert not (project / ".adapterci").exists()
    return result.output


# --- gate.rules: a policy without rules passes everything ------------------------------------------------------


def test_a_policy_without_rules_is_a_config_error(example_project: Path) -> None:
    text = (example_project / "adapterci.yaml").read_text()
    gate = text[text.index("\ngate:\n") + 1:text.index("  significance: 0.05\n")]
    edit(example_project, gate, "gate:\n  rules: []\n")
    out = validate(example_project)
    assert f"line {line_of(example_project, 'rules: []')}: `gate.rules`: no rules: a release policy without rules " \
           "would pass every adapter" in out
    edit(example_project, "  rules: []\n", "")
    out = validate(example_project)
    assert f"line {line_of(example_project, 'gate:')}: `gate.rules`: missing: a release policy needs at least one rule" in out
    edit(example_project, "gate:\n", "")
    edit(example_project, "  significance: 0.05\n", "")
    out = validate(example_project)
    assert "`gate`: the `gate:` section is missing: a release policy needs at least one rule in `gate.rules`" in out


# --- prompt_template: a Jinja template is code, rendered with bounded work -------------------------------------

CONTENT = "{% for m in messages %}{{ m.content }}{% endfor %}"
HOSTILE_TEMPLATES = {
    "nested-ranges": "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}" + CONTENT,
    "repeat-10-GB": "{{ 'x' * 10**10 }}" + CONTENT,
    "center-1-GB": "{{ 'a' | center(1000000000) }}" + CONTENT,
    "format-width-1-GB": "{{ '%0999999999d' | format(1) }}{{ '{:>999999999}'.format(1) }}" + CONTENT,
    "doubling-concat": "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"
                       + CONTENT,
    "huge-power": "{{ 7 ** 999999999 }}" + CONTENT,
    "printed-in-a-loop": "{% for i in range(99999) %}{{ messages[0].content * 1000 }}{% endfor %}" + CONTENT,
    "replace-amplifier": "{{ ('x' * 99999) | replace('', 'y' * 99999) }}" + CONTENT,
    "endless-macro": "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}" + CONTENT,
    "too-deeply-nested": "{% for i in [1] %}" * 30 + CONTENT + "{% endfor %}" * 30,
    "division-by-zero": "{{ 1 / 0 }}" + CONTENT,
}


@pytest.mark.parametrize("template", HOSTILE_TEMPLATES.values(), ids=HOSTILE_TEMPLATES)
def test_a_hostile_prompt_template_is_refused_quickly(example_project: Path, template: str) -> None:
    import json

    edit(example_project, "prompt_template: alpaca ", f"prompt_template: {json.dumps(template)} ")
    started = time.perf_counter()
    out = validate(example_project)
    assert time.perf_counter() - started < 5
    assert f"line {line_of(example_project, 'prompt_template:')}: `prompt_template`: the Jinja template does not " \
           "work" in out


def test_a_bounded_template_still_renders_long_messages() -> None:
    """The budget grows with the messages: a template that prints a long message a few times is not refused."""
    from adapterci.data.formats import Message
    from adapterci.prompting import PromptFormat, template_problem

    template = ("{% set ns = namespace(sys='') %}{% for m in messages if m.role == 'system' %}{% set ns.sys = m.content %}"
                "{% endfor %}[SYS]{{ ns.sys }}{% for m in messages if m.role != 'system' %}\n{{ m.role | upper }}: "
                "{{ m.content | trim }}{% endfor %}\n{{ messages | tojson(indent=2) | length }} {{ '%s/%d' % ('a', 2) }}")
    assert template_problem(template) is None
    long = "word " * 200_000
    text = PromptFormat(template).render((Message("system", "Be brief."), Message("user", long)))
    assert text.startswith("[SYS]Be brief.\nUSER: word word") and text.endswith(" a/2") and len(text) > 1_000_000
