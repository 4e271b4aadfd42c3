from __future__ import annotations

import click

from adapterci.cli.common import config_option, emit_json, json_option, run_dir_option
from adapterci.config import load_config
from adapterci.report import outcome, write_report
from adapterci.runs import run_dir_for


@click.command(name="report")
@config_option
@run_dir_option
@click.option("--output", type=click.Path(dir_okay=False), default=None,
              help="Write the report here instead of report.md in the run directory.")
@click.option("--summary/--no-summary", default=True, show_default=True,
              help="Append the report to $GITHUB_STEP_SUMMARY when that is set.")
@json_option
def report(config_path: str, run_dir: str | None, output: str | None, summary: bool, as_json: bool) -> None:
    """Write the Markdown report of a run (PR comment and step summary).

    The report covers whatever stages the run directory holds: data check, training, eval table,
    safety table, gate verdict with per-rule reasons and the released version.

    \b
    adapterci report
    adapterci report --run-dir .adapterci/run --output report.md
    """
    cfg = load_config(config_path)
    rd = run_dir_for(cfg, run_dir)
    path = write_report(cfg, rd.path, output, step_summary=summary)
    if as_json:
        emit_json({"report": str(path), **outcome(rd.path)})
    else:
        click.echo(path.read_text(encoding="utf-8"), nl=False)
