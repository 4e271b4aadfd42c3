"""Canary analysis: request logs of canary vs stable -> PROMOTE / ROLLBACK / CONTINUE (docs/canary.md).

`from adapterci.canary import analyze` loads the analysis lazily: the config imports `adapterci.canary.config`."""

from __future__ import annotations

__all__ = ["CanaryDecision", "analyze", "act"]


def __getattr__(name: str):
    if name in __all__:
        import importlib

        module = importlib.import_module("adapterci.canary.analysis")

        return getattr(module, name)
    raise AttributeError(name)
