"""docs/walkthrough-new-team.md stays true.

Its ```sh walkthrough blocks (```sh walkthrough exit=N: the block must exit N) run in order, each in its own
bash with `set -euo pipefail`, in an empty directory (the working directory carries over from block to block),
with `adapterci` being this tree's and `EXAMPLES` pointing at docs/examples/support-router/. The files the page
shows (```yaml FILE, ```jsonl FILE) are that folder's: a YAML block is the whole file, a JSONL block's lines are
lines of it. Plain ```sh blocks are not run (install, push)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO

DOC = REPO / "docs" / "walkthrough-new-team.md"
EXAMPLES = REPO / "docs" / "examples" / "support-router"
FENCE = re.compile(r"^ *```(?P<info>[^`\n]*)\n(?P<body>.*?)^ *```$", re.M | re.S)
STAGES = ("init", "validate", "check", "train", "eval", "gate", "release", "promote", "serving")


def fenced() -> list[tuple[list[str], str]]:
    return [(m["info"].split(), m["body"]) for m in FENCE.finditer(DOC.read_text(encoding="utf-8"))]


def walkthrough_blocks() -> list[tuple[int, str]]:
    """(expected exit code, script) of every ```sh walkthrough block, in order."""
    found = []
    for info, body in fenced():
        if info[:2] == ["sh", "walkthrough"]:
            options = dict(word.split("=", 1) for word in info[2:])
            found.append((int(options.pop("exit", "0")), body))
            assert options == {}, f"unknown options of a walkthrough block: {options}"
    return found


def test_walkthrough_shows_the_example_files() -> None:
    shown = [(info[1], body) for info, body in fenced() if info[:1] in (["yaml"], ["jsonl"]) and len(info) > 1]
    assert sorted({name for name, _ in shown}) == ["adapterci.yaml", "data/train.jsonl", "evalsets/routing.jsonl"]
    for name, body in shown:
        text = (EXAMPLES / name).read_text(encoding="utf-8")
        if name.endswith(".yaml"):
            assert body == text, f"the walkthrough's {name} is not docs/examples/support-router/{name}"
        else:
            lines = set(text.splitlines())
            assert body.splitlines() and [line for line in body.splitlines() if line not in lines] == [], name


def test_walkthrough_runs_every_stage_a_team_needs() -> None:
    commands = [line.split()[1] for _, body in walkthrough_blocks() for line in body.splitlines()
                if line.startswith("adapterci ")]
    assert [stage for stage in STAGES if stage not in commands] == []
    assert commands.index("init") < commands.index("check") < commands.index("train") < commands.index("release")


def test_walkthrough_is_linked_from_the_readmes() -> None:
    assert "(walkthrough-new-team.md)" in (REPO / "docs" / "README.md").read_text()
    assert "(docs/walkthrough-new-team.md)" in (REPO / "README.md").read_text()


@pytest.mark.slow
def test_walkthrough_new_team_runs_end_to_end(tmp_path: Path) -> None:
    """Every ```sh walkthrough block, on the tiny model, from `adapterci init` to `adapterci serving`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "adapterci"
    wrapper.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m adapterci \"$@\"\n")
    wrapper.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(REPO),
           "EXAMPLES": str(EXAMPLES), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com", "HF_HUB_OFFLINE": "1"}
    work = tmp_path / "week"
    work.mkdir()
    cwd, pwd_file, outputs = work, tmp_path / "pwd", []
    started = time.monotonic()
    for expected, body in walkthrough_blocks():
        script = f"trap 'pwd >{shlex.quote(str(pwd_file))}' EXIT\nset -euo pipefail\n{body}"
        out = subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == expected, f"```sh walkthrough block:\n{body}\n{out.stdout[-3000:]}{out.stderr[-3000:]}"
        assert "Traceback" not in out.stderr, out.stderr[-3000:]
        outputs.append((body, out.stdout, out.stderr))
        cwd = Path(pwd_file.read_text().strip())
    seconds = time.monotonic() - started
    print(f"the walkthrough's week took {seconds:.0f} s")

    project = work / "support-router"
    assert cwd == project
    failed_check = next(stdout + stderr for body, stdout, stderr in outputs if "dana.lee@example.com" in body)
    assert "data/train.jsonl:121" in failed_check and "email" in failed_check.lower()
    gate = json.loads((project / ".adapterci" / "run" / "gate.json").read_text())
    assert gate["verdict"] == "PASS", gate
    macro_f1 = next(r["observed"] for r in gate["rules"] if r["rule"].startswith("routing.macro_f1"))
    assert macro_f1["candidate"] >= 0.7 and macro_f1["base"] <= 0.2, macro_f1  # the page: about 0.8 against 0.1
    body, stdout, _ = outputs[-1]
    assert body.strip() == "adapterci serving"
    serving = json.loads(stdout)
    assert [(a["role"], a["version"], a["weight"]) for a in serving["adapters"]] == [("stable", "v0.1.0", 1.0)]
