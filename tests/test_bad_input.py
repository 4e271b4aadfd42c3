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


CASES = [
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
