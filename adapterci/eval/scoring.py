"""Scoring a model on prompts: log-likelihood of allowed answers (`choices`) and batched greedy generation
(`generate`). Both are deterministic (greedy, eval mode, no dropout) and run one forward pass per batch.

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
    `batch_size` prompts (times len(choices) sequences) per forward pass."""
    import torch

    eos = tokenizer.eos_token or ""
    out: list[list[tuple[float, int]]] = []
    for start in range(0, len(prompts), batch_size):
        batch = prompts[start:start + batch_size]
        prompt_ids = tokenizer(list(batch))["input_ids"]
        texts = [p + c + eos for p in batch for c in choices]
        full_ids = tokenizer(texts)["input_ids"]
        spans = [completion_start(prompt_ids[i // len(choices)], ids) for i, ids in enumerate(full_ids)]
        width = max(len(ids) for ids in full_ids)
        pad = tokenizer.pad_token_id
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids in full_ids])
        mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in full_ids])
        with torch.inference_mode():
            logits = model(input_ids=input_ids.to(model.device), attention_mask=mask.to(model.device)).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, input_ids[:, 1:, None].to(logits.device))[..., 0]
        scores = []
        for row, (ids, s) in enumerate(zip(full_ids, spans)):
            # token t is predicted at position t-1; the answer's tokens are ids[s:]
            scores.append((float(logp[row, s - 1:len(ids) - 1].sum()), len(ids) - s))
        out += [scores[i:i + len(choices)] for i in range(0, len(scores), len(choices))]
        tick(len(batch))
    return out


def generate(model: Any, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int, batch_size: int,
             tick: Tick = lambda n: None) -> list[str]:
    """Greedy answers, `batch_size` prompts per call, LEFT-padded; each stops at eos or `max_new_tokens`."""
    import torch

    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    answers: list[str] = []
    try:
        for start in range(0, len(prompts), batch_size):
            batch = list(prompts[start:start + batch_size])
            enc = tokenizer(batch, return_tensors="pt", padding=True).to(model.device)
            with torch.inference_mode():
                out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                                     eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
            new = out[:, enc["input_ids"].shape[1]:]
            answers += [text.strip() for text in tokenizer.batch_decode(new, skip_special_tokens=True)]
            tick(len(batch))
    finally:
        tokenizer.padding_side = side
    return answers
