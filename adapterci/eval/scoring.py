"""Scoring a model on prompts: log-likelihood of allowed answers (`choices`) and batched greedy generation
(`generate`). Both are deterministic (greedy, eval mode, no dropout) and batch prompts of similar length.

Answers are tokenized exactly as training tokenizes them: prompt + answer + eos as one text, with the prompt's
tokens as the prefix (so a choice is scored on the very tokens the adapter learned, eos included)."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from adapterci.console import is_terminal
from adapterci.modelio import load_base_model
from adapterci.prompting import completion_start

Tick = Callable[[int], None]


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(cfg, adapter: Path | None, seed: int) -> Any:
    """The base model, with `adapter` (a PEFT adapter directory) applied when given; in eval mode."""
    import torch
    from transformers.utils import logging as hf_logging

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

    `batch_size` prompts per pass. The tokens all prompts share (a system prompt, few-shot examples) run once
    for the whole call (their KV cache is copied into each batch), the rest of a prompt once for all its choices
    (see `_score_batch`), and the vocabulary log-softmax is taken only where a choice token is predicted."""
    return answer_logprobs(model, tokenizer, prompts, [choices] * len(prompts), batch_size, tick)


def answer_logprobs(model: Any, tokenizer: Any, prompts: Sequence[str], answers: Sequence[Sequence[str]],
                    batch_size: int, tick: Tick = lambda n: None) -> list[list[tuple[float, int]]]:
    """`choice_logprobs` with each prompt's own answers (`answers[i]` for `prompts[i]`, the same number for
    every prompt): e.g. the chosen and the rejected answer of a preference pair."""
    eos = tokenizer.eos_token or ""
    n = len(answers[0]) if answers else 0
    prompt_ids = tokenizer(list(prompts))["input_ids"]
    full_ids = tokenizer([p + c + eos for p, options in zip(prompts, answers) for c in options])["input_ids"]
    seqs = [full_ids[i * n:(i + 1) * n] for i in range(len(prompts))]
    starts = [[completion_start(prompt_ids[i], ids) for ids in seqs[i]] for i in range(len(prompts))]
    # the prefix all choices share and none scores (a tokenizer may merge the prompt's end with a choice)
    shared = [max(1, min(*starts[i], *(completion_start(seqs[i][0], ids) for ids in seqs[i])))
              for i in range(len(prompts))]
    common = _common_prefix(model, [s[0] for s in seqs], min(shared) - 1)
    order = sorted(range(len(prompts)), key=lambda i: shared[i])  # similar lengths per batch: less padding
    out: list[list[tuple[float, int]]] = [[] for _ in prompts]
    with _grouped_query_attention(model):
        for b in range(0, len(order), batch_size):
            batch = order[b:b + batch_size]
            scored = _score_batch(model, [seqs[i] for i in batch], [starts[i] for i in batch],
                                  [shared[i] for i in batch], tokenizer.pad_token_id, common)
            for i, scores in zip(batch, scored):
                out[i] = scores
            tick(len(batch))
    return out


@contextmanager
def _grouped_query_attention(model: Any) -> Iterator[None]:
    """On CPU, let SDPA attend with grouped-query heads under a padding mask instead of copying every key and
    value head (transformers turns that off whenever there is a mask, for CUDA kernels' sake; torch's CPU kernel
    takes it with the same results): with a long shared prefix those copies were 40% of scoring time."""
    if model.device.type != "cpu" or FORCE_GQA in os.environ:
        yield
        return
    os.environ[FORCE_GQA] = "1"
    try:
        yield
    finally:
        os.environ.pop(FORCE_GQA, None)


FORCE_GQA = "TRANSFORMERS_SDPA_FORCE_GQA"


MIN_COMMON = 8
"""Fewest shared leading tokens worth a cached forward pass of their own."""


class _Common:
    """The leading tokens every sequence of a call shares, with their KV cache (one row), computed once."""

    def __init__(self, model: Any, ids: list[int]):
        import torch

        self.length = len(ids)
        with torch.inference_mode():
            out = model(input_ids=torch.tensor([ids], device=model.device), use_cache=True, logits_to_keep=1)
        self.cache = out.cache if "cache" in out else out.past_key_values

    def expand(self, rows: int) -> Any:
        """A copy of the cache for `rows` sequences (forward passes append to the cache they are given)."""
        import copy

        cache = copy.deepcopy(self.cache)
        cache.batch_repeat_interleave(rows)
        return cache


def _common_prefix(model: Any, seqs: Sequence[Sequence[int]], limit: int) -> _Common | None:
    """The shared leading tokens of `seqs` (at most `limit`), run once; None when there are too few."""
    length = min(completion_start(seqs[0], s) for s in seqs) if len(seqs) > 1 else 0
    length = min(length, limit)
    return _Common(model, list(seqs[0][:length])) if length >= MIN_COMMON else None


def _score_batch(model: Any, seqs: list[list[list[int]]], starts: list[list[int]], shared: list[int],
                 pad: int, common: _Common | None) -> list[list[tuple[float, int]]]:
    """One pass per batch: each row holds a prompt's unshared prefix (after the call's `common` tokens,
    left-padded, so it ends in the last column before the choices) followed by every choice's remaining tokens,
    side by side; a 4-D attention mask lets each choice see the prefix and its own earlier tokens only (a tree
    of continuations), so the prefix's keys and values are computed and stored once per row, not once per
    choice. The prefix's last column predicts each choice's first unshared token."""
    import torch

    n, rows, dev = len(seqs[0]), len(seqs), model.device
    skip = common.length if common else 0
    width = max(shared) - skip
    tails = [[ids[k:] for ids in choice_ids] for choice_ids, k in zip(seqs, shared)]
    tail_width = max(len(t) for row in tails for t in row)
    length = width + n * tail_width
    tokens = torch.full((rows, length), pad)
    positions = torch.zeros((rows, length), dtype=torch.long)
    real = torch.zeros((rows, length), dtype=torch.bool)
    group = torch.full((length,), -1)  # -1: the prefix; c: choice c's tokens
    for c in range(n):
        group[width + c * tail_width: width + (c + 1) * tail_width] = c
    for row, (choice_ids, k) in enumerate(zip(seqs, shared)):
        start = width - (k - skip)
        tokens[row, start:width] = torch.tensor(choice_ids[0][skip:k])
        positions[row, start:width] = torch.arange(skip, k)
        real[row, start:width] = True
        for c, tail in enumerate(tails[row]):
            at = width + c * tail_width
            tokens[row, at:at + len(tail)] = torch.tensor(tail)
            positions[row, at:at + len(tail)] = torch.arange(k, k + len(tail))
            real[row, at:at + len(tail)] = True
    order = torch.arange(length)
    causal = order[None, :] <= order[:, None]
    same_branch = (group[None, :] == -1) | (group[None, :] == group[:, None])
    mask = causal & same_branch & real[:, None, :] | torch.eye(length, dtype=torch.bool)  # padding sees itself
    mask = torch.cat([torch.ones((rows, length, skip), dtype=torch.bool), mask], dim=2)[:, None]
    past = {_cache_arg(model): common.expand(rows)} if common else {}
    with torch.inference_mode():
        logits = model(input_ids=tokens.to(dev), attention_mask=mask.to(dev), position_ids=positions.to(dev),
                       use_cache=bool(common), logits_to_keep=length - width + 1, **past).logits
        logp = torch.log_softmax(logits.float(), dim=-1)  # column 0: the prefix's last; then every choice token
    scores = []
    for row, (choice_ids, k) in enumerate(zip(seqs, shared)):
        for c, full in enumerate(choice_ids):
            s = max(starts[row][c], k)
            # token t of the full sequence is predicted at position t-1: the prefix's last one when t == k
            total = sum(float(logp[row, 0 if t == k else 1 + c * tail_width + (t - 1 - k), full[t]])
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
    """Greedy answers, `batch_size` prompts per call, LEFT-padded after the tokens all prompts share (which run
    once, see `choice_logprobs`); each stops at eos or `max_new_tokens`."""
    import torch

    ids = tokenizer(list(prompts))["input_ids"]
    common = _common_prefix(model, ids, min(len(x) for x in ids) - 1)
    skip = common.length if common else 0
    order = sorted(range(len(prompts)), key=lambda i: len(ids[i]))  # similar lengths per batch: less padding
    answers: list[str] = [""] * len(prompts)
    with _grouped_query_attention(model):
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            width = max(len(ids[i]) for i in batch) - skip
            input_ids = torch.full((len(batch), skip + width), tokenizer.pad_token_id)
            mask = torch.zeros((len(batch), skip + width), dtype=torch.long)
            for row, i in enumerate(batch):
                input_ids[row, :skip], mask[row, :skip] = torch.tensor(ids[i][:skip]), 1
                input_ids[row, 2 * skip + width - len(ids[i]):] = torch.tensor(ids[i][skip:])
                mask[row, 2 * skip + width - len(ids[i]):] = 1
            past = {_cache_arg(model): common.expand(len(batch))} if common else {}
            with torch.inference_mode():
                out = model.generate(input_ids=input_ids.to(model.device), attention_mask=mask.to(model.device),
                                     max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                                     eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **past)
            new = out[:, input_ids.shape[1]:]
            for i, text in zip(batch, tokenizer.batch_decode(new, skip_special_tokens=True)):
                answers[i] = text.strip()
            tick(len(batch))
    return answers
