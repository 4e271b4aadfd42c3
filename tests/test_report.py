"""`adapterci report`: one Markdown report from whatever the run directory holds."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from adapterci.cli import cli
from adapterci.report import MARKER


def invoke(project: Path, *args: str, env: dict | None = None):
    return CliRunner(env=env).invoke(cli, [*args, "--config", str(project / "adapterci.yaml")],
                                     catch_exceptions=False)


def test_report_of_an_empty_run_directory(example_project: Path) -> None:
    result = invoke(example_project, "report", "--json")
    assert result.exit_code == 0
    out = json.loads(result.stdout)
    assert out == {"report": str(example_project / ".adapterci" / "run" / "report.md"), "verdict": None,
                   "version": None}
    assert Path(out["report"]).read_text() == f"{MARKER}\n## adapterci · `sentiment` · nothing has run yet\n"


def test_report_appends_to_the_step_summary_unless_told_not_to(example_project: Path, tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    env = {"GITHUB_STEP_SUMMARY": str(summary)}
    first = invoke(example_project, "report", env=env)
    assert first.exit_code == 0
    assert summary.read_text() == "earlier step\n" + first.output + "\n"
    invoke(example_project, "report", "--no-summary", env=env)
    assert summary.read_text().count(MARKER) == 1


def test_report_of_a_failed_check_lists_failures_with_file_and_line(example_project: Path, tmp_path: Path) -> None:
    valid = example_project / "data" / "valid.jsonl"
    rows = valid.read_text().splitlines()
    rows[2] = json.dumps({"instruction": "Classify the sentiment.", "input": "Mail me at jane.doe@example.com now",
                          "output": "positive"})
    valid.write_text("\n".join(rows) + "\n")
    run_dir = tmp_path / "run"
    check = invoke(example_project, "check", "--run-dir", str(run_dir))
    assert check.exit_code == 1
    output = tmp_path / "comment.md"
    result = invoke(example_project, "report", "--run-dir", str(run_dir), "--output", str(output), "--no-summary")
    assert result.exit_code == 0
    report = output.read_text()
    assert report == result.output
    assert report.startswith(f"{MARKER}\n## adapterci · `sentiment` · ❌ data check failed\n")
    assert "| `pii` | ❌ fail (1) |" in report
    assert any(line.startswith("| `pii` | `data/valid.jsonl:3` |") for line in report.splitlines())
    assert "### Training" not in report and "### Gate" not in report
    assert not (run_dir / "report.md").exists()  # --output wrote elsewhere
