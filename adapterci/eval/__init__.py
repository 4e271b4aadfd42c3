"""Evaluation of base, champion and candidate on the configured suites.

`from adapterci.eval import evaluate, EvalResults` loads lazily: the config imports `adapterci.eval.config`."""

from __future__ import annotations

__all__ = ["EvalResults", "evaluate"]


def __getattr__(name: str):
    if name == "evaluate":
        from adapterci.eval.stage import evaluate

        return evaluate
    if name == "EvalResults":
        from adapterci.eval.results import EvalResults

        return EvalResults
    raise AttributeError(name)
