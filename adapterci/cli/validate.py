from __future__ import annotations

import click

from adapterci.cli.common import config_option, emit_json, json_option
from adapterci.config import DEFAULT_CONFIG, load_config
from adapterci.errors import UsageError


@click.command(name="validate")
@click.argument("config_arg", required=False, type=click.Path(dir_okay=False))
@config_option
@json_option
def validate(config_arg: str | None, config_path: str, as_json: bool) -> None:
    """Validate a config file: every problem with its key and line.

    \b
    adapterci validate adapterci.yaml
    adapterci validate --config adapterci.yaml
    """
    if config_arg is not None and config_path != DEFAULT_CONFIG and config_arg != config_path:
        raise UsageError(f"two config files given ({config_arg} and --config {config_path}): name one")
    cfg = load_config(config_arg or config_path)
    if as_json:
        emit_json({"valid": True, "config": cfg.model_dump(mode="json")})
    else:
        click.echo(f"{cfg.path}: valid")
