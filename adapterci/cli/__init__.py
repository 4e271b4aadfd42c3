"""The `adapterci` command: a lazy click group. Commands live in `adapterci/cli/<name>.py` and are imported
only when invoked, so `--help` never imports torch, transformers or Great Expectations."""

from __future__ import annotations

import importlib
import sys

import click

from adapterci import __version__, settings
from adapterci.errors import AdapterCIError, FileSystemError, InternalError

COMMANDS = {
    "init": "adapterci.cli.init_cmd:init",
    "validate": "adapterci.cli.validate:validate",
    "check": "adapterci.cli.check:check",
    "train": "adapterci.cli.train:train",
    "eval": "adapterci.cli.eval_cmd:eval_",
    "gate": "adapterci.cli.gate:gate",
    "explain": "adapterci.cli.explain:explain",
    "release": "adapterci.cli.registry_cmds:release",
    "promote": "adapterci.cli.registry_cmds:promote",
    "rollback": "adapterci.cli.registry_cmds:rollback",
    "versions": "adapterci.cli.registry_cmds:versions",
    "serving": "adapterci.cli.serving:serving",
    "canary": "adapterci.cli.canary:canary",
    "run": "adapterci.cli.run:run",
    "report": "adapterci.cli.report:report",
    "pr": "adapterci.cli.pr:pr",
    "hub-emulator": "adapterci.cli.hub_emulator:hub_emulator",
    "build-tiny-model": "adapterci.cli.tiny:build_tiny_model",
}
SHORT_HELP = {
    "init": "Scaffold a new adapter repository.",
    "validate": "Validate a config file.",
    "check": "Check training data and eval sets.",
    "train": "Train a LoRA/QLoRA adapter.",
    "eval": "Evaluate base, champion and candidate.",
    "gate": "Apply the gate policy to eval results.",
    "explain": "Rank the training rows behind a run's regressions.",
    "release": "Release an adapter as a new version.",
    "promote": "Move `stable` to the canary (or a version).",
    "rollback": "Move `stable` back to the previous stable.",
    "versions": "List released versions and refs.",
    "serving": "Print how to serve stable and canary.",
    "canary": "Judge the canary on request logs.",
    "run": "check -> train -> eval -> gate -> release.",
    "report": "Write the Markdown report of a run.",
    "pr": "Pull requests on the GPU runner (authorize, materialize).",
    "hub-emulator": "Serve a local emulator of the Hub API.",
    "build-tiny-model": "Build the tiny offline test model.",
}


class LazyGroup(click.Group):
    """Imports a command's module only when the command runs (click's documented LazyGroup pattern)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module_name, attr = COMMANDS[name].split(":")
        return getattr(importlib.import_module(module_name), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SHORT_HELP[name]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):
        """The one error boundary: domain errors and file-system errors (disk full, read-only) become one
        `Error:` line and their exit code; any other exception is a bug, shown in one line too unless running
        under pytest or with ADAPTERCI_RAISE_ERRORS set (then it propagates with its traceback)."""
        raising = settings.current().raise_errors
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except AdapterCIError as exc:
            if raising:
                raise
            _fail(ctx, exc)
        except OSError as exc:
            if raising:
                raise
            _fail(ctx, FileSystemError.of(exc))
        except Exception as exc:
            if raising or getattr(sys, "_called_from_test", False):
                raise
            _fail(ctx, InternalError(f"internal error: {type(exc).__name__}: {exc} (set ADAPTERCI_RAISE_ERRORS=1 "
                                     "for the traceback and report it)"))


def _fail(ctx: click.Context, exc: AdapterCIError) -> None:
    click.echo(f"Error: {exc}", err=True)
    ctx.exit(exc.exit_code)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="adapterci")
def cli() -> None:
    """Release LoRA adapters of LLMs the way good teams release software.

    \b
    adapterci check      validate the data of a pull request
    adapterci run        check -> train -> eval -> gate -> release, locally
    """


def main() -> None:
    cli(prog_name="adapterci")
