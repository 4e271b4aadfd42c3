"""Every command's --help works, and `adapterci --help` stays light (no torch, transformers, GX...)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from adapterci.cli import COMMANDS, cli

HEAVY = ("torch", "transformers", "trl", "peft", "great_expectations", "datasets", "huggingface_hub",
         "matplotlib", "scipy", "pandas")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_every_command(command: str) -> None:
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: cli {command}")


def test_help_top_level_lists_commands() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.output


@pytest.mark.parametrize("args", [["--help"], ["check", "--help"]])
def test_help_does_not_import_heavy_libraries(args: list[str]) -> None:
    code = ("import sys, json\nfrom adapterci.cli import cli\n"
            f"try:\n    cli({args!r}, prog_name='adapterci')\nexcept SystemExit:\n    pass\n"
            f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []
