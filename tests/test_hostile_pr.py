"""Hostile input a pull request controls (issue 25): the head's adapterci.yaml, its data rows. Each is refused
with exit 2 and a message naming the file and line, without a traceback and without writing anything."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapterci.cli import cli

pytestmark = pytest.mark.timeout(120)

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                          check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(example_project: Path) -> Path:
    git(example_project, "add", "-A")
    git(example_project, "commit", "-qm", "base")
    return example_project


def open_pr(repo: Path, config_text: str) -> tuple[str, str]:
    """A PR that changes a data row and replaces adapterci.yaml by `config_text`; (base sha, head sha)."""
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-qb", "pr")
    train = repo / "data" / "train.jsonl"
    train.write_text("\n".join(train.read_text().splitlines()[:-1]) + "\n")
    (repo / "adapterci.yaml").write_text(config_text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "pr")
    head = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "main")
    return base, head


def materialize(repo: Path, base: str, head: str, run_dir: Path):
    started = time.perf_counter()
    result = CliRunner().invoke(cli, ["pr", "materialize", "--config", str(repo / "adapterci.yaml"), "--head-repo",
                                      str(repo), "--head-sha", head, "--base-sha", base, "--run-dir", str(run_dir)])
    return result, time.perf_counter() - started


def bomb_in_train(text: str) -> str:
    """The config with a 0.4 KB billion-laughs bomb under `train` (a key a PR may change)."""
    indented = "".join(f"    {line}\n" for line in BOMB.splitlines())
    return text.replace("\ntrain:\n", "\ntrain:\n  bomb:\n" + indented, 1)


def deep_in_gate(text: str) -> str:
    """The config with `gate.rules` nested 1200 levels deep (a policy key: shown in the policy-change record)."""
    return text.replace("gate:\n  rules:\n", "gate:\n  rules: " + "[" * 1200 + "]" * 1200 + "\n  old_rules:\n")


@pytest.mark.parametrize("hostile, marker, says", [
    (bomb_in_train, "f: &f", "expands to more than 100,000 values"),
    (deep_in_gate, "[[[", "nested more than 64 levels deep"),
])
def test_pr_materialize_refuses_a_hostile_head_config_in_time(repo: Path, tmp_path: Path, hostile, marker, says) -> None:
    train_before = (repo / "data" / "train.jsonl").read_bytes()
    config_before = (repo / "adapterci.yaml").read_bytes()
    base, head = open_pr(repo, hostile(config_before.decode()))
    run_dir = tmp_path / "run"
    result, seconds = materialize(repo, base, head, run_dir)
    assert seconds < 5, seconds
    assert result.exit_code == 2, result.output
    assert f"invalid config adapterci.yaml at {head[:12]}:" in result.output
    line = next(n for n, text in enumerate(hostile(config_before.decode()).splitlines(), 1) if marker in text)
    assert f"line {line}: YAML syntax error: " in result.output and says in result.output
    assert "Traceback" not in result.output
    assert not run_dir.exists()  # no pr.json, no report
    assert (repo / "data" / "train.jsonl").read_bytes() == train_before  # none of the PR's data taken
    assert (repo / "adapterci.yaml").read_bytes() == config_before


def test_pr_materialize_refuses_a_head_config_that_is_not_a_mapping_or_not_utf8(repo: Path, tmp_path: Path) -> None:
    for text, says in (("- just\n- a list\n", "the top level must be a mapping of keys"),
                       ("name: !!python/name:os.system x\n", "line 1: YAML syntax error: explicit YAML tags")):
        git(repo, "checkout", "-q", "main")
        git(repo, "branch", "-qD", "pr") if "pr" in git(repo, "branch") else None
        base, head = open_pr(repo, text)
        result, _ = materialize(repo, base, head, tmp_path / "run")
        assert result.exit_code == 2 and says in result.output and "Traceback" not in result.output, result.output
        assert not (tmp_path / "run").exists()


def test_hub_emulator_refuses_a_model_card_alias_bomb_in_time() -> None:
    """A model card's front matter (released from a run a PR fed) goes through the same budgeted loader."""
    from adapterci.hub_emulator.cardmeta import front_matter

    started = time.perf_counter()
    with pytest.raises(ValueError, match=r"metadata is not valid YAML \(line \d+\): the document expands"):
        front_matter("---\n" + BOMB + "---\n# card\n")
    assert time.perf_counter() - started < 5
    assert front_matter("---\nbase_model: org/base\ntags: [lora]\n---\n") == {"base_model": "org/base", "tags": ["lora"]}


def test_check_does_not_tokenize_rows_already_over_max_chars(example_project: Path) -> None:
    """A row longer than `checks.max_chars` fails `schema` with its file and line; it is neither rendered nor
    tokenized (a 27 MB file of such rows took 110 s and 3.5 GB in the token-length check)."""
    train = example_project / "data" / "train.jsonl"
    first = len(train.read_bytes().splitlines()) + 1
    long = "The room was lovely and the staff were kind. " * 1000  # 45,000 characters > max_chars 32,000
    with train.open("a") as f:
        for label in ("positive", "negative"):
            f.write(json.dumps({"instruction": "Classify the review.", "input": long, "output": label}) + "\n")
    result = CliRunner().invoke(cli, ["check", "--config", str(example_project / "adapterci.yaml"), "--json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    by_name = {c["name"]: c for c in report["checks"]}
    schema = [(f["file"], f["line"]) for f in by_name["schema"]["failures"]]
    assert schema == [("data/train.jsonl", first), ("data/train.jsonl", first + 1)]
    assert by_name["token_length"]["passed"]  # not tokenized, so not reported twice
    record = json.loads((example_project / ".adapterci" / "run" / "check" / "check.json").read_text())
    token_length = next(c for c in record["checks"] if c["name"] == "token_length")
    assert token_length["details"]["over_max_chars"] == 2
    assert token_length["details"]["tokenized"] <= token_length["details"]["rows"] - 2
    assert "2 longer than `checks.max_chars` not tokenized" in token_length["summary"]


def test_a_row_of_100k_nested_brackets_is_a_row_error(example_project: Path) -> None:
    """json.loads raised RecursionError on it (an internal error); it is a problem of its row, like malformed JSON."""
    train = example_project / "data" / "train.jsonl"
    line = len(train.read_bytes().splitlines()) + 1
    with train.open("a") as f:
        f.write("[" * 100_000 + "]" * 100_000 + "\n")
        f.write(json.dumps({"instruction": "Classify.", "input": "ok", "output": "positive",
                            "meta": json.loads("[" * 40 + "]" * 40)}) + "\n")
    started = time.perf_counter()
    result = CliRunner().invoke(cli, ["check", "--config", str(example_project / "adapterci.yaml"), "--json"])
    assert time.perf_counter() - started < 60
    assert result.exit_code == 1, result.output
    schema = next(c for c in json.loads(result.output)["checks"] if c["name"] == "schema")["failures"]
    assert [(f["file"], f["line"], f["message"]) for f in schema] == [
        ("data/train.jsonl", line, "nested more than 32 levels deep"),
        ("data/train.jsonl", line + 1, "nested more than 32 levels deep")]
