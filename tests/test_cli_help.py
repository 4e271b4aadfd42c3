"""Every command's --help works, and `adapterci --help` stays light (no torch, transformers, GX...)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from adapterci.cli import COMMANDS, cli

HEAVY = ("torch", "transformers", "trl", "peft", "great_expectations", "datasets", "huggingface_hub",
         "matplotlib", "scipy", "pandas", "httpx2")


# The pipeline's commands (README): COMMANDS must hold at least these, so the tests below never run on an empty set.
PIPELINE = {"init", "validate", "check", "train", "eval", "gate", "explain", "release", "promote", "rollback",
            "versions", "canary", "run", "report"}


def listed_commands(help_text: str) -> list[str]:
    """The names in the "Commands:" section of a group's --help (one indented `name  description` line each)."""
    lines = help_text.splitlines()
    assert "Commands:" in lines, help_text
    section = lines[lines.index("Commands:") + 1:]
    section = section[:section.index("")] if "" in section else section
    return [line.split()[0] for line in section if line.startswith("  ") and not line.startswith("   ")]


def test_help_command_table_holds_the_pipeline() -> None:
    assert PIPELINE <= set(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_every_command(command: str) -> None:
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].split()[:3] == ["Usage:", "cli", command], result.output


def test_help_top_level_lists_commands() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert sorted(listed_commands(result.output)) == sorted(COMMANDS), result.output


@pytest.mark.parametrize("args", [["--help"], ["check", "--help"]])
def test_help_does_not_import_heavy_libraries(args: list[str]) -> None:
    code = ("import sys, json\nfrom adapterci.cli import cli\n"
            f"try:\n    cli({args!r}, prog_name='adapterci')\nexcept SystemExit:\n    pass\n"
            f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    usage = f"Usage: adapterci {args[0]} [OPTIONS]" if args[0] != "--help" else "Usage: adapterci [OPTIONS] COMMAND"
    assert out.startswith(usage), out  # the help was really printed (the lazy command loaded)
    assert json.loads(out.strip().splitlines()[-1]) == []
