"""Generate docs/cli.md from the `--help` of every command (cog -r -I docs/tools docs/cli.md)."""

from __future__ import annotations

from click.testing import CliRunner


def help_pages() -> str:
    from adapterci.cli import cli

    runner = CliRunner()
    import click

    pages = [("adapterci", [])]
    for name in cli.list_commands(None):
        pages.append((f"adapterci {name}", [name]))
        command = cli.get_command(None, name)
        if isinstance(command, click.Group):  # and each subcommand of a group (`adapterci pr authorize`, ...)
            pages += [(f"adapterci {name} {sub}", [name, sub]) for sub in command.list_commands(None)]
    out = []
    for title, args in pages:
        result = runner.invoke(cli, [*args, "--help"], prog_name="adapterci", terminal_width=100)
        if result.exit_code != 0:
            raise RuntimeError(f"{title} --help failed: {result.output}")
        out += [f"## {title}", "", "```", result.output.rstrip(), "```", ""]
    return "\n".join(out)
