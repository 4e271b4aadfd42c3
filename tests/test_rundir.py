"""The run directory is owned by `RunDir`: one list of stage outputs (what a new run clears), and one lock that
every library function writing there holds, so two commands never mix their outputs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapterci.cli import cli
from adapterci.errors import UsageError
from adapterci.gate.policy import decide
from adapterci.runs import RunDir
from test_gate import LABELS, config, make_results, task_items


def test_rundir_clear_removes_every_stage_output_and_keeps_the_pr_record(tmp_path: Path) -> None:
    rd = RunDir(tmp_path / "run")
    for path in rd.outputs():
        if path.suffix:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("{}")
        else:
            (path / "inner").mkdir(parents=True)
    rd.pr_json.write_text("{}")
    assert rd.serving_json in rd.outputs() and rd.release_json in rd.outputs()
    rd.clear()
    assert sorted(p.name for p in rd.path.iterdir()) == ["pr.json"]


def test_a_failed_run_shows_no_serving_section_of_an_earlier_release(example_project: Path) -> None:
    """An earlier release's serving.json must not appear in the report of a later run that failed."""
    rd = RunDir(example_project / ".adapterci" / "run")
    rd.path.mkdir(parents=True)
    rd.serving_json.write_text(json.dumps({"adapters": [{"role": "stable", "name": "stale", "version": "v9.9.9"}]}))
    (example_project / "data" / "train.jsonl").write_text("not json\n")
    result = CliRunner().invoke(cli, ["run", "--config", str(example_project / "adapterci.yaml")])
    assert result.exit_code == 1, result.output
    assert not rd.serving_json.exists()
    assert "v9.9.9" not in rd.report_md.read_text()


def _hold(rd: RunDir) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", "import time; from pathlib import Path; "
                               "from adapterci.runs import RunDir\n"
                               f"with RunDir(Path({str(rd.path)!r})).locked():\n"
                               "    print('held', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_the_gate_holds_the_run_directory_lock_when_it_writes(tmp_path: Path) -> None:
    """`decide` (the library, not only the CLI) refuses to write gate.json into a directory in use."""
    cfg = config(tmp_path, ["sentiment.accuracy >= 0.5"])
    results = make_results(task_items(list(LABELS) * 20, {"base": list(LABELS) * 20, "candidate": list(LABELS) * 20}))
    rd = RunDir(tmp_path / "run")
    holder = _hold(rd)
    try:
        with pytest.raises(UsageError, match="is in use by another adapterci command"):
            decide(cfg, results, run_dir=rd)
        assert not rd.gate_json.exists()
        assert decide(cfg, results, run_dir=rd, write=False).verdict == "PASS"  # reading needs no lock
    finally:
        holder.kill()
        holder.wait()
    decide(cfg, results, run_dir=rd)
    assert json.loads(rd.gate_json.read_text())["verdict"] == "PASS"


READS_ENV = re.compile(r"""(environ\.get\(|getenv\(|environ\[|envvar=\[?)\s*["']ADAPTERCI_""")


def test_only_settings_reads_adapterci_environment_variables() -> None:
    """Every ADAPTERCI_* variable is read in adapterci/settings.py (click options name theirs from there)."""
    assert READS_ENV.search('x = os.environ.get("ADAPTERCI_CACHE_DIR")')  # the scan would see the old way
    assert READS_ENV.search("@click.option('--logs', envvar='ADAPTERCI_CANARY_LOGS')")
    root = Path(__file__).resolve().parent.parent / "adapterci"
    readers = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                     if p.name != "settings.py" and READS_ENV.search(p.read_text()))
    assert readers == []
