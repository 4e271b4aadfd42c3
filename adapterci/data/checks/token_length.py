"""Token length with the base model's tokenizer, rendered exactly as training renders a row:
the prompt (`PromptFormat`) + the answer + eos, against `checks.max_tokens` (default `train.max_length`); a
preference pair counts as its longer side (prompt + chosen, prompt + rejected: TRL trains on both).

A token covers at least one byte of text, so a row whose UTF-8 size plus the tokens the tokenizer adds
(bos, a prefix space) fits the limit cannot exceed it and is not tokenized. That bound is used only for
tokenizers without a text normalizer (which could lengthen the text); the others tokenize every row. Rows longer
than `checks.max_chars` fail the `schema` check and are not tokenized at all."""

from __future__ import annotations

from typing import Callable, Sequence

from adapterci.data.checks.corpus import Corpus
from adapterci.data.checks.result import CheckResult, Failure
from adapterci.data.formats import Message
from adapterci.prompting import BUILTIN, PromptFormat, render_rows

BATCH = 4096


def check_token_length(corpus: Corpus, cfg, tokenizer) -> CheckResult:
    limit = cfg.checks.max_tokens or cfg.train.max_length
    render = fast_renderer(PromptFormat(cfg.prompt_template, tokenizer))
    result = CheckResult("token_length")
    rows = [ex for part in corpus.parts for ex in part.examples if corpus.is_new(ex.source)]
    examples = [ex for ex in rows if not over_max_chars(ex, cfg.checks.max_chars)]  # already failed `schema`
    prompts = render_rows(render, examples)
    texts = [prompt + (ex.completion + tokenizer.eos_token if ex.completion is not None else "")
             for prompt, ex in zip(prompts, examples)]
    sides = list(range(len(examples)))  # texts[k] belongs to examples[sides[k]]
    for i, (prompt, ex) in enumerate(zip(prompts, examples)):
        if ex.rejected is not None:
            texts.append(prompt + ex.rejected + tokenizer.eos_token)
            sides.append(i)
    safe = _safe_bytes(tokenizer, limit)
    todo = [i for i, text in enumerate(texts) if len(text.encode("utf-8")) > safe]
    longest, over = 0, {}
    for start in range(0, len(todo), BATCH):
        batch = todo[start:start + BATCH]
        for k, ids in zip(batch, tokenizer([texts[k] for k in batch])["input_ids"]):
            longest = max(longest, len(ids))
            if len(ids) > limit:
                over[sides[k]] = max(over.get(sides[k], 0), len(ids))
    for i, tokens in sorted(over.items()):
        result.failures.append(Failure.at(
            examples[i].source,
            f"{tokens} tokens, longer than `checks.max_tokens` ({limit}) with the base model's tokenizer"))
    skipped = len(rows) - len(examples)
    result.summary = (f"longest tokenized row {longest} tokens (limit {limit}); "
                      f"{len(examples) - len({sides[k] for k in todo})} of {len(rows)} rows short enough to skip"
                      + (f", {skipped} longer than `checks.max_chars` not tokenized" if skipped else ""))
    result.details = {"max_tokens": limit, "longest_tokenized": longest, "rows": len(rows),
                      "tokenized": len({sides[k] for k in todo}),
                      "over_max_chars": skipped}
    return result


def over_max_chars(ex, max_chars: int) -> bool:
    """Whether a row's prompt or answer is longer than `checks.max_chars`: the `schema` check fails it already,
    so it is neither rendered nor tokenized (a 27 MB file of such rows took minutes and gigabytes)."""
    return len(ex.prompt_text) > max_chars or any(a is not None and len(a) > max_chars
                                                  for a in (ex.completion, ex.rejected))


def fast_renderer(fmt) -> Callable[[Sequence[Message]], str]:
    """`fmt.render`, or for the built-in templates (which insert each message's content verbatim) an equal
    function that renders each sequence of roles once, with markers, and splices the contents in."""
    if fmt.template not in BUILTIN:
        return fmt.render
    cache: dict[tuple[str, ...], list[str]] = {}

    def render(messages: Sequence[Message]) -> str:
        roles = tuple(m.role for m in messages)
        if roles not in cache:
            cache[roles] = fmt.render([Message(r, f"\x00{i}\x00") for i, r in enumerate(roles)]).split("\x00")
        parts = cache[roles]  # text, index, text, index, ..., text
        return "".join(p if k % 2 == 0 else messages[int(p)].content for k, p in enumerate(parts))

    return render


def _safe_bytes(tokenizer, limit: int) -> int:
    """Rows of at most this many UTF-8 bytes cannot exceed `limit` tokens (-1: tokenize every row)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or backend.normalizer is not None:
        return -1
    added = len(tokenizer("")["input_ids"]) + 1  # special tokens around the text, and a prefix space
    return limit - added
