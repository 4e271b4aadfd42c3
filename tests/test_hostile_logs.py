"""Hostile production request logs (issue 25, round two): one mis-dated row never ages the canary past
`max_age`, config globs never read outside the repository, a file that is not a log is never quoted back, and a
huge CSV field is an error naming file:line. Nothing is promoted or moved on any of them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from adapterci.canary.simulate import simulate, write_logs
from adapterci.cli import cli
from adapterci.config import load_config
from adapterci.release import promote, release
from test_canary import START, backdate, fake_adapter, refs_of, set_canary

pytestmark = pytest.mark.xdist_group("registry")
HOURS, PER_HOUR = 20, 500  # 20 h of traffic, 2000 canary requests: the default rules stay undecided


@pytest.fixture
def project(example_project: Path, tmp_path: Path) -> Path:
    """v0.1.0 stable, v0.1.1 the canary, released at START; 20 h of equal traffic logged since then."""
    set_canary(example_project)  # max_age: 7d (the default)
    cfg = load_config(example_project / "adapterci.yaml")
    release(cfg, fake_adapter(tmp_path, "a"))
    promote(cfg)
    release(cfg, fake_adapter(tmp_path, "b"))
    backdate(example_project)
    requests = simulate(np.random.default_rng(1), HOURS, PER_HOUR, 0.2, "equal", start=START)
    write_logs(requests, example_project / "logs" / "requests.jsonl",
               {"canary": "v0.1.1", "stable": refs_of(example_project)["stable"]}, cfg.canary.fields)
    return example_project


def canary(project: Path, *args: str):
    return CliRunner().invoke(cli, ["canary", "--config", str(project / "adapterci.yaml"), "--no-summary", *args])


def append_row(project: Path, **row) -> str:
    """Append one canary row to the log; returns its `file:line`."""
    path = project / "logs" / "requests.jsonl"
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"adapter_version": "v0.1.1", "latency_ms": 300.0, **row}) + "\n")
    return f"{path}:{len(path.read_text().splitlines())}"


def test_hostile_logs_twenty_hours_of_equal_traffic_continue(project: Path) -> None:
    result = canary(project, "--json", "--act")
    assert result.exit_code == 3, result.output
    out = json.loads(result.stdout)
    assert out["verdict"] == "CONTINUE" and out["acted"] is None
    assert 19 * 3600 < out["age_seconds"] < 20 * 3600
    assert out["released_at"] == "2026-01-01T00:00:00Z"
    assert out["out_of_window"]["before_release"] == out["out_of_window"]["in_future"] == 0


@pytest.mark.parametrize("row, kind", [
    ({"timestamp": "2099-01-01T00:00:00Z"}, "in_future"),
    ({"timestamp": 4_070_908_800}, "in_future"),  # 2099 in Unix seconds
    ({"timestamp": 0}, "before_release"),
    ({"timestamp": "1970-01-01T00:00:00Z"}, "before_release"),
])
def test_hostile_logs_one_misdated_row_never_promotes(project: Path, row: dict, kind: str) -> None:
    before = refs_of(project)
    where = append_row(project, **row)
    result = canary(project, "--json", "--act")
    assert result.exit_code == 3, result.output
    out = json.loads(result.stdout)
    assert out["verdict"] == "CONTINUE" and out["acted"] is None, out["reason"]
    assert out["age_seconds"] < 20 * 3600  # the row does not age the canary
    assert out["out_of_window"][kind] == 1 and out["out_of_window"]["before_release" if kind == "in_future"
                                                                      else "in_future"] == 0
    assert len(out["out_of_window"]["examples"]) == 1 and out["out_of_window"]["examples"][0].startswith(f"{where}: ")
    assert "1 row(s) outside the canary's window" in out["reason"]
    assert out["canary"]["requests"] + out["stable"]["requests"] == HOURS * PER_HOUR  # not counted either
    assert refs_of(project) == before  # stable did not move

    text = canary(project).stdout  # the human summary names it too
    assert "Rows outside the canary's window" in text and where in text


def test_hostile_logs_epoch_milliseconds_are_read_as_milliseconds(project: Path) -> None:
    seconds = json.loads(canary(project, "--json").stdout)
    path = project / "logs" / "requests.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps({**r, "timestamp": int(r["timestamp"] * 1000)}) + "\n" for r in rows))
    before = refs_of(project)
    result = canary(project, "--json", "--act")
    assert result.exit_code == 3, result.output
    out = json.loads(result.stdout)
    assert out["verdict"] == "CONTINUE" and out["acted"] is None
    assert out["age_seconds"] == pytest.approx(seconds["age_seconds"], abs=1)  # ~20 h, not 56 000 years
    assert out["canary"]["requests"] == seconds["canary"]["requests"] and out["out_of_window"]["in_future"] == 0
    assert refs_of(project) == before


def test_hostile_logs_one_row_in_milliseconds_among_seconds_is_read_as_milliseconds(project: Path) -> None:
    append_row(project, timestamp=int((START + 3600) * 1000))  # an hour after the release, in ms
    out = json.loads(canary(project, "--json").stdout)
    assert out["verdict"] == "CONTINUE" and out["out_of_window"]["in_future"] == 0
    assert out["canary"]["requests"] + out["stable"]["requests"] == HOURS * PER_HOUR + 1


def test_hostile_logs_max_age_counts_from_the_release_not_the_first_row(project: Path) -> None:
    """The age is the newest row minus the release time: 20 h pass `max_age: 12h`, not `max_age: 1d`."""
    set_canary(project, max_age="1d")
    assert json.loads(canary(project, "--json").stdout)["verdict"] == "CONTINUE"
    set_canary(project, max_age="12h")
    out = json.loads(canary(project, "--json").stdout)
    assert out["verdict"] == "PROMOTE" and "canary.max_age 12h" in out["reason"]


# --- where the logs are -----------------------------------------------------------------------------------------
@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file outside the repository that is not a request log (a passwd-like file)."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "passwd.csv").write_text("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin\n")
    (folder / "other.jsonl").write_text(json.dumps({"timestamp": START, "adapter_version": "v0.1.1"}) + "\n")
    return folder


def assert_refused(result, project: Path, before: dict, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "root:x:0:0" not in result.output
    for needle in needles:
        assert needle in result.output, result.output
    assert refs_of(project) == before


@pytest.mark.parametrize("glob", ["../outside/*.jsonl", "logs/../../outside/*", "{outside}/*.jsonl"])
def test_hostile_logs_config_globs_stay_inside_the_repository(project: Path, outside: Path, glob: str) -> None:
    path = set_canary(project, logs=[glob.format(outside=outside)])
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "outside" in text)
    before = refs_of(project)
    assert_refused(canary(project, "--act"), project, before, f"line {line}: `canary.logs[0]`",
                   "is outside the repository root", str(path))


def test_hostile_logs_symlink_out_of_the_repository_is_refused(project: Path, outside: Path) -> None:
    (project / "logs" / "x.csv").symlink_to(outside / "passwd.csv")
    set_canary(project, logs=["logs/*"])
    before = refs_of(project)
    assert_refused(canary(project, "--act", "--json"), project, before, "canary.logs[0]",
                   f"(a symlink to {outside / 'passwd.csv'}) is outside the repository root")


def test_hostile_logs_a_fifo_among_the_logs_is_refused_not_read(project: Path) -> None:
    os.mkfifo(project / "logs" / "pipe.jsonl")
    before = refs_of(project)
    assert_refused(canary(project, "--act"), project, before, "pipe.jsonl", "not a regular file (a FIFO)")


def test_hostile_logs_operator_logs_option_may_name_a_file_outside(project: Path, outside: Path) -> None:
    """`--logs` (and ADAPTERCI_CANARY_LOGS) is the operator's own choice: trusted, like any path on a command line."""
    result = canary(project, "--json", "--logs", str(project / "logs" / "requests.jsonl"),
                    "--logs", str(outside / "other.jsonl"))
    assert result.exit_code == 3, result.output
    assert json.loads(result.stdout)["canary"]["requests"] > 0


def test_hostile_logs_operator_env_logs_may_name_a_file_outside(project: Path, outside: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    logs = [str(project / "logs" / "requests.jsonl"), str(outside / "other.jsonl")]
    monkeypatch.setenv("ADAPTERCI_CANARY_LOGS", os.pathsep.join(logs))  # click splits a path list on os.pathsep
    result = canary(project, "--json")
    assert result.exit_code == 3, result.output
    assert json.loads(result.stdout)["unknown_versions"] == {}


def test_hostile_logs_a_file_that_is_not_a_log_is_never_quoted_back(project: Path, outside: Path) -> None:
    secret = "s3cr3t-" * 2000
    (project / "logs" / "b.jsonl").write_text(json.dumps({"timestamp": START, "adapter_version": "v0.1.1",
                                                          "latency_ms": secret}) + "\n" + secret + "\n")
    result = canary(project)
    assert result.exit_code == 2
    bad = project / "logs" / "b.jsonl"
    assert f"{bad}:1: `latency_ms` (latency): 's3cr3t-s3cr3t-" in result.output
    assert f"({len(repr(secret))} characters) is not a number" in result.output
    assert f"{bad}:2: not JSON" in result.output
    assert result.output.count("s3cr3t") < 12  # a few words, never the file
    passwd = canary(project, "--logs", str(outside / "passwd.csv"))  # the operator named a file that is no log
    assert passwd.exit_code == 2 and "root:x:0:0" not in passwd.output.replace(str(outside), "")


def test_hostile_logs_a_200kb_csv_field_names_file_and_line(project: Path) -> None:
    path = project / "logs" / "big.csv"
    path.write_text("timestamp,adapter_version,latency_ms\n"
                    f"{START},v0.1.1,10\n"
                    f"{START + 1},v0.1.1,\"{'x' * 200_000}\"\n")
    before = refs_of(project)
    result = canary(project, "--act", "--json")
    assert result.exit_code == 2, result.output
    assert f"{path}:3: not readable as CSV (field larger than field limit" in result.stderr
    assert "Traceback" not in result.output and "xxxxxxxxxx" not in result.output
    assert json.loads(result.stdout)["error"]["type"] == "LogError"
    assert refs_of(project) == before
