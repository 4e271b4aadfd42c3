"""Test isolation: offline Hugging Face, no ADAPTERCI_* setting from outside, a private ADAPTERCI_HOME, and the
example project in a temp dir."""

from __future__ import annotations

import json
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
# The fast tests' project: the tiny-model example (its models/tiny-llama links to the repository's).
TINY_PROJECT = REPO / "tests" / "projects" / "tiny"


def clear_adapterci_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove every ADAPTERCI_* variable (a developer's ADAPTERCI_REGISTRY, ADAPTERCI_CACHE_DIR,
    ADAPTERCI_TRUST_DOMAIN...) and the CI service's markers (the suite itself runs in CI): a test sees only the
    settings it makes itself."""
    for key in [k for k in os.environ if k.startswith("ADAPTERCI_") or k in ("CI", "GITHUB_ACTIONS")]:
        monkeypatch.delenv(key)


@pytest.fixture(scope="session", autouse=True)
def _no_developer_settings():
    """Before any session- or module-scoped fixture runs (they come before the function-scoped one below)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        clear_adapterci_env(monkeypatch)
        yield


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    clear_adapterci_env(monkeypatch)
    home = tmp_path_factory.mktemp("adapterci-home")
    monkeypatch.setenv("ADAPTERCI_HOME", str(home))
    monkeypatch.setenv("HF_HOME", str(home / "hf"))


@pytest.fixture
def example_project(tmp_path: Path) -> Path:
    """A copy of the tiny test project (config, data, eval sets, tiny model) in a git repo."""
    return copy_example_project(tmp_path)


def copy_tiny_files(dest: Path) -> None:
    """Copy the tiny test project's files (the model linked in as real files) into the directory `dest`."""
    shutil.copytree(TINY_PROJECT, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".adapterci"))


def copy_example_project(parent: Path) -> Path:
    """Copy the tiny test project into `parent/project` (a fresh git repo); module-scoped fixtures call this."""
    dest = parent / "project"
    copy_tiny_files(dest)
    subprocess.run(["git", "init", "-q", "-b", "main", str(dest)], check=True)
    return dest


def commit_then_append_row(project: Path, row: dict) -> None:
    """Commit the project as it is (the merge base a `--base-ref HEAD` scope compares with), then add one training row."""
    git = ["git", "-C", str(project), "-c", "user.name=t", "-c", "user.email=t@localhost"]
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "base"], check=True)
    train = project / "data" / "train.jsonl"
    train.write_text(train.read_text() + json.dumps(row) + "\n")
