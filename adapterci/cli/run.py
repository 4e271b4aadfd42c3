from __future__ import annotations

import click

from adapterci import pipeline
from adapterci.cli.common import config_option, console, emit_json, json_option, run_dir_option
from adapterci.config import load_config

STYLE = {"running": "dim", "ran": "green", "cached": "cyan", "failed": "bold red", "skipped": "dim"}


@click.command(name="run")
@config_option
@click.option("--release/--no-release", default=True, show_default=True,
              help="Release the adapter to the configured registry when the gate passes.")
@click.option("--champion", default="auto", show_default=True,
              help="Compare with this adapter besides the base: `auto` (the registry's stable), `none`, a ref or a "
                   "directory.")
@click.option("--base-ref", default=None, metavar="GIT_REF",
              help="On a gate FAIL, attribute the regressions to the training rows added since this git ref.")
@run_dir_option
@click.option("--dry", is_flag=True,
              help="Print the planned stages, each `cached` (reused) or `to run` and why, and exit without running them.")
@json_option
def run(config_path: str, release: bool, champion: str, base_ref: str | None, run_dir: str | None, dry: bool,
        as_json: bool) -> None:
    """Run the pipeline: check -> train -> eval -> gate -> release (on PASS).

    Stages whose inputs did not change reuse their cached outputs, also those of `adapterci train`, `eval` and
    `gate` run by hand (`--dry` lists which, and why the others run); a training interrupted on the same inputs
    continues from its last checkpoint. The report is written to the run directory (and appended to
    $GITHUB_STEP_SUMMARY) even when a stage fails; the exit code is the failing stage's: 1 check or gate
    failed, 2 usage or config error, 3 gate inconclusive. The run directory is locked while a command
    writes it: a second one on the same directory refuses (use --run-dir). On a gate FAIL the report also
    ranks the training rows behind the regressions (`adapterci explain`).

    \b
    adapterci run                      # the example project, offline, local registry
    adapterci run --no-release --json  # what the PR workflow runs
    adapterci run --champion none      # compare with the base model only
    adapterci run --dry
    """
    cfg = load_config(config_path)
    if dry:
        stages = pipeline.preview(cfg, release, run_dir=run_dir, champion=champion)
        if as_json:
            emit_json({"stages": [{"name": s.name, "status": s.status, "reason": s.reason} for s in stages]})
        else:
            for i, stage in enumerate(stages, 1):
                click.echo(f"{i}. {stage.name:8} {stage.status:8} {stage.reason}")
        return
    out = console()
    show = None if as_json else (lambda r: out.print(
        f"[{STYLE[r.status]}]{r.name:8} {r.status:8}[/] {f'{r.seconds:6.1f}s' if r.status != 'running' else ''}  {r.message}"))
    result = pipeline.run(cfg, release=release, run_dir=run_dir, on_stage=show, champion=champion, base_ref=base_ref)
    if as_json:
        emit_json(result.to_dict())
    else:
        out.print(f"report: {result.report}")
    if result.error is not None:
        raise result.error
