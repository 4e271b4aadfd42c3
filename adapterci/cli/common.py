"""Options shared by commands and the one place that renders results."""

from __future__ import annotations

import json
import sys
from typing import Any, Callable

import click

from adapterci.config import DEFAULT_CONFIG


def config_option(f: Callable) -> Callable:
    return click.option("--config", "config_path", default=DEFAULT_CONFIG, show_default=True,
                        type=click.Path(dir_okay=False), help="The adapterci.yaml to use.")(f)


def json_option(f: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON object for machines.")(f)


def run_dir_option(f: Callable) -> Callable:
    return click.option("--run-dir", type=click.Path(file_okay=False), default=None,
                        help="Run directory (default: .adapterci/run beside the config).")(f)


def emit_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


def console():
    """A rich console on stdout (plain when not a terminal)."""
    from rich.console import Console

    return Console(file=sys.stdout, soft_wrap=True, highlight=False)
