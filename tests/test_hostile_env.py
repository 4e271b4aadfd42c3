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
        elif param.required and isinstance(param, click.Argument):
            (tmp_path / "input.jsonl").touch()  # an existing input: the missing config is what fails
            args.append(str(tmp_path / "input.jsonl"))
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


# --- init over existing files ---------------------------------------------------------------------------------
ACTION = "acme/adapterci@0123456789abcdef0123456789abcdef01234567"


def init(target: Path, *args: str):
    return CliRunner().invoke(cli, ["init", str(target), "--action", ACTION, *args])


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_hostile_env_init_never_deletes_a_users_file_in_the_model_folder(tmp_path: Path) -> None:
    target = tmp_path / "repo"
    mine = target / "models" / "tiny-llama" / "mine.txt"
    mine.parent.mkdir(parents=True)
    mine.write_text("my notes\n")
    result = init(target)
    assert result.exit_code == 2, result.output
    assert "already has models/tiny-llama" in result.output and "nothing was written" in result.output
    assert tree(target) == {"models/tiny-llama/mine.txt": b"my notes\n"}

    forced = init(target, "--force")  # --force replaces only a model that init built
    assert forced.exit_code == 2, forced.output
    assert "holds files that init did not write (mine.txt)" in forced.output and "Traceback" not in forced.output
    assert tree(target) == {"models/tiny-llama/mine.txt": b"my notes\n"}


def test_hostile_env_init_force_replaces_its_own_model_and_files_only(tmp_path: Path) -> None:
    target = tmp_path / "repo"
    assert init(target).exit_code == 0
    (target / "notes.txt").write_text("mine\n")
    (target / "adapterci.yaml").write_text("# edited\n")
    model = tree(target / "models" / "tiny-llama")
    again = init(target, "--force")
    assert again.exit_code == 0, again.output
    assert (target / "notes.txt").read_text() == "mine\n"  # not the scaffold's: kept
    assert "name: repo" in (target / "adapterci.yaml").read_text()  # the scaffold's: overwritten
    assert tree(target / "models" / "tiny-llama") == model  # rebuilt, byte-identical
    assert (target / "README.md").read_text().count("## Adapter CI") == 1


@pytest.mark.parametrize("force", [False, True])
def test_hostile_env_init_where_data_is_a_file_writes_nothing(tmp_path: Path, force: bool) -> None:
    target = tmp_path / "repo"
    target.mkdir()
    (target / "data").write_text("not a folder\n")
    (target / "README.md").write_text("# mine\n")
    before = tree(target)
    result = init(target, "--base-model", "acme/base", *(["--force"] if force else []))
    assert result.exit_code == 2, result.output
    assert "data is a file, not a folder" in result.output and "Nothing was written" in result.output
    assert "Traceback" not in result.output
    assert tree(target) == before
    (target / "data").unlink()
    rerun = init(target, "--base-model", "acme/base")
    assert rerun.exit_code == 0, rerun.output
    assert (target / "data" / "train.jsonl").is_file() and (target / "README.md").read_text().startswith("# mine\n")


def test_hostile_env_init_symlinked_folder_is_refused(tmp_path: Path) -> None:
    target, elsewhere = tmp_path / "repo", tmp_path / "elsewhere"
    target.mkdir()
    elsewhere.mkdir()
    (target / ".github").symlink_to(elsewhere, target_is_directory=True)
    result = init(target, "--base-model", "acme/base", "--force")
    assert result.exit_code == 2 and ".github is a symlink, not a folder" in result.output
    assert list(elsewhere.iterdir()) == [] and [p.name for p in target.iterdir()] == [".github"]


def test_hostile_env_init_failing_write_leaves_nothing_half_written(tmp_path: Path) -> None:
    """A real failing write (RLIMIT_FSIZE: data/train.jsonl is larger than a file may grow, like a full disk)
    after nine files were written: they are removed again, the user's files are as they were, and the rerun
    completes."""
    import os
    import resource
    import signal
    import subprocess
    import sys

    target = tmp_path / "repo"
    target.mkdir()
    (target / "README.md").write_text("# mine\n")
    (target / "notes.txt").write_text("mine\n")
    before = tree(target)

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (10_000, 10_000))

    command = [sys.executable, "-m", "adapterci", "init", str(target), "--base-model", "acme/base"]
    out = subprocess.run(command, preexec_fn=limit, capture_output=True, text=True, timeout=120, env=os.environ)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "[EFBIG]" in out.stderr and "Traceback" not in out.stderr
    assert tree(target) == before and sorted(p.name for p in target.iterdir()) == ["README.md", "notes.txt"]
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=120, env=os.environ)
    assert rerun.returncode == 0, rerun.stderr
    assert (target / "data" / "train.jsonl").stat().st_size > 10_000


# --- checkpoints cut short -------------------------------------------------------------------------------------
SHORT = {"max_steps": 6, "save_steps": 2, "logging_steps": 2, "batch_size": 8}


@pytest.fixture(scope="module")
def crashed(tmp_path_factory: pytest.TempPathFactory):
    """A real tiny training killed at step 5: checkpoint-2 and checkpoint-4 on disk, no adapter."""
    import yaml
    from conftest import copy_example_project
    from transformers import TrainerCallback

    from adapterci.config import load_config
    from adapterci.train.run import checkpoints_dir, train

    project = copy_example_project(tmp_path_factory.mktemp("crashed"))
    path = project / "adapterci.yaml"
    data = yaml.safe_load(path.read_text())
    data["train"].update(SHORT)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    cfg = load_config(path)

    class Kill(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 5:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, log=lambda _: None, callbacks=[Kill()])
    ckpt = checkpoints_dir(cfg.workdir / "run" / "adapter")
    assert sorted(p.name for p in ckpt.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    return project, ckpt


@pytest.fixture
def interrupted(crashed, tmp_path: Path):
    """A copy of the crashed project (each test damages its own checkpoints)."""
    import shutil

    from adapterci.config import load_config

    project, _ = crashed
    copy = tmp_path / "project"
    shutil.copytree(project, copy, symlinks=True)
    cfg = load_config(copy / "adapterci.yaml")
    from adapterci.train.run import checkpoints_dir

    return cfg, checkpoints_dir(cfg.workdir / "run" / "adapter")


def cut_short(checkpoint: Path, how: str) -> None:
    if how == "weights truncated":
        weights = checkpoint / "adapter_model.safetensors"
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif how == "killed before the state":
        (checkpoint / "trainer_state.json").unlink()
    elif how == "state truncated":
        state = checkpoint / "trainer_state.json"
        state.write_text(state.read_text()[:100])
    elif how == "optimizer truncated":
        optimizer = checkpoint / "optimizer.pt"
        optimizer.write_bytes(optimizer.read_bytes()[:1000])
    else:  # the disk filled up before the optimizer was written
        (checkpoint / "optimizer.pt").unlink()
        (checkpoint / "trainer_state.json").unlink()


HOW = ["weights truncated", "killed before the state", "state truncated", "optimizer truncated", "no optimizer"]


@pytest.mark.xdist_group("train")
@pytest.mark.parametrize("how", HOW)
def test_hostile_env_incomplete_checkpoint_is_detected(interrupted, how: str) -> None:
    from adapterci.train.run import incomplete

    _, ckpt = interrupted
    assert incomplete(ckpt / "checkpoint-4") is None and incomplete(ckpt / "checkpoint-2") is None
    cut_short(ckpt / "checkpoint-4", how)
    assert incomplete(ckpt / "checkpoint-4") is not None and incomplete(ckpt / "checkpoint-2") is None


@pytest.mark.xdist_group("train")
def test_hostile_env_train_resume_skips_a_truncated_checkpoint(interrupted) -> None:
    from adapterci.train.run import train

    cfg, ckpt = interrupted
    cut_short(ckpt / "checkpoint-4", "weights truncated")
    lines: list[str] = []
    result = train(cfg, resume=True, log=lines.append)
    assert any(line.startswith("train: checkpoint-4 is incomplete (adapter_model.safetensors: truncated")
               and line.endswith("skipped and removed") for line in lines), lines
    assert any(line == f"train: resuming from {ckpt / 'checkpoint-2'}" for line in lines), lines
    assert result.metrics["resumed_from_step"] == 2 and result.metrics["steps"] == SHORT["max_steps"]


@pytest.mark.xdist_group("train")
def test_hostile_env_cli_train_resume_and_run_get_past_incomplete_checkpoints(interrupted) -> None:
    """Every checkpoint cut short: `train --resume` starts over (saying so) instead of failing forever."""
    cfg, ckpt = interrupted
    cut_short(ckpt / "checkpoint-4", "killed before the state")
    cut_short(ckpt / "checkpoint-2", "weights truncated")
    from adapterci.train.provenance import inputs_fingerprint
    from adapterci.train.run import can_resume

    assert not can_resume(cfg.workdir / "run" / "adapter", inputs_fingerprint(cfg))  # `run` starts over
    result = CliRunner().invoke(cli, ["train", "--config", str(cfg.path), "--resume", "--json"])
    assert result.exit_code == 0, result.output
    assert "checkpoint-4 is incomplete (trainer_state.json is missing)" in result.stderr + result.output
    assert "no complete checkpoint" in result.stderr + result.output
    assert json.loads(result.stdout)["steps"] == SHORT["max_steps"]
    assert not ckpt.exists()  # cleaned up after the finished training


# --- a garbage base model --------------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["junk bytes", "truncated", "empty"])
@pytest.mark.parametrize("command", ["train", "eval", "run"])
def test_hostile_env_garbage_base_model_weights_name_the_file(example_project: Path, damage: str,
                                                              command: str) -> None:
    weights = example_project / "models" / "tiny-llama" / "model.safetensors"
    data = weights.read_bytes()
    weights.unlink()  # the project's copy, never the shared model
    weights.write_bytes({"junk bytes": bytes(range(256)) * 40, "truncated": data[: len(data) // 2],
                         "empty": b""}[damage])
    result = CliRunner().invoke(cli, [command, "--config", str(example_project / "adapterci.yaml"), "--json"])
    assert result.exit_code == 2, result.output
    out = json.loads(result.stdout)  # `run` reports its stages, the error among them; the others the error object
    message = out["error"] if command == "run" else out["error"]["message"]
    assert f"line 6: `base_model`: {weights} is not a readable safetensors file" in message
    assert "Traceback" not in result.output and "internal error" not in result.output
    assert not (example_project / ".adapterci" / "run" / "adapter").exists()
