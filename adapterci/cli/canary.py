"""`adapterci canary`: judge the canary on production request logs; with --act, promote or roll it back."""

from __future__ import annotations

import click

from adapterci import settings
from adapterci.canary import act, analyze
from adapterci.canary.summary import append_step_summary, markdown
from adapterci.cli.common import config_option, console, emit_json, json_option
from adapterci.config import load_config


@click.command(name="canary")
@config_option
@click.option("--logs", "logs", multiple=True, type=click.Path(dir_okay=False), envvar=settings.CANARY_LOGS,
              show_envvar=True, help="A request log file or glob (JSONL, CSV, Parquet); repeatable; may name files outside the repository "
                   "(yours to choose, unlike `canary.logs`, which a pull request can change). Default: `canary.logs`.")
@click.option("--act", "act_on", is_flag=True,
              help="Promote the canary on PROMOTE; move `canary` back to stable on ROLLBACK.")
@click.option("--summary/--no-summary", default=True, show_default=True,
              help="Append the verdict and tables to $GITHUB_STEP_SUMMARY when that is set.")
@json_option
def canary(config_path: str, logs: tuple[str, ...], act_on: bool, summary: bool, as_json: bool) -> None:
    """Compare canary with stable on request logs: PROMOTE (exit 0), ROLLBACK (1) or CONTINUE (3).

    \b
    adapterci canary --logs 'logs/*.jsonl'
    adapterci canary --act --json
    """
    cfg = load_config(config_path)
    decision = analyze(cfg, list(logs) or None)
    if act_on:
        act(cfg, decision)
    if summary:
        append_step_summary(markdown(decision))
    if as_json:
        emit_json(decision.to_json())
    else:
        console().print(markdown(decision), markup=False)
    if decision.exit_code:
        raise click.exceptions.Exit(decision.exit_code)
