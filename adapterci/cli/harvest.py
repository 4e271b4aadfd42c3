"""`adapterci harvest` and `adapterci ingest`: production failures -> labeling queue -> training rows and eval items."""

from __future__ import annotations

import click

from adapterci.cli.common import config_option, console, emit_json, json_option
from adapterci.config import load_config
from adapterci.harvest.harvest import harvest as run_harvest
from adapterci.harvest.ingest import ingest as run_ingest


@click.command(name="harvest")
@config_option
@click.option("--logs", "logs", multiple=True, type=click.Path(dir_okay=False),
              help="A request log file or glob (JSONL, CSV, Parquet); repeatable. Default: `canary.logs`.")
@click.option("--version", "version", default=None, help="Only requests served by this version (as logged).")
@click.option("--since", default=None, help="Only requests at or after this time: ISO 8601, or a duration back from now (12h, 7d).")
@click.option("--limit", type=int, default=None, help="At most this many queue items, taken round-robin over the ranked clusters.")
@click.option("--payloads", multiple=True, type=click.Path(dir_okay=False),
              help="Files (or globs) of request id, prompt and response, when the logs hold only the request id; repeatable.")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Queue directory. Default: `harvest.queue`.")
@json_option
def harvest(config_path: str, logs: tuple[str, ...], version: str | None, since: str | None, limit: int | None,
            payloads: tuple[str, ...], out: str | None, as_json: bool) -> None:
    """Turn failed production requests into a ranked, redacted labeling queue.

    \b
    adapterci harvest --logs 'logs/*.jsonl' --since 7d --limit 200
    """
    result = run_harvest(load_config(config_path), list(logs) or None, version, since, limit,
                         list(payloads) or None, out)
    if as_json:
        emit_json(result.to_json())
        return
    out_ = console()
    out_.print(f"{result.rows} requests read, {result.failures} failed, {result.dropped_secrets} dropped (secrets), "
               f"{len(result.items)} queued in {len(result.clusters)} cluster(s):", markup=False)
    for rank, c in enumerate(result.clusters[:10], 1):
        out_.print(f"  {rank:>3}. {c.id} {c.name}: {c.size} request(s), score {c.score}", markup=False)
    out_.print(f"Queue: {result.files['jsonl']} (also CSV, Argilla, Label Studio beside it)", markup=False)


@click.command(name="ingest")
@config_option
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@click.option("--branch", default=None, help="Commit the rows on this new git branch (refused if it exists).")
@json_option
def ingest(config_path: str, file: str, branch: str | None, as_json: bool) -> None:
    """Append a reviewed queue to the training data and the eval suite.

    \b
    adapterci ingest .adapterci/harvest/queue.jsonl --branch data/harvest-week-1
    adapterci ingest reviewed-label-studio-export.json
    """
    result = run_ingest(load_config(config_path), file, branch)
    if as_json:
        emit_json(result.to_json())
        return
    console().print(f"{len(result.train)} training row(s) -> {result.train_file}, {len(result.eval)} eval item(s) -> "
                    f"{result.eval_file} ({result.suite}); {result.discarded} discarded, {len(result.known)} left out as "
                    f"already in the data, {len(result.repeats)} as repeats of a kept item"
                    + (f"; committed {result.commit[:12]} on {result.branch}" if result.commit else ""), markup=False)
