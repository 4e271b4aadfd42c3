"""The training loss with logits built only where a token is scored.

With a completion-only loss most positions of a row are prompt: computing the output head (vocabulary x hidden)
and its softmax there is wasted work, on CPU about 40% of a step for a small model with a large vocabulary. The
model is asked for logits only at the positions whose next token has a label (`logits_to_keep` with an index
tensor: the union over the batch), through its own forward, so PEFT, accelerate and DDP see a normal call."""

from __future__ import annotations

from typing import Any

from adapterci.train.data import IGNORE


def scored_logits(model: Any, inputs: dict[str, Any]) -> tuple[Any, Any]:
    """The logits (B, K, vocab) at the K positions whose next token some row of the batch scores, and those
    next tokens (B, K; IGNORE where that row scores none)."""
    targets = inputs["labels"][:, 1:]
    keep = (targets != IGNORE).any(dim=0).nonzero().flatten()
    model_inputs = {k: v for k, v in inputs.items() if k != "labels"}
    logits = model(**model_inputs, use_cache=False, logits_to_keep=keep).logits
    return logits.float(), targets[:, keep]


def scored_positions_loss(model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> Any:
    """Summed next-token cross-entropy over the labelled tokens, divided by `num_items_in_batch` (the labelled
    tokens of the whole accumulated batch, as transformers counts them) or by this batch's labelled tokens."""
    import torch
    import torch.nn.functional as F

    logits, kept = scored_logits(model, inputs)
    loss = F.cross_entropy(logits.flatten(0, 1), kept.flatten(), ignore_index=IGNORE, reduction="sum")
    count = (kept != IGNORE).sum() if num_items_in_batch is None else num_items_in_batch
    return loss / torch.as_tensor(count, device=loss.device).clamp(min=1)


def trainer_class():
    """TRL's SFTTrainer with `scored_positions_loss` (its own outputs are still computed when asked for)."""
    from trl import SFTTrainer

    class ScoredPositionsSFTTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if return_outputs:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            loss = scored_positions_loss(model, inputs, num_items_in_batch)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes  # like Trainer: DDP averages gradients across ranks
            return loss

    return ScoredPositionsSFTTrainer
