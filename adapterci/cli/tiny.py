from __future__ import annotations

from pathlib import Path

import click

from adapterci.data.load import expand
from adapterci.errors import UsageError
from adapterci.tiny import build_tiny_model as build

DEFAULT_CORPUS = ("data/*.jsonl", "evalsets/*.jsonl")


@click.command(name="build-tiny-model")
@click.option("--out", "out_dir", default="models/tiny-llama", show_default=True, type=click.Path(file_okay=False),
              help="Directory to write the model and tokenizer to (replaced).")
@click.option("--corpus", "patterns", multiple=True, default=DEFAULT_CORPUS, show_default=True,
              help="JSONL files (globs) whose text trains the tokenizer; repeatable.")
@click.option("--hidden-size", default=64, show_default=True, help="Model width.")
@click.option("--layers", default=2, show_default=True, help="Decoder layers.")
@click.option("--vocab-size", default=1024, show_default=True, help="BPE vocabulary size.")
@click.option("--seed", default=0, show_default=True, help="Seed of the random initialisation.")
def build_tiny_model(out_dir: str, patterns: tuple[str, ...], hidden_size: int, layers: int, vocab_size: int,
                     seed: int) -> None:
    """Build the tiny offline Llama model (random weights + a BPE tokenizer trained on the corpus).

    \b
    adapterci build-tiny-model --out models/tiny-llama --corpus 'data/*.jsonl' --corpus 'evalsets/*.jsonl'
    """
    files = expand(list(patterns), Path.cwd())
    if not files:
        raise UsageError(f"no corpus file matches {', '.join(patterns)}")
    out = build(Path(out_dir), [f.relative_to(Path.cwd()) if f.is_relative_to(Path.cwd()) else f for f in files],
                hidden_size=hidden_size, layers=layers, vocab_size=vocab_size, seed=seed)
    click.echo(f"wrote {out}")
