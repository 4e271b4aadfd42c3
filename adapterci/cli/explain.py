from __future__ import annotations

import click

from adapterci.cli.common import config_option, emit_json, json_option, run_dir_option
from adapterci.config import load_config
from adapterci.explain import explain as attribute
from adapterci.explain.attribute import regression_records
from adapterci.explain.render import attribution_markdown, regressions_markdown
from adapterci.runs import run_dir_for


@click.command(name="explain")
@config_option
@run_dir_option
@click.option("--items", default=10, show_default=True, type=click.IntRange(min=1),
              help="Regressed items attributed per group (suite and failure type), most confident first.")
@click.option("--rows", "top", default=10, show_default=True, type=click.IntRange(min=1),
              help="Training rows listed per group.")
@click.option("--base-ref", default=None, metavar="GIT_REF",
              help="Rank only the training rows added or changed since this git ref (the PR's rows); without it "
                   "every row is ranked, which is weak evidence.")
@click.option("--method", type=click.Choice(["auto", "gradient", "text"]), default="auto", show_default=True,
              help="`gradient`: LoRA gradient features (LESS); `text`: TF-IDF similarity; `auto`: gradients unless "
                   "they would cost more than the training did.")
@json_option
def explain(config_path: str, run_dir: str | None, items: int, top: int, base_ref: str | None, method: str,
            as_json: bool) -> None:
    """Explain a run's regressions: the items the candidate gets wrong that the champion (or base) got right,
    by category, label and failure type, and the training rows ranked by their influence on them.

    Reads the run's eval results; writes explain/attribution.json (the report shows it).

    \b
    adapterci explain
    adapterci explain --base-ref origin/main --items 5 --json
    """
    cfg = load_config(config_path)
    rd = run_dir_for(cfg, run_dir)
    data = attribute(cfg, rd.path, items=items, top=top, base_ref=base_ref, method=method)
    if as_json:
        emit_json(data)
        return
    records = regression_records(cfg, rd)
    lines = regressions_markdown(records) or ["No regressions: the candidate gets right every item the "
                                              "champion (or base) got right."]
    click.echo("\n".join(lines + [""] + attribution_markdown(data)).rstrip())

