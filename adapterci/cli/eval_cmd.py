from __future__ import annotations

import click

from adapterci.cli.common import config_option, console, emit_json, json_option, run_dir_option
from adapterci.config import load_config
from adapterci.eval.stage import evaluate
from adapterci.eval.summary import summary_markdown
from adapterci.runs import run_dir_for


@click.command(name="eval")
@config_option
@click.option("--adapter", default=None, metavar="DIR|REF", help="Candidate adapter (default: the run's adapter/).")
@click.option("--champion", default="auto", show_default=True, metavar="DIR|REF|none",
              help="Released adapter to beat: `auto` is the registry's `stable` (none before the first release).")
@json_option
@run_dir_option
def eval_(config_path: str, adapter: str | None, champion: str, as_json: bool, run_dir: str | None) -> None:
    """Evaluate base, champion and candidate on the same items of every eval suite.

    \b
    adapterci eval                          # the adapter of the last `adapterci train`
    adapterci eval --adapter v1.2.0 --champion none
    """
    cfg = load_config(config_path)
    run = run_dir_for(cfg, run_dir)
    results = evaluate(cfg, adapter, champion=champion, run_dir=run)
    if as_json:
        emit_json({**results.data, "results_path": str(run.eval_json), "items_path": str(run.eval_items)})
    else:
        from rich.markdown import Markdown

        console().print(Markdown(summary_markdown(results)))
        click.echo(f"Results: {run.eval_json}")
