"""Training rows: prompt (rendered by the one PromptFormat) + completion + eos, tokenized, with the
`max_length` policy applied and the loss mask built (prompt tokens get label -100)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from adapterci.data.formats import Example
from adapterci.errors import StageFailed
from adapterci.prompting import completion_start, render_rows

IGNORE = -100


@dataclass
class Tokenized:
    rows: list[dict[str, list[int]]]
    dropped: list[str]  # "file:line (N tokens)" of rows dropped as too long
    truncated: int

    @property
    def tokens(self) -> int:
        return sum(len(r["input_ids"]) for r in self.rows)


def tokenize_examples(examples: Sequence[Example], prompt_format, tokenizer: Any, max_length: int,
                      overlength: str, completion_only: bool) -> Tokenized:
    """Tokenize examples as TRL does for prompt/completion text (the prompt's tokens are a prefix)."""
    out = Tokenized([], [], 0)
    prompts = render_rows(prompt_format.render, examples)
    prompt_ids = tokenizer(prompts)["input_ids"] if prompts else []
    full_ids = tokenizer([p + ex.completion + tokenizer.eos_token for p, ex in zip(prompts, examples)])["input_ids"] \
        if prompts else []
    for ex, p_ids, ids in zip(examples, prompt_ids, full_ids):
        start = completion_start(p_ids, ids)
        labels = ([IGNORE] * start + ids[start:]) if completion_only else list(ids)
        if len(ids) > max_length:
            where = f"{ex.source.file}:{ex.source.line}"
            if overlength == "error":
                raise StageFailed("train", f"{where}: row is {len(ids)} tokens, longer than `train.max_length` "
                                           f"({max_length}); set `train.overlength: drop` or `truncate`")
            if overlength == "drop" or start >= max_length:
                out.dropped.append(f"{where} ({len(ids)} tokens)")
                continue
            ids, labels = ids[:max_length], labels[:max_length]
            out.truncated += 1
        out.rows.append({"input_ids": ids, "labels": labels})
    return out




@dataclass
class Pairs:
    """Preference pairs as TRL's DPO/ORPO trainers take them: the rendered prompt and both answers (plain text,
    so the trainer tokenizes prompt + answer + eos exactly as evaluation scores it)."""

    rows: list[dict[str, str]]
    dropped: list[str]
    truncated: int
    tokens: int  # prompt + chosen plus prompt + rejected, over the rows kept


def preference_rows(examples: Sequence[Example], prompt_format, tokenizer: Any, max_length: int,
                    overlength: str) -> Pairs:
    """The pairs with the `max_length` policy applied to their longer side (`truncate` leaves the cut to the
    trainer, which keeps the start of each sequence; a prompt that fills `max_length` alone is dropped)."""
    out = Pairs([], [], 0, 0)
    prompts = render_rows(prompt_format.render, examples)
    if not prompts:
        return out
    eos = tokenizer.eos_token
    prompt_len = [len(ids) for ids in tokenizer(prompts)["input_ids"]]
    sides = tokenizer([p + a + eos for p, ex in zip(prompts, examples) for a in (ex.completion, ex.rejected)])
    lengths = [len(ids) for ids in sides["input_ids"]]
    for i, (ex, prompt) in enumerate(zip(examples, prompts)):
        chosen, rejected = lengths[2 * i], lengths[2 * i + 1]
        longest = max(chosen, rejected)
        if longest > max_length:
            where = f"{ex.source.file}:{ex.source.line}"
            if overlength == "error":
                raise StageFailed("train", f"{where}: pair is {longest} tokens (prompt + longer answer), longer than "
                                           f"`train.max_length` ({max_length}); set `train.overlength: drop` or "
                                           "`truncate`")
            if overlength == "drop" or prompt_len[i] >= max_length:
                out.dropped.append(f"{where} ({longest} tokens)")
                continue
            out.truncated += 1
        out.rows.append({"prompt": prompt, "chosen": ex.completion, "rejected": ex.rejected})
        out.tokens += min(chosen, max_length) + min(rejected, max_length)
    return out
