"""`adapterci hub-emulator`: serve the local Hub emulator for dry runs of `hf://` registries."""

from __future__ import annotations

import click

from adapterci import settings
from adapterci.errors import UsageError
from adapterci.hub_emulator import HubEmulator


@click.command(name="hub-emulator")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, type=int, help="Port (0: any free port).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Keep repos here across restarts (default: in memory).")
@click.option("--token", envvar=[settings.EMULATOR_TOKEN, "HF_TOKEN"], default=None, show_envvar=True,
              help="The one token the emulator accepts (default: $ADAPTERCI_EMULATOR_TOKEN, then $HF_TOKEN).")
@click.option("--user", default="tester", show_default=True, help="The user name the token belongs to.")
def hub_emulator(host: str, port: int, data_dir: str | None, token: str | None, user: str) -> None:
    """Serve an emulator of the Hugging Face Hub API (repos, commits, tags, branches, downloads).

    \b
    HF_TOKEN=hf_dev adapterci hub-emulator --port 8765 --data-dir .adapterci/hub &
    HF_ENDPOINT=http://127.0.0.1:8765 HF_TOKEN=hf_dev ADAPTERCI_REGISTRY=hf://tester/sentiment adapterci release
    """
    import signal
    from pathlib import Path

    if not token:
        raise UsageError("the emulator needs a token to accept: pass --token or set ADAPTERCI_EMULATOR_TOKEN or HF_TOKEN")
    # A shell starts background jobs with SIGINT ignored, and Python keeps it so: stop on SIGINT and SIGTERM always.
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, signal.default_int_handler)
    emulator = HubEmulator(token=token, user=user, host=host, port=port, data_dir=Path(data_dir) if data_dir else None)
    click.echo(f"Hub emulator serving {emulator.url} as user {user!r} (Ctrl-C stops it); "
               f"set HF_ENDPOINT={emulator.url} before starting the client.", err=True)
    try:
        emulator.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
