"""Token length with the base model's tokenizer, rendered exactly as training renders a row:
the prompt (`PromptFormat`) + the answer + eos, against `checks.max_tokens` (default `train.max_length`)."""

from __future__ import annotations

from adapterci.data.checks.corpus import Corpus
from adapterci.data.checks.result import CheckResult, Failure

BATCH = 4096


def check_token_length(corpus: Corpus, cfg, tokenizer) -> CheckResult:
    from adapterci.prompting import PromptFormat

    limit = cfg.checks.max_tokens or cfg.train.max_length
    fmt = PromptFormat(cfg.prompt_template, tokenizer)
    result = CheckResult("token_length")
    examples = [ex for part in corpus.parts for ex in part.examples if corpus.is_new(ex.source)]
    longest = 0
    for start in range(0, len(examples), BATCH):
        batch = examples[start:start + BATCH]
        texts = [fmt.render(ex.messages) + (ex.completion + tokenizer.eos_token if ex.completion is not None else "")
                 for ex in batch]
        for ex, ids in zip(batch, tokenizer(texts)["input_ids"]):
            longest = max(longest, len(ids))
            if len(ids) > limit:
                result.failures.append(Failure.at(
                    ex.source, f"{len(ids)} tokens, longer than `checks.max_tokens` ({limit}) with the base model's tokenizer"))
    result.summary = f"longest row {longest} tokens (limit {limit})"
    result.details = {"max_tokens": limit, "longest": longest, "rows": len(examples)}
    return result
