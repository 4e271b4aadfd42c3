"""Training progress: the tqdm bar in a terminal, plain periodic log lines elsewhere (CI logs)."""

from __future__ import annotations

import time
from typing import Callable


def log_lines_callback(log: Callable[[str], None]):
    """A TrainerCallback that writes one line per logging step (and per evaluation) on the main process."""
    from transformers import TrainerCallback

    class LogLines(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.start = time.monotonic()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs:
                return
            parts = [f"step {state.global_step}/{state.max_steps}", f"epoch {state.epoch or 0:.2f}"]
            parts += [f"{k} {v:.4f}" for k, v in logs.items() if k in ("loss", "eval_loss", "learning_rate")]
            parts.append(f"{time.monotonic() - getattr(self, 'start', time.monotonic()):.1f}s")
            log("train: " + "  ".join(parts))

    return LogLines()
