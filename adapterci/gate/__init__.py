"""The gate: apply the release policy (`gate.rules`) to eval results. See docs/gate.md.

`from adapterci.gate import decide` loads the decision code lazily: the config imports `adapterci.gate.config`."""

from __future__ import annotations

__all__ = ["GateDecision", "RuleResult", "decide"]


def __getattr__(name: str):
    if name in __all__:
        import importlib

        module = importlib.import_module("adapterci.gate.policy")

        return getattr(module, name)
    raise AttributeError(name)
