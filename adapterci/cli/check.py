from __future__ import annotations

import click

from adapterci.check import run_checks
from adapterci.cli.common import config_option, console, emit_json, json_option, run_dir_option
from adapterci.config import load_config


@click.command(name="check")
@config_option
@json_option
@click.option("--base-ref", default=None, metavar="GIT_REF",
              help="Check only rows added since this git ref (duplicates and leakage still see everything).")
@run_dir_option
def check(config_path: str, as_json: bool, base_ref: str | None, run_dir: str | None) -> None:
    """Check the training data and the eval sets: schema, row count, token length, duplicates,
    near duplicates, train/eval leakage, PII and secrets, label balance. Exit 1 if any check fails.

    \b
    adapterci check
    adapterci check --base-ref origin/main --json
    """
    cfg = load_config(config_path)
    report = run_checks(cfg, base_ref=base_ref, run_dir=run_dir)
    if as_json:
        emit_json(report.as_dict())
    else:
        _render(report)
    if not report.passed:
        raise click.exceptions.Exit(1)


def _render(report) -> None:
    from rich.table import Table

    table = Table(title="adapterci check" + (f" (rows added since {report.base_ref})" if report.base_ref else ""))
    for col in ("Check", "Result", "Details"):
        table.add_column(col)
    for c in report.checks:
        table.add_row(c.name, "[green]pass[/]" if c.passed else f"[red]FAIL ({len(c.failures)})[/]", c.summary)
    out = console()
    out.print(table)
    for c in report.checks:
        for f in c.failures[:20]:
            out.print(f"{c.name}: {f.file}:{f.line}: {f.message}", markup=False)
        if len(c.failures) > 20:
            out.print(f"{c.name}: ... and {len(c.failures) - 20} more", markup=False)
    out.print(f"{'passed' if report.passed else 'FAILED'}; details in {report.data_docs.parent.parent / 'check.json'}"
              f" and Data Docs at {report.data_docs}", markup=False)
