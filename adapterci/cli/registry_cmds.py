"""`adapterci release | promote | rollback | versions`: thin shells over adapterci.release and the registry."""

from __future__ import annotations

import click

from adapterci import settings
from adapterci.cli.common import config_option, emit_json, json_option, run_dir_option
from adapterci.config import load_config
from adapterci.errors import UsageError
from adapterci.registry import open_registry
from adapterci.release import promote as promote_ref
from adapterci.release import release as release_adapter
from adapterci.release import rollback as rollback_ref
from adapterci.runs import run_dir_for


@click.command(name="release")
@config_option
@click.option("--adapter", "adapter_dir", type=click.Path(file_okay=False), default=None,
              help="The PEFT adapter directory (default: the run directory's adapter/).")
@click.option("--bump", type=click.Choice(["major", "minor", "patch"]), default="patch", show_default=True,
              help="Which part of the version to increase.")
@click.option("--unverified", is_flag=True,
              help="Release without a gate verdict that vouches for the adapter (a person's explicit choice).")
@run_dir_option
@json_option
def release(config_path: str, adapter_dir: str | None, bump: str, unverified: bool, run_dir: str | None,
            as_json: bool) -> None:
    """Release an adapter as the next version and move `canary` to it.

    The run's gate verdict must be PASS, written by a trusted run (not a pull request's), for exactly these
    adapter files and this config's policy; the verdict is recomputed from the eval results.

    \b
    adapterci release                          # the adapter of the last run
    adapterci release --run-dir .adapterci/run --bump minor --json
    adapterci release --adapter out/adapter --unverified
    """
    cfg = load_config(config_path)
    rd = run_dir_for(cfg, run_dir) if run_dir or not adapter_dir else None
    result = release_adapter(cfg, adapter_dir or rd.adapter, run_dir=rd, bump=bump,  # type: ignore[union-attr]
                             verified=not unverified)
    if as_json:
        emit_json(result.as_dict())
    elif result.no_op:
        click.echo(f"Already released as {result.version} (commit {result.commit[:12]}) in {result.registry}: nothing to do.")
    else:
        verb = "Finished releasing" if result.finished else "Released"
        click.echo(f"{verb} {result.version} (commit {result.commit[:12]}) to {result.registry}; "
                   f"refs: {', '.join(result.refs)}.")


@click.command(name="promote")
@click.argument("version", required=False)
@click.option("--canary", "expected", metavar="VERSION|COMMIT", default=None,
              help="The canary you analyzed: refuse, moving nothing, when `canary` no longer points at it. "
                   "In CI, promote needs VERSION or --canary.")
@config_option
@json_option
def promote(version: str | None, expected: str | None, config_path: str, as_json: bool) -> None:
    """Move `stable` to the canary (or to VERSION).

    \b
    adapterci promote --canary v0.3.1          # the canary, only while it is still v0.3.1
    adapterci promote v0.3.1
    adapterci promote                          # whatever the canary is now (not in CI)
    """
    if version is None and expected is None and settings.current().in_ci:
        raise UsageError("in CI, name what you promote: `adapterci promote --canary VERSION` (the canary version you "
                         "analyzed) or `adapterci promote VERSION`, so that a release made while the job waited for "
                         "approval is never promoted unseen")
    _show_move(promote_ref(load_config(config_path), version, canary=expected), as_json)


@click.command(name="rollback")
@config_option
@json_option
def rollback(config_path: str, as_json: bool) -> None:
    """Move `stable` back to the previous stable version.

    \b
    adapterci rollback --json
    """
    _show_move(rollback_ref(load_config(config_path)), as_json)


@click.command(name="versions")
@config_option
@json_option
def versions(config_path: str, as_json: bool) -> None:
    """List released versions (newest first) with their commit, date, metrics and refs.

    \b
    adapterci versions --json
    """
    cfg = load_config(config_path)
    registry = open_registry(cfg)
    found = registry.versions()
    if as_json:
        emit_json({"registry": registry.url, "versions": [v.as_dict() for v in found]})
        return
    if not found:
        click.echo(f"No versions in {registry.url} yet: run `adapterci release`.")
        return
    click.echo(f"{registry.url}")
    for v in found:
        metrics = ", ".join(f"{suite}.{name}={'-' if value is None else f'{value:.3f}'}"
                            for suite, values in sorted(v.manifest["metrics"].items())
                            for name, value in sorted(values.items()))
        refs = f" [{', '.join(v.refs)}]" if v.refs else ""
        click.echo(f"{v.version:<10} {v.commit[:12]}  {(v.date or '')[:19]:<19}  "
                   f"gate={v.manifest['gate_verdict'] or '-'}{refs}" + (f"  {metrics}" if metrics else ""))


def _show_move(move, as_json: bool) -> None:
    if as_json:
        emit_json(move.as_dict())
        return
    target = move.version or move.commit[:12]
    if move.no_op:
        click.echo(f"`stable` already points at {target}: nothing to do.")
    else:
        click.echo(f"`stable` -> {target} (was {move.previous or 'unset'}) in {move.registry}.")
