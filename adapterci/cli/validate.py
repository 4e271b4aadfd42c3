from __future__ import annotations

from dataclasses import asdict

import click

from adapterci.cli.common import config_option, emit_json, json_option
from adapterci.config import DEFAULT_CONFIG, load_config
from adapterci.errors import UsageError
from adapterci.gate import power


@click.command(name="validate")
@click.argument("config_arg", required=False, type=click.Path(dir_okay=False))
@config_option
@json_option
def validate(config_arg: str | None, config_path: str, as_json: bool) -> None:
    """Validate a config file: every problem with its key and line.

    Also warns about each gate rule whose eval suite is too small to decide it: about how many items the
    rule's test needs to pass a candidate beyond its threshold with 80% power (docs/gate.md).

    \b
    adapterci validate adapterci.yaml
    adapterci validate --config adapterci.yaml
    """
    if config_arg is not None and config_path != DEFAULT_CONFIG and config_arg != config_path:
        raise UsageError(f"two config files given ({config_arg} and --config {config_path}): name one")
    cfg = load_config(config_arg or config_path)
    plans = power.plan(cfg)
    if as_json:
        emit_json({"valid": True, "config": cfg.model_dump(mode="json"),
                   "sample_sizes": [{**asdict(p), "too_small": p.too_small} for p in plans]})
        return
    click.echo(f"{cfg.path}: valid")
    for p in plans:
        if p.too_small and p.sample_size:
            size = p.sample_size
            click.echo(f"warning: `{p.rule}` needs about {size.needed} items in `{p.suite}`, which has {p.items}: "
                       f"that many pass a candidate {size.effect:g} beyond its threshold with {size.power:.0%} power "
                       f"at significance {cfg.gate.significance} ({size.method}; {size.note}); see "
                       "docs/gate.md", err=True)
