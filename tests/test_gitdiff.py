"""Rows added since a git ref, in a real temporary git repository."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from adapterci.data.gitdiff import added_lines
from adapterci.errors import UsageError


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
                   check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.jsonl").write_text('{"x": 1}\n{"x": 2}\n{"x": 2}\n')
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "base")
    return tmp_path


def test_added_lines_counts_changed_repeated_and_new_files(repo: Path) -> None:
    a = repo / "data" / "a.jsonl"
    a.write_text('{"x": 1}\n{"x": 2}\n{"x": 3}\n{"x": 2}\n{"x": 2}\n')
    b = repo / "data" / "b.jsonl"
    b.write_text('{"y": 1}\n')
    assert added_lines({"data/a.jsonl": a, "data/b.jsonl": b}, repo, "main") == {
        ("data/a.jsonl", 3), ("data/a.jsonl", 5), ("data/b.jsonl", 1)}


def test_added_lines_nothing_new(repo: Path) -> None:
    a = repo / "data" / "a.jsonl"
    assert added_lines({"a": a}, repo / "data", "HEAD") == set()


def test_added_lines_bad_ref(repo: Path) -> None:
    with pytest.raises(UsageError, match="'nope' is not a commit"):
        added_lines({}, repo, "nope")


def test_added_lines_outside_git(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="needs a git repository"):
        added_lines({}, tmp_path, "HEAD")
