"""Scoring a model on prompts: log-likelihood of allowed answers (`choices`) and batched greedy generation
(`generate`). Both are deterministic (greedy, eval mode, no dropout) and batch prompts of similar length.

Answers are tokenized exactly as training tokenizes them: prompt + answer + eos as one text, with the prompt's
tokens as the prefix (so a choice is scored on the very tokens the adapter learned, eos included)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from adapterci.console import is_terminal
from adapterci.prompting import completion_start

Tick = Callable[[int], None]


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(cfg, adapter: Path | None, seed: int) -> Any:
    """The base model, with `adapter` (a PEFT adapter directory) applied when given; in eval mode."""
    import torch
    from transformers.utils import logging as hf_logging

    from adapterci.modelio import load_base_model

    if not is_terminal():  # no "Loading weights" bars in CI logs
        hf_logging.disable_progress_bar()
    torch.manual_seed(seed)
    model = load_base_model(cfg, device=device())
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter)).eval()
    return model


def choice_logprobs(model: Any, tokenizer: Any, prompts: Sequence[str], choices: Sequence[str], batch_size: int,
                    tick: Tick = lambda n: None) -> list[list[tuple[float, int]]]:
    """For each prompt, (sum of log-probabilities, number of tokens) of every choice followed by eos.

    `batch_size` prompts per pass. The tokens a prompt's choices share run once (their KV cache is repeated for
    each choice), and the vocabulary log-softmax is taken only where a choice token is predicted."""
    eos = tokenizer.eos_token or ""
    n = len(choices)
    prompt_ids = tokenizer(list(prompts))["input_ids"]
    full_ids = tokenizer([p + c + eos for p in prompts for c in choices])["input_ids"]
    seqs = [full_ids[i * n:(i + 1) * n] for i in range(len(prompts))]
    starts = [[completion_start(prompt_ids[i], ids) for ids in seqs[i]] for i in range(len(prompts))]
    # the prefix all choices share and none scores (a tokenizer may merge the prompt's end with a choice)
    shared = [max(1, min(*starts[i], *(completion_start(seqs[i][0], ids) for ids in seqs[i])))
              for i in range(len(prompts))]
    order = sorted(range(len(prompts)), key=lambda i: shared[i])  # similar lengths per batch: less padding
    out: list[list[tuple[float, int]]] = [[] for _ in prompts]
    for b in range(0, len(order), batch_size):
        batch = order[b:b + batch_size]
        scored = _score_batch(model, [seqs[i] for i in batch], [starts[i] for i in batch],
                              [shared[i] for i in batch], tokenizer.pad_token_id)
        for i, scores in zip(batch, scored):
            out[i] = scores
        tick(len(batch))
    return out


def _score_batch(model: Any, seqs: list[list[list[int]]], starts: list[list[int]], shared: list[int],
                 pad: int) -> list[list[tuple[float, int]]]:
    """Two passes: the shared prefixes (left-padded, so each ends in the last column, whose logits predict the
    first unshared token), then every choice's remaining tokens (right-padded) on the prefix's repeated cache."""
    import torch

    n, dev = len(seqs[0]), model.device
    width = max(shared)
    prefix = torch.full((len(seqs), width), pad)
    prefix_mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, (choice_ids, k) in enumerate(zip(seqs, shared)):
        prefix[row, width - k:] = torch.tensor(choice_ids[0][:k])
        prefix_mask[row, width - k:] = 1
    tails = [ids[k:] for choice_ids, k in zip(seqs, shared) for ids in choice_ids]
    tail_width = max(len(t) for t in tails)
    tail = torch.full((len(tails), tail_width), pad)
    tail_mask = torch.zeros((len(tails), tail_width), dtype=torch.long)
    for row, ids in enumerate(tails):
        tail[row, :len(ids)] = torch.tensor(ids)
        tail_mask[row, :len(ids)] = 1
    with torch.inference_mode():
        first = model(input_ids=prefix.to(dev), attention_mask=prefix_mask.to(dev),
                      position_ids=(prefix_mask.cumsum(-1) - 1).clamp(min=0).to(dev), use_cache=True,
                      logits_to_keep=1)
        cache = first.cache if "cache" in first else first.past_key_values
        cache.batch_repeat_interleave(n)
        first_lp = torch.log_softmax(first.logits[:, -1].float(), dim=-1).repeat_interleave(n, dim=0)
        positions = torch.tensor(shared).repeat_interleave(n)[:, None] + torch.arange(tail_width)
        logits = model(input_ids=tail.to(dev), attention_mask=torch.cat([prefix_mask.repeat_interleave(n, 0),
                                                                          tail_mask], dim=1).to(dev),
                       position_ids=positions.to(dev), use_cache=True, **{_cache_arg(model): cache}).logits
        tail_lp = torch.log_softmax(logits.float(), dim=-1)
    scores = []
    for row, ids in enumerate(tails):
        i, c = divmod(row, n)
        full, k, s = seqs[i][c], shared[i], max(starts[i][c], shared[i])
        # token t of the full sequence is predicted at position t-1: the prefix's last one when t == k
        total = sum(float(first_lp[row, full[t]] if t == k else tail_lp[row, t - 1 - k, full[t]])
                    for t in range(s, len(full)))
        scores.append((total, len(full) - s))
    return [scores[i:i + n] for i in range(0, len(scores), n)]


def _cache_arg(model: Any) -> str:
    """The forward argument taking a KV cache: `cache` in newer transformers 5 releases, `past_key_values` before
    (unsloth caps transformers lower)."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def generate(model: Any, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int, batch_size: int,
             tick: Tick = lambda n: None) -> list[str]:
    """Greedy answers, `batch_size` prompts per call, LEFT-padded; each stops at eos or `max_new_tokens`."""
    import torch

    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    lengths = [len(ids) for ids in tokenizer(list(prompts))["input_ids"]]
    order = sorted(range(len(prompts)), key=lambda i: lengths[i])  # similar lengths per batch: less padding
    answers: list[str] = [""] * len(prompts)
    try:
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            enc = tokenizer([prompts[i] for i in batch], return_tensors="pt", padding=True).to(model.device)
            with torch.inference_mode():
                out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                                     eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
            new = out[:, enc["input_ids"].shape[1]:]
            for i, text in zip(batch, tokenizer.batch_decode(new, skip_special_tokens=True)):
                answers[i] = text.strip()
            tick(len(batch))
    finally:
        tokenizer.padding_side = side
    return answers
