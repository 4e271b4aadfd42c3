from __future__ import annotations

from pathlib import Path

import click

from adapterci.distribution import REPOSITORY, UNPINNED
from adapterci.scaffold import scaffold


@click.command(name="init")
@click.argument("directory", default=".", type=click.Path(file_okay=False))
@click.option("--name", default=None, help="Adapter name (default: the directory's name).")
@click.option("--base-model", default=None,
              help="A Hub model id to fine-tune (default: build the tiny offline model into models/tiny-llama).")
@click.option("--action", default=None, metavar="OWNER/NAME@COMMIT",
              help="The adapterci commit the workflows' `uses:` and the README's pip install pin (default: the "
                   "commit this adapterci was installed from with pip, when known).")
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
    result = scaffold(Path(directory), name=name, base_model=base_model, action=action, force=force)
    for path in result.created:
        click.echo(f"created {path.relative_to(result.root)}")
    if result.model_built:
        click.echo("built   models/tiny-llama (tiny offline model; set `base_model` to a Hub id for real work)")
    click.echo(f"updated {result.readme.relative_to(result.root)}")
    if result.pinned:
        click.echo(f"pinned  adapterci {result.action} (the workflows' action and the README's pip install)")
    else:
        click.echo(f"Warning: this adapterci was not installed with pip from its git repository, so its commit is "
                   f"unknown: the workflows and README.md say `{UNPINNED}`, which fails every workflow run and pip "
                   f"install until you replace it with a commit of github.com/{REPOSITORY} (or pass --action "
                   f"{REPOSITORY}@COMMIT).", err=True)
    click.echo(f"\nNext: cd {directory} && adapterci check && adapterci run")
