"""Test isolation: offline Hugging Face, a private ADAPTERCI_HOME, and the example project in a temp dir."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["hub_fixtures"]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys._called_from_test = True  # type: ignore[attr-defined]

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_FILES = ("adapterci.yaml", "data", "evalsets", "models")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path_factory.mktemp("adapterci-home")
    monkeypatch.setenv("ADAPTERCI_HOME", str(home))
    monkeypatch.setenv("HF_HOME", str(home / "hf"))


@pytest.fixture
def example_project(tmp_path: Path) -> Path:
    """A copy of the repository's example project (config, data, eval sets, tiny model) in a git repo."""
    return copy_example_project(tmp_path)


def copy_example_project(parent: Path) -> Path:
    """Copy the example project into `parent/project` (a fresh git repo); module-scoped fixtures call this."""
    dest = parent / "project"
    dest.mkdir()
    for name in EXAMPLE_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, copy_function=_link_gguf)
        elif src.exists():
            shutil.copy2(src, dest / name)
    subprocess.run(["git", "init", "-q", "-b", "main", str(dest)], check=True)
    return dest


def _link_gguf(src: str, dst: str) -> None:
    """Copy a file; hard-link GGUF model files (models/smollm2/, ~100 MB, read-only) when the filesystem allows."""
    if src.endswith(".gguf"):
        try:
            os.link(src, dst)
            return
        except OSError:
            pass
    shutil.copy2(src, dst)
