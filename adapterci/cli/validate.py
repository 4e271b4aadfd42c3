from __future__ import annotations

import click

from adapterci.cli.common import emit_json, json_option
from adapterci.config import DEFAULT_CONFIG, load_config


@click.command(name="validate")
@click.argument("config_path", default=DEFAULT_CONFIG, type=click.Path(dir_okay=False))
@json_option
def validate(config_path: str, as_json: bool) -> None:
    """Validate a config file: every problem with its key and line.

    \b
    adapterci validate adapterci.yaml
    """
    cfg = load_config(config_path)
    if as_json:
        emit_json({"valid": True, "config": cfg.model_dump(mode="json")})
    else:
        click.echo(f"{cfg.path}: valid")
