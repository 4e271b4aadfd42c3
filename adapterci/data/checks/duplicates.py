"""Exact duplicates (equal up to whitespace) and conflicting answers (one prompt, two different answers; preference
pairs may share a prompt: their contradictions are the `preferences` check's business)."""

from __future__ import annotations

from adapterci.data.checks.corpus import Corpus, canonical, text_of
from adapterci.data.checks.result import CheckResult, Failure
from adapterci.data.formats import Example


def check_duplicates(corpus: Corpus, cfg) -> CheckResult:
    """Repeated rows in the training data (train + validation together) or within one eval suite."""
    result = CheckResult("duplicates")
    repeats = conflicts = 0
    groups = [(corpus.training, corpus.training_texts)] + [(p.examples, list(map(text_of, p.examples))) for p in corpus.suites]
    for examples, texts in groups:
        for first, dup in _repeats(examples, [canonical(t) for t in texts]):
            repeats += 1
            if corpus.is_new(dup.source) or corpus.is_new(first.source):
                result.failures.append(Failure.at(dup.source, f"duplicate of {first.source}"))
        answered = [ex for ex in examples if ex.completion is not None and not ex.is_pair]
        for first, other in _repeats(answered, [canonical(ex.prompt_text) for ex in answered]):
            if canonical(first.completion) != canonical(other.completion):
                conflicts += 1
                if corpus.is_new(other.source) or corpus.is_new(first.source):
                    result.failures.append(Failure.at(
                        other.source, f"same prompt as {first.source} with a different answer"))
    result.summary = f"{repeats} duplicate row(s), {conflicts} conflicting answer(s)"
    result.details = {"duplicates": repeats, "conflicts": conflicts}
    return result


def _repeats(examples: list[Example], keys: list[str]) -> list[tuple[Example, Example]]:
    """(first occurrence, later occurrence) for every row whose key was seen before."""
    seen: dict[str, Example] = {}
    out = []
    for ex, key in zip(examples, keys):
        first = seen.setdefault(key, ex)
        if first is not ex:
            out.append((first, ex))
    return out
