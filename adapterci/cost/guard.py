"""`cost.max_per_run`: before training, the estimated cost (training tokens x epochs at the throughput last
measured on this runner for the same base model, device and precision); during training, a callback that stops
cleanly once the elapsed cost passes the cap. The train stage then fails with the reason: no adapter, nothing
released, the report still written."""

from __future__ import annotations

import time
from typing import Any, Callable

from adapterci.fingerprint import hash_json
from adapterci.fsio import read_json, write_json_atomic
from adapterci.modelio import base_model_identity
from adapterci.runs import cache_dir


def _throughput_file(cfg, device: str, precision: str, backend: str):
    key = hash_json({"base": base_model_identity(cfg), "device": device, "precision": precision, "backend": backend,
                     "lora": cfg.train.lora.model_dump(mode="json"), "quantization": cfg.train.quantization})
    return cache_dir(cfg, "throughput") / f"{key}.json"


def last_throughput(cfg, device: str, precision: str, backend: str) -> float | None:
    """Tokens per second of the last training of this setup on this runner (None before the first)."""
    try:
        value = read_json(_throughput_file(cfg, device, precision, backend))["tokens_per_s"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def record_throughput(cfg, device: str, precision: str, backend: str, tokens_per_s: float) -> None:
    """Keep this training's throughput for the next estimate, when the project prices its runs."""
    if cfg.cost.hourly_rate is not None and tokens_per_s > 0:
        write_json_atomic(_throughput_file(cfg, device, precision, backend), {"tokens_per_s": tokens_per_s})


def estimate_line(cfg, tokens: int, throughput: float | None) -> str:
    """What this training will cost, as one log line."""
    cost, epochs = cfg.cost, cfg.train.epochs
    head = f"train: cost estimate: {tokens:,} tokens x {epochs:g} epochs"
    cap = f" (cap {cost.max_per_run:g} {cost.currency})" if cost.max_per_run else ""
    if throughput is None:
        return f"{head}; no throughput measured on this runner yet{cap}"
    seconds = tokens * epochs / throughput
    price = seconds / 3600 * cost.hourly_rate
    over = " — more than the cap: training will stop there" if cost.max_per_run and price > cost.max_per_run else ""
    return f"{head} at {throughput:,.0f} tokens/s ~ {seconds:,.0f} s ~ {price:.4g} {cost.currency}{cap}{over}"


def cost_guard(cfg, started: float, clock: Callable[[], float] = time.monotonic) -> Any:
    """A TrainerCallback that stops training once `(clock() - started)` at `cost.hourly_rate` passes
    `cost.max_per_run`; its `reason` is set when it did."""
    from transformers import TrainerCallback

    cost = cfg.cost

    class CostGuard(TrainerCallback):
        reason: str | None = None

        def on_step_end(self, args, state, control, **kwargs):
            elapsed = clock() - started
            spent = elapsed / 3600 * cost.hourly_rate
            if _any_rank(spent > cost.max_per_run, args.device):  # every process stops at the same step
                control.should_training_stop = True
                control.should_save = False
                self.reason = (f"training stopped at step {state.global_step}/{state.max_steps}: its cost "
                               f"{spent:.4g} {cost.currency} ({elapsed:.0f} s at {cost.hourly_rate:g} "
                               f"{cost.currency}/h) passed `cost.max_per_run` ({cost.max_per_run:g} {cost.currency})")

    return CostGuard()


def _any_rank(flag: bool, device) -> bool:
    """`flag` on any process of a distributed run (itself when there is one process)."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return flag
    value = torch.tensor([int(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())
