"""Options shared by commands and the one place that renders results."""

from __future__ import annotations

import json
import sys
from typing import Any, Callable

import click

from adapterci.cli import JSON_EMITTED, JSON_REQUESTED
from adapterci.config import DEFAULT_CONFIG


def config_option(f: Callable) -> Callable:
    return click.option("--config", "config_path", default=DEFAULT_CONFIG, show_default=True,
                        type=click.Path(dir_okay=False), help="The adapterci.yaml to use.")(f)


def json_option(f: Callable) -> Callable:
    """`--json`: one JSON object on stdout, also when the command fails (`{"error": {...}}`, see cli/__init__)."""
    def remember(ctx: click.Context, _param, value: bool) -> bool:
        if value:
            ctx.meta[JSON_REQUESTED] = True
        return value

    return click.option("--json", "as_json", is_flag=True, is_eager=True, callback=remember,
                        help="Print one JSON object for machines.")(f)


def run_dir_option(f: Callable) -> Callable:
    return click.option("--run-dir", type=click.Path(file_okay=False), default=None,
                        help="Run directory (default: .adapterci/run beside the config).")(f)


def emit_json(obj: Any) -> None:
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.meta[JSON_EMITTED] = True
    click.echo(json.dumps(obj, indent=2, default=str))


def console():
    """A rich console on stdout (plain when not a terminal)."""
    from rich.console import Console

    return Console(file=sys.stdout, soft_wrap=True, highlight=False)
