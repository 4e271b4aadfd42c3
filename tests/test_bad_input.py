"""Hostile and broken input (issue 14), one row per case: the exit code, a message naming the place, no
traceback, and nothing written to the registry or the caches. No row trains a model."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
from click.testing import CliRunner

from adapterci.cli import cli
from conftest import TINY_PROJECT

pytestmark = pytest.mark.timeout(120)


@dataclass(frozen=True)
class Case:
    id: str
    setup: Callable[[Path, Path], list[str]]  # (project, adapter) -> the command line after `adapterci`
    exit_code: int
    says: tuple[str, ...]  # substrings of the output, in order


def edit(project: Path, old: str, new: str) -> None:
    config = project / "adapterci.yaml"
    text = config.read_text()
    assert old in text, old
    config.write_text(text.replace(old, new, 1))


def cfg(project: Path) -> list[str]:
    return ["--config", str(project / "adapterci.yaml")]


def line(snippet: str, after: int = 0) -> str:
    """`line N` of the fixture config's first line holding `snippet` (plus `after` lines an edit inserts)."""
    lines = (TINY_PROJECT / "adapterci.yaml").read_text().splitlines()
    return f"line {next(n for n, text in enumerate(lines, 1) if snippet in text) + after}"


# --- setups --------------------------------------------------------------------------------------------------


def glob_symlink_out(project: Path, _: Path) -> list[str]:
    outside = project.parent / "outside.jsonl"
    outside.write_text(json.dumps({"prompt": "secret", "completion": "positive"}) + "\n")
    (project / "data" / "train-extra.jsonl").symlink_to(outside)
    edit(project, "train: data/train.jsonl", "train: data/train*.jsonl")
    return ["check", *cfg(project)]


def glob_symlink_passwd(project: Path, _: Path) -> list[str]:
    (project / "data" / "train-etc.jsonl").symlink_to("/etc/passwd")
    edit(project, "train: data/train.jsonl", "train: data/train*.jsonl")
    return ["train", *cfg(project)]


def fifo_train(project: Path, _: Path) -> list[str]:
    (project / "data" / "train.jsonl").unlink()
    os.mkfifo(project / "data" / "train.jsonl")
    return ["check", *cfg(project)]


def fifo_run(project: Path, adapter: Path) -> list[str]:
    fifo_train(project, adapter)
    return ["run", "--no-release", *cfg(project)]


def base_model_missing(project: Path, _: Path) -> list[str]:
    edit(project, "base_model: models/tiny-llama", "base_model: models/nope")
    return ["validate", str(project / "adapterci.yaml")]


def base_model_symlinked_file(project: Path, _: Path) -> list[str]:
    tok = project / "models" / "tiny-llama" / "tokenizer.json"
    shutil.copy2(tok, project.parent / "tokenizer.json")
    tok.unlink()
    tok.symlink_to(project.parent / "tokenizer.json")
    return ["check", *cfg(project)]


def release_pickle(project: Path, adapter: Path) -> list[str]:
    from safetensors.torch import load_file
    import torch

    torch.save(load_file(adapter / "adapter_model.safetensors"), adapter / "adapter_model.bin")
    (adapter / "adapter_model.safetensors").unlink()
    return ["release", *cfg(project), "--unverified", "--adapter", str(adapter)]


def release_symlink(project: Path, adapter: Path) -> list[str]:
    (adapter / "tokenizer_config.json").symlink_to("/etc/hostname")
    return ["release", *cfg(project), "--unverified", "--adapter", str(adapter)]


def eval_pickle(project: Path, adapter: Path) -> list[str]:
    release_pickle(project, adapter)
    return ["eval", *cfg(project), "--adapter", str(adapter), "--champion", "none"]


def config_text(text: str, command: str = "validate") -> Callable[[Path, Path], list[str]]:
    """A setup that replaces the whole config with `text` (`{config}`: the example's) and runs `command`."""
    def setup(project: Path, _: Path) -> list[str]:
        config = project / "adapterci.yaml"
        config.write_text(text.format(config=config.read_text()) if "{config}" in text else text)
        return [command, str(config)] if command == "validate" else [command, *cfg(project)]
    return setup


def config_edit(old: str, new: str, command: str = "validate") -> Callable[[Path, Path], list[str]]:
    def setup(project: Path, _: Path) -> list[str]:
        edit(project, old, new)
        return [command, str(project / "adapterci.yaml")] if command == "validate" else [command, *cfg(project)]
    return setup


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))


def config_fifo(project: Path, _: Path) -> list[str]:
    (project / "adapterci.yaml").unlink()
    os.mkfifo(project / "adapterci.yaml")
    return ["check", *cfg(project)]


def rewrite_row(path: Path, line: int, change: Callable[[dict], dict | str]) -> None:
    """Replace row `line` (1-based) of a JSONL file with `change(row)` (a dict, or raw text)."""
    rows = path.read_text(encoding="utf-8").splitlines()
    new = change(json.loads(rows[line - 1]))
    rows[line - 1] = new if isinstance(new, str) else json.dumps(new)
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def surrogate(command: str) -> Callable[[Path, Path], list[str]]:
    def setup(project: Path, _: Path) -> list[str]:
        rewrite_row(project / "data" / "train.jsonl", 5,
                    lambda row: json.dumps(row)[:-1] + ', "note": "bad \\ud800 text"}')
        return [command, *cfg(project)]
    return setup


def huge_line(project: Path, _: Path) -> list[str]:
    with open(project / "data" / "train.jsonl", "a") as f:
        f.write('{"prompt": "' + "x" * (20 << 20) + '", "completion": "positive"}\n')
    return ["check", *cfg(project)]


VARIANTS = {3: " positive", 4: "NEGATIVE", 6: "positive.", 8: "positive\u00a0"}


def label_variants(command: str) -> Callable[[Path, Path], list[str]]:
    def setup(project: Path, _: Path) -> list[str]:
        for line, answer in VARIANTS.items():
            rewrite_row(project / "data" / "train.jsonl", line, lambda row: {**row, "output": answer})
        return [command, *cfg(project)]
    return setup


def duplicated_eval_item(command: str) -> Callable[[Path, Path], list[str]]:
    def setup(project: Path, adapter: Path) -> list[str]:
        suite = project / "evalsets" / "sentiment.jsonl"
        suite.write_text(suite.read_text() + suite.read_text().splitlines()[2] + "\n")
        extra = ["--adapter", str(adapter), "--champion", "none"] if command == "eval" else []
        return [command, *cfg(project), *extra]
    return setup


def duplicated_result_items(project: Path, _: Path) -> list[str]:
    results = project / "results"
    results.mkdir()
    item = {"suite": "sentiment", "index": 0, "source": "evalsets/sentiment.jsonl:1", "prompt": "p", "expected": "positive",
            "label": None, "models": {"base": {"answer": "negative", "correct": False}}}
    (results / "items.jsonl").write_text("".join(json.dumps({**item, "index": i}) + "\n" for i in range(3)))
    (results / "results.json").write_text(json.dumps({"format_version": 1, "items_file": "items.jsonl", "models": {},
                                                      "suites": {"sentiment": {"kind": "task", "n": 3}}}))
    return ["gate", *cfg(project), "--results", str(results / "results.json")]


def truncated_refs(project: Path, _: Path) -> list[str]:
    registry = project / ".adapterci" / "registry"
    registry.mkdir(parents=True)
    (registry / "refs.json").write_text('{"branches": {"main": "ab')
    return ["versions", *cfg(project)]


def foreign_checkpoints(project: Path, _: Path) -> list[str]:
    ckpt = project / ".adapterci" / "run" / "adapter.checkpoints"
    (ckpt / "checkpoint-2").mkdir(parents=True)
    (ckpt / "adapterci-inputs.json").write_text(json.dumps({"inputs_fingerprint": "0" * 64}))
    return ["train", *cfg(project), "--resume"]


CASES = [
    Case("yaml-alias-bomb", config_text(BOMB), 2, ("line 6: YAML syntax error: the document expands to more than",)),
    Case("yaml-oversized", config_text("{config}" + "# padding\n" * 120_000, "check"), 2,
         ("adapterci.yaml", "more than a config may have (1,000,000)")),
    Case("yaml-merge-key", config_edit("checks:\n", "defaults: &d {min_rows: 50}\nchecks:\n  <<: *d\n"), 2,
         (f"{line('checks:', 2)}: YAML syntax error: merge keys (`<<`) are not allowed",)),
    Case("yaml-int-tag", config_edit("epochs: 10", "epochs: !!int ten", "train"), 2,
         (f"{line('epochs: 10')}: YAML syntax error: explicit YAML tags are not allowed in a config (!!int)",)),
    Case("yaml-python-tag", config_edit("seed: 42", "seed: !!python/name:os.system", "run"), 2,
         (f"{line('seed: 42')}: YAML syntax error: explicit YAML tags are not allowed in a config (!!python/name:os.system)",)),
    Case("yaml-deep-nesting", config_edit("base_revision: null", "base_revision: " + "[" * 5000 + "]" * 5000), 2,
         (f"{line('base_revision:')}: YAML syntax error: nested more than 64 levels deep",)),
    Case("config-fifo", config_fifo, 2, ("adapterci.yaml", "not a regular file")),
    Case("prompt-template-typo", config_edit("prompt_template: alpaca ", "prompt_template: alpacca "), 2,
         (f"{line('prompt_template:')}: `prompt_template`: unknown template name 'alpacca': did you mean `alpaca`?",)),
    Case("prompt-template-jinja-syntax", config_edit("prompt_template: alpaca ", "prompt_template: '{{ messages[0].content '"), 2,
         (f"{line('prompt_template:')}: `prompt_template`: the Jinja template does not work (template line 1)",)),
    Case("prompt-template-jinja-runtime", config_edit("prompt_template: alpaca ", "prompt_template: '{{ messages[7].content.x }}'", "check"), 2,
         (f"{line('prompt_template:')}: `prompt_template`: the Jinja template does not work",)),
    Case("prompt-template-fails-on-a-row", config_edit(
        "prompt_template: alpaca ", "prompt_template: '{{ messages[1].content }} {{ messages[0].content }}'", "check"), 2,
         ("data/train.jsonl:1: `prompt_template` cannot render this row",)),
    Case("prompt-template-ignores-messages", config_edit("prompt_template: alpaca ", "prompt_template: '{{ 1 + 1 }}'"), 2,
         (f"{line('prompt_template:')}: `prompt_template`: the Jinja template never renders the messages' content",)),
    Case("epochs-inf", config_edit("epochs: 10", "epochs: .inf", "train"), 2,
         (f"{line('epochs: 10')}: `train.epochs`: Input should be a finite number",)),
    Case("learning-rate-inf", config_edit("learning_rate: 3.0e-3", "learning_rate: .inf", "run"), 2,
         (f"{line('learning_rate:')}: `train.learning_rate`: Input should be a finite number",)),
    Case("learning-rate-nan", config_edit("learning_rate: 3.0e-3", "learning_rate: .nan"), 2,
         (f"{line('learning_rate:')}: `train.learning_rate`: Input should be a finite number",)),
    Case("learning-rate-huge", config_edit("learning_rate: 3.0e-3", "learning_rate: 1e9"), 2,
         (f"{line('learning_rate:')}: `train.learning_rate`: Input should be less than or equal to 1",)),
    Case("lone-surrogate-check", surrogate("check"), 1, ("data/train.jsonl:5", "lone surrogate")),
    Case("lone-surrogate-train", surrogate("train"), 1, ("data/train.jsonl:5: contains a lone surrogate",)),
    Case("single-line-20mb", huge_line, 1, ("data/train.jsonl:361", "line is 20,971,", "bytes, longer than")),
    Case("label-variants-check", label_variants("check"), 1,
         ("label_balance", *(f"data/train.jsonl:{n}" for n in sorted(VARIANTS)))),
    Case("label-variants-train", label_variants("train"), 1,
         ("data/train.jsonl:3: answer ' positive' is the label 'positive' written differently",
          "data/train.jsonl:4: answer 'NEGATIVE'", "data/train.jsonl:6: answer 'positive.'",
          "data/train.jsonl:8: answer 'positive\\xa0'")),
    Case("duplicated-eval-item-check", duplicated_eval_item("check"), 1, ("evalsets/sentiment.jsonl:105", "duplicate of")),
    Case("duplicated-eval-item-eval", duplicated_eval_item("eval"), 2,
         ("evalsets/sentiment.jsonl:105: duplicate of the item at evalsets/sentiment.jsonl:3",)),
    Case("duplicated-eval-item-gate", duplicated_result_items, 2, ("items.jsonl: item evalsets/sentiment.jsonl:1", "repeated")),
    Case("truncated-refs-json", truncated_refs, 1, ("registry/refs.json is not a valid refs file",)),
    Case("resume-from-other-inputs", foreign_checkpoints, 2,
         ("adapter.checkpoints were trained from other inputs", "run without --resume")),
    Case("share-nan", config_edit("max_label_share: 0.8", "max_label_share: .nan", "check"), 2,
         (f"{line('max_label_share:')}: `checks.max_label_share`: Input should be a finite number",)),
    Case("glob-symlink-outside", glob_symlink_out, 2,
         ("data file data/train-extra.jsonl (from `data/train*.jsonl`) (a symlink to", "outside the repository root")),
    Case("glob-symlink-etc-passwd", glob_symlink_passwd, 2, ("data file data/train-etc.jsonl", "/etc/passwd", "outside")),
    Case("fifo-train-file-check", fifo_train, 2, ("data file data/train.jsonl", "not a regular file (a FIFO)")),
    Case("fifo-train-file-run", fifo_run, 2, ("data file data/train.jsonl", "not a regular file (a FIFO)")),
    Case("base-model-missing-dir", base_model_missing, 2,
         (f"{line('base_model:')}: `base_model`: directory not found: models/nope",)),
    Case("base-model-file-symlinked-out", base_model_symlinked_file, 2,
         (f"{line('base_model:')}: `base_model`: base model file", "tokenizer.json", "outside the repository root")),
    Case("release-pickle-weights", release_pickle, 2, ("adapter_model.bin is a pickle and is never released",)),
    Case("release-symlinked-file", release_symlink, 2, ("tokenizer_config.json is a symlink",)),
    Case("eval-pickle-adapter", eval_pickle, 2, ("adapter_model.bin is a pickle",)),
]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()} \
        if folder.is_dir() else {}


@pytest.fixture
def adapter(tiny_peft_adapter, tmp_path: Path) -> Path:
    dest = tmp_path / "adapter"
    shutil.copytree(tiny_peft_adapter[1], dest)
    return dest


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_cleanly(case: Case, example_project: Path, adapter: Path, monkeypatch) -> None:
    cache = example_project.parent / "cache"
    monkeypatch.setenv("ADAPTERCI_CACHE_DIR", str(cache))
    args = case.setup(example_project, adapter)
    registry = example_project / ".adapterci" / "registry"
    before = snapshot(registry)
    result = CliRunner().invoke(cli, args)
    output = result.output
    assert result.exit_code == case.exit_code, output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), output
    assert "Traceback" not in output and "weights_only" not in output, output
    at = 0
    for fragment in case.says:
        found = output.find(fragment, at)
        assert found >= 0, f"{fragment!r} not in {output!r}"
        at = found + len(fragment)
    assert snapshot(registry) == before
    assert not cache.exists() or not any(p.is_file() for p in cache.rglob("*")), sorted(cache.rglob("*"))


# --- a full or read-only disk: a real tmpfs of 64 KB (mounting needs root), and RLIMIT_FSIZE without root ------


@pytest.fixture(params=["full", "read-only"])
def small_fs(request, tmp_path: Path):
    """(mount point, expected errno name): a 64 KB tmpfs, mounted read-only for the second param."""
    import subprocess

    mount = tmp_path / "fs"
    mount.mkdir()
    options = "size=64k" + (",ro" if request.param == "read-only" else "")
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root (the RLIMIT_FSIZE test covers a failing write without it)")
    try:
        if request.param == "full":
            fd = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT)
            with pytest.raises(OSError):
                while True:
                    os.write(fd, b"x" * 4096)
            os.close(fd)
        yield mount, "ENOSPC" if request.param == "full" else "EROFS"
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


DISK_COMMANDS = {
    "check": lambda project, fs, adapter: ["check", *cfg(project), "--run-dir", str(fs / "run")],
    "run": lambda project, fs, adapter: ["run", *cfg(project), "--run-dir", str(fs / "run")],
    "train": lambda project, fs, adapter: ["train", *cfg(project), "--run-dir", str(fs / "run")],
    "release": lambda project, fs, adapter: ["release", *cfg(project), "--unverified", "--adapter", str(adapter)],
}


@pytest.mark.parametrize("command", sorted(DISK_COMMANDS))
def test_full_or_read_only_disk_is_an_error_not_a_traceback(command, small_fs, example_project: Path, adapter: Path,
                                                            monkeypatch) -> None:
    fs, code = small_fs
    monkeypatch.setenv("ADAPTERCI_CACHE_DIR", str(fs / "cache"))
    monkeypatch.setenv("ADAPTERCI_REGISTRY", f"file://{fs / 'registry'}")
    edit(example_project, "epochs: 10", "epochs: 10\n  max_steps: 2")  # if a write succeeds, training stays short
    result = CliRunner().invoke(cli, DISK_COMMANDS[command](example_project, fs, adapter))
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    assert f"{fs}/" in result.output and f"[{code}]" in result.output, result.output
    assert not (fs / "registry" / "refs.json").exists()


def test_a_failing_write_without_root(example_project: Path, tmp_path: Path) -> None:
    """RLIMIT_FSIZE in a subprocess: writes past 16 KB fail (EFBIG) wherever they happen, as on a full disk."""
    import resource
    import signal
    import subprocess
    import sys

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (16_000, 16_000))

    out = subprocess.run([sys.executable, "-m", "adapterci", "check", *cfg(example_project)], preexec_fn=limit,
                         capture_output=True, text=True, timeout=300, cwd=tmp_path,
                         env={**os.environ, "ADAPTERCI_CACHE_DIR": str(tmp_path / "cache")})
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert "[EFBIG]" in out.stderr and str(example_project / ".adapterci" / "run") in out.stderr, out.stderr


def test_truncated_eval_cache_entry_is_a_miss(example_project: Path, monkeypatch) -> None:
    from adapterci.config import load_config
    from adapterci.eval import cache

    monkeypatch.setenv("ADAPTERCI_CACHE_DIR", str(example_project / "cache"))
    config = load_config(example_project / "adapterci.yaml")
    outputs = [{"answer": "positive", "score": None}] * 3
    cache.store(config, "k", outputs)
    assert cache.load(config, "k", 3) == outputs
    assert cache.load(config, "k", 4) is None  # fewer outputs than items: computed again, not an IndexError
    path = cache.cache_dir(config, "eval") / "k.json"
    path.write_text(path.read_text()[:40])
    assert cache.load(config, "k", 3) is None


@pytest.mark.parametrize("command", ["run", "check", "train", "eval", "report"])
def test_a_run_directory_in_use_is_refused(command, example_project: Path) -> None:
    """A second command on a run directory another one is writing refuses at once, naming the lock."""
    import subprocess
    import sys

    from adapterci.runs import RunDir

    run = RunDir(example_project / ".adapterci" / "run")
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from adapterci.runs import RunDir\n"
                               f"with RunDir(Path({str(run.path)!r})).locked():\n"
                               "    print('held', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        result = CliRunner().invoke(cli, [command, *cfg(example_project)])
        assert result.exit_code == 2, result.output
        assert f"the run directory {run.path} is in use by another adapterci command" in result.output
        assert not (run.path / "manifest.json").exists() and not (run.path / "check").exists()
    finally:
        holder.kill()
        holder.wait()
    with run.locked():  # free again once the other process is gone
        pass


@pytest.mark.parametrize("raise_errors", [False, True])
def test_an_unexpected_exception_is_one_line_unless_asked(raise_errors: bool, tmp_path: Path) -> None:
    """Outside pytest a bug is one `Error: internal error` line (exit 1); ADAPTERCI_RAISE_ERRORS shows the traceback."""
    import subprocess
    import sys

    script = ("import adapterci.cli.validate as v\n"
              "def boom(*a, **k): raise RuntimeError('boom')\n"
              "v.load_config = boom\n"
              "from adapterci.cli import main\nmain()\n")
    env = {k: v for k, v in os.environ.items() if k != "ADAPTERCI_RAISE_ERRORS"}
    out = subprocess.run([sys.executable, "-c", script, "validate"], capture_output=True, text=True, cwd=tmp_path,
                         env={**env, **({"ADAPTERCI_RAISE_ERRORS": "1"} if raise_errors else {})}, timeout=120)
    assert out.returncode == 1
    if raise_errors:
        assert "Traceback" in out.stderr and "RuntimeError: boom" in out.stderr
    else:
        assert out.stderr == ("Error: internal error: RuntimeError: boom (set ADAPTERCI_RAISE_ERRORS=1 for the "
                              "traceback and report it)\n")


@pytest.mark.slow
def test_a_diverged_training_fails_and_writes_no_adapter(example_project: Path) -> None:
    """A loss that becomes NaN (here: a LoRA weight poisoned during the real training) fails train, exit 1."""
    import torch
    from transformers import TrainerCallback

    from adapterci.config import load_config
    from adapterci.errors import StageFailed
    from adapterci.train.run import train

    edit(example_project, "epochs: 10", "epochs: 10\n  max_steps: 2")
    config = load_config(example_project / "adapterci.yaml")

    class Poison(TrainerCallback):
        def on_step_begin(self, args, state, control, model=None, **kwargs):
            with torch.no_grad():
                next(p for n, p in model.named_parameters() if "lora_A" in n).fill_(float("nan"))

    with pytest.raises(StageFailed) as info:
        train(config, log=lambda _: None, callbacks=[Poison()])
    assert info.value.exit_code == 1 and "training diverged: " in str(info.value)
    assert "trained tensors are not finite (first: base_model." in str(info.value)
    assert not (example_project / ".adapterci" / "run" / "adapter").exists()


def test_release_publishes_only_known_adapter_files(example_project: Path, adapter: Path) -> None:
    """Extra files beside the adapter (a symlinked note, a pickle, scratch) are never published."""
    (adapter / "notes.txt").symlink_to("/etc/hostname")
    (adapter / "adapter_model.bin").write_bytes(b"pickle")
    (adapter / "training_args.bin").write_bytes(b"pickle")
    (adapter / "sub").mkdir()
    (adapter / "sub" / "x.safetensors").write_bytes(b"x")
    result = CliRunner().invoke(cli, ["release", *cfg(example_project), "--unverified", "--adapter", str(adapter), "--json"])
    assert result.exit_code == 0, result.output
    commit = json.loads(result.output)["commit"]
    files = example_project / ".adapterci" / "registry" / "commits" / commit / "files"
    assert sorted(p.name for p in files.rglob("*")) == [
        "README.md", "adapter_config.json", "adapter_model.safetensors", "adapterci-train.json", "adapterci.json"]
