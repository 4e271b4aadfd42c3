from __future__ import annotations

import click

from adapterci.cli.common import config_option, emit_json, json_option, run_dir_option
from adapterci.config import load_config
from adapterci.runs import run_dir_for
from adapterci.train.run import train as train_adapter


@click.command(name="train")
@config_option
@click.option("--output", type=click.Path(file_okay=False), default=None,
              help="Adapter directory to write (default: the run directory's adapter/).")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint of an interrupted run.")
@json_option
@run_dir_option
def train(config_path: str, output: str | None, resume: bool, as_json: bool, run_dir: str | None) -> None:
    """Train a LoRA/QLoRA adapter from the config's `train` section.

    \b
    adapterci train
    adapterci train --output adapters/sentiment --resume
    accelerate launch --num_processes 2 -m adapterci train    (DDP)
    """
    cfg = load_config(config_path)
    result = train_adapter(cfg, output=output, resume=resume, run_dir=run_dir_for(cfg, run_dir))
    if not result.metrics:  # a non-main process of a multi-process run: the main one reports
        return
    if as_json:
        emit_json({"adapter_dir": str(result.adapter_dir), **result.metrics})
    else:
        m = result.metrics
        click.echo(f"adapter: {result.adapter_dir}\nbackend {m['backend']} on {m['device']}, {m['steps']} steps, "
                   f"{m['wall_time_s']:.1f}s, {m['tokens_per_s']:.0f} tokens/s, best validation loss "
                   f"{m['best_valid_loss'] if m['best_valid_loss'] is not None else '-'}")
