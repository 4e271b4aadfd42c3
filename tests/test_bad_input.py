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
    return ["release", *cfg(project), "--adapter", str(adapter)]


def release_symlink(project: Path, adapter: Path) -> list[str]:
    (adapter / "tokenizer_config.json").symlink_to("/etc/hostname")
    return ["release", *cfg(project), "--adapter", str(adapter)]


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


CASES = [
    Case("yaml-alias-bomb", config_text(BOMB), 2, ("line 6: YAML syntax error: the document expands to more than",)),
    Case("yaml-oversized", config_text("{config}" + "# padding\n" * 120_000, "check"), 2,
         ("adapterci.yaml", "more than a config may have (1,000,000)")),
    Case("yaml-merge-key", config_edit("checks:\n", "defaults: &d {min_rows: 50}\nchecks:\n  <<: *d\n"), 2,
         ("line 19: YAML syntax error: merge keys (`<<`) are not allowed",)),
    Case("yaml-int-tag", config_edit("epochs: 10", "epochs: !!int ten", "train"), 2,
         ("line 36: YAML syntax error: explicit YAML tags are not allowed in a config (!!int)",)),
    Case("yaml-python-tag", config_edit("seed: 42", "seed: !!python/name:os.system", "run"), 2,
         ("line 42: YAML syntax error: explicit YAML tags are not allowed in a config (!!python/name:os.system)",)),
    Case("yaml-deep-nesting", config_edit("registry: file://.adapterci/registry",
                                          "registry: " + "[" * 5000 + "]" * 5000), 2,
         ("line 60: YAML syntax error: nested more than 64 levels deep",)),
    Case("config-fifo", config_fifo, 2, ("adapterci.yaml", "not a regular file")),
    Case("prompt-template-typo", config_edit("prompt_template: alpaca ", "prompt_template: alpacca "), 2,
         ("line 9: `prompt_template`: unknown template name 'alpacca': did you mean `alpaca`?",)),
    Case("prompt-template-jinja-syntax", config_edit("prompt_template: alpaca ", "prompt_template: '{{ messages[0].content '"), 2,
         ("line 9: `prompt_template`: the Jinja template does not work (template line 1)",)),
    Case("prompt-template-jinja-runtime", config_edit("prompt_template: alpaca ", "prompt_template: '{{ messages[7].content.x }}'", "check"), 2,
         ("line 9: `prompt_template`: the Jinja template does not work",)),
    Case("prompt-template-ignores-messages", config_edit("prompt_template: alpaca ", "prompt_template: '{{ 1 + 1 }}'"), 2,
         ("line 9: `prompt_template`: the Jinja template never renders the messages' content",)),
    Case("epochs-inf", config_edit("epochs: 10", "epochs: .inf", "train"), 2,
         ("line 36: `train.epochs`: Input should be a finite number",)),
    Case("learning-rate-inf", config_edit("learning_rate: 3.0e-3", "learning_rate: .inf", "run"), 2,
         ("line 37: `train.learning_rate`: Input should be a finite number",)),
    Case("learning-rate-nan", config_edit("learning_rate: 3.0e-3", "learning_rate: .nan"), 2,
         ("line 37: `train.learning_rate`: Input should be a finite number",)),
    Case("learning-rate-huge", config_edit("learning_rate: 3.0e-3", "learning_rate: 1e9"), 2,
         ("line 37: `train.learning_rate`: Input should be less than or equal to 1",)),
    Case("share-nan", config_edit("max_label_share: 0.8", "max_label_share: .nan", "check"), 2,
         ("line 20: `checks.max_label_share`: Input should be a finite number",)),
    Case("glob-symlink-outside", glob_symlink_out, 2,
         ("data file data/train-extra.jsonl (from `data/train*.jsonl`) (a symlink to", "outside the repository root")),
    Case("glob-symlink-etc-passwd", glob_symlink_passwd, 2, ("data file data/train-etc.jsonl", "/etc/passwd", "outside")),
    Case("fifo-train-file-check", fifo_train, 2, ("data file data/train.jsonl", "not a regular file (a FIFO)")),
    Case("fifo-train-file-run", fifo_run, 2, ("data file data/train.jsonl", "not a regular file (a FIFO)")),
    Case("base-model-missing-dir", base_model_missing, 2,
         ("line 7: `base_model`: directory not found: models/nope",)),
    Case("base-model-file-symlinked-out", base_model_symlinked_file, 2,
         ("line 7: `base_model`: base model file", "tokenizer.json", "outside the repository root")),
    Case("release-pickle-weights", release_pickle, 2, ("adapter_model.bin is a pickle and is never released",)),
    Case("release-symlinked-file", release_symlink, 2, ("tokenizer_config.json is a symlink",)),
    Case("eval-pickle-adapter", eval_pickle, 2, ("adapter_model.bin is a pickle",)),
]


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
    assert not (example_project / ".adapterci" / "registry").exists()
    assert not cache.exists() or not any(p.is_file() for p in cache.rglob("*")), sorted(cache.rglob("*"))
