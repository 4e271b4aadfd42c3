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


