"""Hostile environment (issue 25, round two): settings, local files, `init` over existing files, interrupted
checkpoints, a garbage base model, and `--json` on failure. Each is refused with exit 2 (or handled) and a
message naming the file, key or variable; nothing is written, deleted or half-done."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from adapterci.cli import cli


# --- --json: one JSON object on stdout, also on failure -----------------------------------------------------------
def json_commands() -> list[tuple[str, ...]]:
    """Every command (nested ones too) that has a `--json` option, by its path of names."""
    ctx = click.Context(cli)

    def walk(group: click.Group, prefix: tuple[str, ...]):
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            if isinstance(command, click.Group):
                yield from walk(command, (*prefix, name))
            elif any(p.name == "as_json" for p in command.params):
                yield (*prefix, name)

    found = list(walk(cli, ()))
    assert len(found) >= 13, found  # not vacuous: the list comes from the real group
    return found


JSON_COMMANDS = json_commands()


def failing_args(path: tuple[str, ...], tmp_path: Path) -> list[str]:
    """Arguments that make the command fail inside it: a config that does not exist (or, without --config, no
    GitHub event); required options get placeholder values."""
    ctx = click.Context(cli)
    command: click.Command = cli
    for name in path:
        command = command.get_command(ctx, name)  # type: ignore[attr-defined]
    args = [*path, "--json"]
    for param in command.params:
        if param.name == "config_path":
            args += ["--config", str(tmp_path / "missing.yaml")]
        elif param.required and isinstance(param, click.Option):
            value = str(tmp_path) if isinstance(param.type, click.Path) else "0" * 40 if "sha" in param.name else "x"
            args += [param.opts[0], value]
    return args


def one_json_error(result, exit_code: int = 2) -> dict:
    assert result.exit_code == exit_code, result.output
    error = json.loads(result.stdout)["error"]  # the whole of stdout is one JSON object
    assert error["exit_code"] == exit_code and error["type"] and error["message"]
    assert "Error:" in result.stderr and "Traceback" not in result.output
    return error


def test_hostile_env_json_commands_are_found() -> None:
    assert {("canary",), ("gate",), ("versions",), ("run",), ("pr", "authorize")} <= set(JSON_COMMANDS)


@pytest.mark.parametrize("path", JSON_COMMANDS, ids=" ".join)
def test_hostile_env_json_failure_prints_one_json_error(path: tuple[str, ...], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("GITHUB_EVENT_PATH", "GITHUB_EVENT_NAME", "GITHUB_REPOSITORY"):
        monkeypatch.delenv(name, raising=False)
    if path == ("pr", "materialize"):  # reads the PR head before the config: refused, exit 1
        error = one_json_error(CliRunner().invoke(cli, failing_args(path, tmp_path)), exit_code=1)
        assert error["type"] == "Refused" and "not a git repository" in error["message"]
        return
    error = one_json_error(CliRunner().invoke(cli, failing_args(path, tmp_path)))
    assert "missing.yaml" in error["message"] or "GITHUB_EVENT_PATH" in error["message"]
    assert error["type"] in ("ConfigError", "UsageError")


@pytest.mark.parametrize("path", JSON_COMMANDS, ids=" ".join)
def test_hostile_env_invalid_setting_is_a_usage_error_on_every_command(path: tuple[str, ...], tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ADAPTERCI_HUB_RETRY_S", "abc")
    error = one_json_error(CliRunner().invoke(cli, failing_args(path, tmp_path)))
    assert error == {"type": "UsageError", "exit_code": 2,
                     "message": "ADAPTERCI_HUB_RETRY_S='abc': expected a number of seconds (>= 0)"}


def test_hostile_env_invalid_setting_without_json_is_one_error_line(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADAPTERCI_HUB_RETRY_S", "abc")
    result = CliRunner().invoke(cli, ["versions", "--config", str(tmp_path / "x.yaml")])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == "Error: ADAPTERCI_HUB_RETRY_S='abc': expected a number of seconds (>= 0)\n"


def test_hostile_env_json_on_a_click_usage_error(tmp_path: Path) -> None:
    error = one_json_error(CliRunner().invoke(cli, ["release", "--bump", "huge", "--json"]))
    assert error["type"] == "BadParameter" and "'huge' is not one of" in error["message"]


def test_hostile_env_json_result_and_failure_is_still_one_object(tmp_path: Path) -> None:
    """A command that printed its own JSON result and then fails (gate FAIL) adds no second object."""
    from test_gate import FLIP, GOLD, GOOD, RANDOM, config, make_results, task_items

    from adapterci.runs import RunDir

    cfg = config(tmp_path, ["sentiment.accuracy >= base + 0.05"])
    run = RunDir(tmp_path / ".adapterci" / "run")
    make_results(task_items(GOLD, {"base": RANDOM, "candidate": [FLIP[g] for g in GOOD]})).write(run.eval_json,
                                                                                              run.eval_items)
    result = CliRunner().invoke(cli, ["gate", "--config", str(cfg.path), "--json"])
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout)["verdict"] == "FAIL"  # the whole of stdout: one object, the verdict
    assert result.stderr.startswith("Error: gate: FAIL")
