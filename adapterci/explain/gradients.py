"""LoRA gradient features (as in LESS, Xia et al. 2024): the per-example gradient of a sequence's loss with
respect to the adapter's LoRA matrices, projected to `dim` dimensions by a fixed random projection.

Per-example gradients come from one batched forward and backward pass: hooks on every `lora_A` / `lora_B`
linear layer keep its input x (B, T, in) and the gradient of its output g (B, T, out), and the gradient of
example b is sum_t g[b, t] x[b, t]^T. The loss of each example is the mean over its completion tokens, exactly
as training computes it (same prompt format, prompt tokens masked). The projection is a sparse random sign
projection (a count sketch: every gradient coordinate is added, with a random sign, to one of `dim` buckets),
so it needs no dense (parameters x dim) matrix and preserves inner products in expectation."""

from __future__ import annotations

from typing import Any, Sequence

from adapterci.train.data import IGNORE
from adapterci.train.loss import scored_logits


def lora_linears(model) -> list[tuple[str, Any]]:
    """(name, module) of every LoRA A and B linear layer of a PEFT model, in a fixed order."""
    import torch

    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and (".lora_A." in f".{name}." or ".lora_B." in f".{name}.")]


class Projector:
    """The count sketch of the concatenated LoRA gradients: for each layer a bucket and a sign per weight."""

    def __init__(self, layers: list[tuple[str, Any]], dim: int, seed: int):
        import torch

        gen = torch.Generator().manual_seed(seed)
        self.dim = dim
        self.buckets, self.signs = [], []
        for _, module in layers:
            n = module.weight.numel()
            self.buckets.append(torch.randint(0, dim, (n,), generator=gen))
            self.signs.append(torch.randint(0, 2, (n,), generator=gen).float() * 2 - 1)

    def add(self, out, layer: int, grads) -> None:
        """Add the projection of per-example gradients `grads` (B, out, in) of `layer` into `out` (B, dim)."""
        flat = grads.reshape(grads.shape[0], -1) * self.signs[layer].to(grads.device)
        out.index_add_(1, self.buckets[layer].to(grads.device), flat)


def features(model, sequences: Sequence[dict[str, list[int]]], pad_id: int, dim: int = 8192, seed: int = 0,
             batch_size: int = 16, bf16: bool = False) -> Any:
    """The projected per-example LoRA gradients (numpy, N x dim) of tokenized `sequences` (each with
    `input_ids` and `labels`, -100 where no loss is taken). A sequence without loss tokens gets zeros.
    `bf16`: forward and backward under bf16 autocast (as training on such hardware); gradients are summed in fp32."""
    from contextlib import nullcontext

    import numpy as np
    import torch

    layers = lora_linears(model)
    if not layers:
        raise ValueError("the adapter has no LoRA layers")
    projector = Projector(layers, dim, seed)
    params = [m.weight for _, m in layers]
    saved = {p: p.requires_grad for p in model.parameters()}
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    captured: dict[int, list] = {}

    def hook(index: int):
        def forward(module, inputs, output):
            x = inputs[0].detach()

            def backward(grad):
                captured[index] = [x, grad.detach()]
            output.register_hook(backward)
        return forward

    handles = [m.register_forward_hook(hook(i)) for i, (_, m) in enumerate(layers)]
    out = np.zeros((len(sequences), dim), dtype=np.float32)
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]["input_ids"]))  # less padding
    device = params[0].device
    try:
        model.eval()
        for start in range(0, len(order), batch_size):
            batch = [sequences[i] for i in order[start:start + batch_size]]
            captured.clear()
            with torch.autocast(device.type, torch.bfloat16) if bf16 else nullcontext():
                loss = _batch_loss(model, batch, pad_id, device)
                if loss is None:
                    continue
                torch.autograd.grad(loss, params, allow_unused=True)
            feats = torch.zeros(len(batch), dim, device=device)
            for index, (x, g) in captured.items():
                projector.add(feats, index, torch.einsum("bto,bti->boi", g.float(), x.float()))
            out[order[start:start + batch_size]] = feats.cpu().numpy()
    finally:
        for h in handles:
            h.remove()
        for p, flag in saved.items():
            p.requires_grad_(flag)
    return out


def _batch_loss(model, batch: list[dict[str, list[int]]], pad_id: int, device):
    """Sum over the batch of each sequence's mean token loss (so each example's gradient is its own)."""
    import torch

    width = max(len(s["input_ids"]) for s in batch)
    ids = torch.tensor([s["input_ids"] + [pad_id] * (width - len(s["input_ids"])) for s in batch], device=device)
    labels = torch.tensor([s["labels"] + [IGNORE] * (width - len(s["labels"])) for s in batch], device=device)
    mask = torch.tensor([[1] * len(s["input_ids"]) + [0] * (width - len(s["input_ids"])) for s in batch],
                        device=device)
    counts = (labels[:, 1:] != IGNORE).sum(dim=1)
    if not bool((counts > 0).any()):
        return None
    logits, target = scored_logits(model, {"input_ids": ids, "attention_mask": mask, "labels": labels})
    token_loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target.clamp(min=0), reduction="none")
    token_loss = token_loss * (target != IGNORE)
    return (token_loss.sum(dim=1) / counts.clamp(min=1)).sum()
