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
