from __future__ import annotations

from pathlib import Path

import click

from adapterci.scaffold import DEFAULT_ACTION, scaffold


@click.command(name="init")
@click.argument("directory", default=".", type=click.Path(file_okay=False))
@click.option("--name", default=None, help="Adapter name (default: the directory's name).")
@click.option("--base-model", default=None,
              help="A Hub model id to fine-tune (default: build the tiny offline model into models/tiny-llama).")
@click.option("--action", default=None,
              help="The `uses:` reference of the adapterci action in the workflows (pin it by commit SHA).")
@click.option("--force", is_flag=True,
              help="Overwrite the scaffold's own files where they already exist (nothing else; models/tiny-llama "
                   "only when it holds just a tiny model init built).")
def init(directory: str, name: str | None, base_model: str | None, action: str | None, force: bool) -> None:
    """Scaffold an adapter repository: config, data, eval sets, workflows, README section.

    The result passes `adapterci check` out of the box (offline, with the tiny model).

    \b
    adapterci init my-adapter
    adapterci init . --base-model Qwen/Qwen2.5-0.5B-Instruct --action OWNER/adapterci@SHA
    """
    result = scaffold(Path(directory), name=name, base_model=base_model, action=action or DEFAULT_ACTION,
                      force=force)
    for path in result.created:
        click.echo(f"created {path.relative_to(result.root)}")
    if result.model_built:
        click.echo("built   models/tiny-llama (tiny offline model; set `base_model` to a Hub id for real work)")
    click.echo(f"updated {result.readme.relative_to(result.root)}")
    click.echo(f"\nNext: cd {directory} && adapterci check && adapterci run")
