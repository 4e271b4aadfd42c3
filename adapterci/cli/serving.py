"""`adapterci serving`: the serving manifest (commit-pinned adapters, traffic weights, vLLM command)."""

from __future__ import annotations

import click

from adapterci.cli.common import config_option, emit_json
from adapterci.config import load_config
from adapterci.release.serving import serving_manifest, vllm_script


@click.command(name="serving")
@config_option
@click.option("--ref", default=None, help="Serve only this ref (version, `canary`, `stable` or commit) at weight 1.")
@click.option("--format", "fmt", type=click.Choice(["json", "vllm"]), default="json", show_default=True,
              help="`json`: serving.json; `vllm`: the shell lines that download the adapters and start vLLM.")
def serving(config_path: str, ref: str | None, fmt: str) -> None:
    """Print how to serve stable and canary (or one REF), adapters pinned by commit.

    \b
    adapterci serving
    adapterci serving --format vllm
    adapterci serving --ref v0.2.0
    """
    manifest = serving_manifest(load_config(config_path), ref)
    if fmt == "json":
        emit_json(manifest)
    else:
        click.echo(vllm_script(manifest), nl=False)
