"""The train stage: `train(cfg) -> TrainResult` and the adapter cache key `inputs_fingerprint(cfg)`.

Heavy libraries load only when these are called (the CLI imports this package for `--help`-free commands)."""

from __future__ import annotations

from typing import Any

__all__ = ["train", "TrainResult", "inputs_fingerprint"]


def __getattr__(name: str) -> Any:
    if name in ("train", "TrainResult"):
        from adapterci.train import run

        return getattr(run, name)
    if name == "inputs_fingerprint":
        from adapterci.train.provenance import inputs_fingerprint

        return inputs_fingerprint
    raise AttributeError(name)
