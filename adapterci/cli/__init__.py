"""The `adapterci` command: a lazy click group. Commands live in `adapterci/cli/<name>.py` and are imported
only when invoked, so `--help` never imports torch, transformers or Great Expectations."""

from __future__ import annotations

import importlib
import json
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
    "harvest": "adapterci.cli.harvest:harvest",
    "ingest": "adapterci.cli.harvest:ingest",
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
    "harvest": "Failed requests -> a labeling queue.",
    "ingest": "A reviewed queue -> training rows and eval items.",
    "run": "check -> train -> eval -> gate -> release.",
    "report": "Write the Markdown report of a run.",
    "pr": "Pull requests on the GPU runner (authorize, materialize).",
    "hub-emulator": "Serve a local emulator of the Hub API.",
    "build-tiny-model": "Build the tiny offline test model.",
}


# ctx.meta keys (shared by every nested context): `--json` was given / a JSON object was already printed
JSON_REQUESTED = "adapterci.json"
JSON_EMITTED = "adapterci.json_emitted"
_RAW_ARGS = "adapterci.raw_args"


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

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta.setdefault(_RAW_ARGS, list(args))  # the outermost group's view: the whole command line
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context):
        """The one error boundary: domain errors and file-system errors (disk full, read-only) become one
        `Error:` line on stderr and their exit code (and, under `--json`, one JSON error object on stdout); any
        other exception is a bug, shown in one line too unless running under pytest or with
        ADAPTERCI_RAISE_ERRORS set (then it propagates with its traceback)."""
        raising = False
        try:
            raising = settings.current().raise_errors  # an invalid ADAPTERCI_* value is a usage error (exit 2)
            return super().invoke(ctx)
        except click.exceptions.ClickException as exc:  # click's own usage errors: click prints them
            _json_error(ctx, type(exc).__name__, exc.format_message(), exc.exit_code)
            raise
        except (click.exceptions.Exit, click.exceptions.Abort):
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
    _json_error(ctx, type(exc).__name__, str(exc), exc.exit_code)
    click.echo(f"Error: {exc}", err=True)
    ctx.exit(exc.exit_code)


def _json_error(ctx: click.Context, kind: str, message: str, exit_code: int) -> None:
    """Under `--json`, one JSON object on stdout for a failed command, unless the command already printed its
    own (a FAIL verdict, a failed run): machines always get exactly one object."""
    if _wants_json(ctx) and not ctx.meta.get(JSON_EMITTED):
        ctx.meta[JSON_EMITTED] = True
        click.echo(json.dumps({"error": {"type": kind, "message": message, "exit_code": exit_code}}, indent=2))


def _wants_json(ctx: click.Context) -> bool:
    """`--json` was parsed, or is on the command line of a command that has it (an error may come before
    the option is parsed: a bad value of another option, an invalid ADAPTERCI_* setting)."""
    if ctx.meta.get(JSON_REQUESTED):
        return True
    args = ctx.meta.get(_RAW_ARGS) or []
    args = args[:args.index("--")] if "--" in args else args
    if "--json" not in args:
        return False
    command, group, rest = None, ctx.command, list(args)
    while isinstance(group, click.Group):  # the (sub)command the arguments name
        name = next((a for a in rest if not a.startswith("-")), None)
        command = group.get_command(ctx, name) if name else None
        if command is None:
            return False
        rest = rest[rest.index(name) + 1:]
        group = command
    return any(p.name == "as_json" for p in command.params) if command is not None else False


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
