"""Registries of released adapters: `file://PATH` (local, the default) and `hf://OWNER/NAME` (the Hub)."""

from __future__ import annotations

from pathlib import Path

from adapterci.errors import UsageError
from adapterci.registry.base import MOVING_REFS, Commit, RefConflict, Refs, Registry, Version
from adapterci.registry.hub import HubRegistry
from adapterci.registry.local import LocalRegistry

__all__ = ["MOVING_REFS", "Commit", "RefConflict", "Refs", "Registry", "Version", "open_registry"]


def open_registry(url_or_cfg) -> Registry:
    """The registry of a config (its `registry` URL, relative paths resolved) or of a `file://`/`hf://` URL."""
    url = url_or_cfg if isinstance(url_or_cfg, str) else url_or_cfg.registry_location()
    if url.startswith("file://") and len(url) > len("file://"):
        return LocalRegistry(Path(url[len("file://"):]).resolve())
    if url.startswith("hf://") and url.count("/") == 3 and all(url[5:].split("/")):
        return HubRegistry(url[len("hf://"):])

    raise UsageError(f"registry {url!r}: must be `file://PATH` or `hf://OWNER/NAME`")
