"""Preference pairs: rows of the wrong kind for `train.method`, a chosen answer identical to the rejected one, the
same prompt with contradicting pairs (A over B and B over A), pairs that differ only in length (one answer is the
other with text added), and the length bias of the whole set: the share of pairs whose chosen answer is the longer
and the mean length ratio chosen/rejected (a set that always prefers the longer answer teaches verbosity)."""

from __future__ import annotations

from adapterci.data.checks.corpus import Corpus, canonical
from adapterci.data.checks.result import CheckResult, Failure
from adapterci.data.dataset import Loaded, method_problems
from adapterci.data.formats import Example


def check_preferences(corpus: Corpus, cfg) -> CheckResult:
    result = CheckResult("preferences")
    loaded = {p.name: p.loaded for p in corpus.training_parts}
    for problem in method_problems(cfg, corpus.train.loaded, loaded.get("validation", Loaded()),
                                   loaded.get("preferences", Loaded())):
        if corpus.is_new(problem.source):
            result.failures.append(Failure.of(problem))
    pairs = [ex for ex in corpus.training if ex.is_pair]
    groups = [[ex for ex in p.examples if ex.is_pair] for p in corpus.suites if p.kind == "preference"]
    counts = {"identical": 0, "contradicting": 0, "length_only": 0}
    for rows in [pairs, *groups]:
        for ex, message, what in _pair_problems(rows):
            counts[what] += 1
            if corpus.is_new(ex.source):
                result.failures.append(Failure.at(ex.source, message))
    bias = length_bias(pairs)
    c = cfg.checks
    where = (corpus.preferences or corpus.train).where(cfg.base_dir)
    if pairs and bias["longer_share"] > c.max_longer_chosen_share:
        result.failures.append(Failure(where, 0, (
            f"the chosen answer is the longer one in {bias['longer_share']:.0%} of {len(pairs)} pairs (more than "
            f"`checks.max_longer_chosen_share` {c.max_longer_chosen_share:.0%}): the pairs teach verbosity")))
    if pairs and bias["mean_length_ratio"] > c.max_chosen_length_ratio:
        result.failures.append(Failure(where, 0, (
            f"chosen answers are on average {bias['mean_length_ratio']:.2f}x as long as rejected ones (more than "
            f"`checks.max_chosen_length_ratio` {c.max_chosen_length_ratio}): the pairs teach verbosity")))
    result.summary = (f"{len(pairs)} training pair(s); chosen longer in {bias['longer_share']:.0%}, mean length "
                      f"ratio {bias['mean_length_ratio']:.2f}; {counts['identical']} identical, "
                      f"{counts['contradicting']} contradicting, {counts['length_only']} length-only"
                      if pairs else "no preference pairs in the training data")
    result.details = {"pairs": len(pairs), **bias, **counts}
    return result


def length_bias(pairs: list[Example]) -> dict[str, float]:
    """`longer_share`: share of pairs whose chosen answer has more characters than the rejected one;
    `mean_length_ratio`: mean of len(chosen) / len(rejected)."""
    if not pairs:
        return {"longer_share": 0.0, "mean_length_ratio": 1.0}
    longer = sum(len(ex.completion) > len(ex.rejected) for ex in pairs)
    ratio = sum(len(ex.completion) / max(len(ex.rejected), 1) for ex in pairs) / len(pairs)
    return {"longer_share": round(longer / len(pairs), 4), "mean_length_ratio": round(ratio, 4)}


def _pair_problems(rows: list[Example]):
    """(row, message, kind) for identical, contradicting and length-only pairs among `rows`."""
    seen: dict[tuple[str, str, str], Example] = {}
    for ex in rows:
        prompt, chosen, rejected = canonical(ex.prompt_text), canonical(ex.completion), canonical(ex.rejected)
        if chosen == rejected:
            yield ex, "`chosen` and `rejected` are the same answer: the pair teaches nothing", "identical"
            continue
        if (other := seen.get((prompt, rejected, chosen))) is not None:
            yield ex, f"contradicts the pair at {other.source}: the same prompt prefers each answer over the other", \
                "contradicting"
        seen.setdefault((prompt, chosen, rejected), ex)
        longer, shorter = (chosen, rejected) if len(chosen) > len(rejected) else (rejected, chosen)
        if shorter in longer:
            side = "chosen" if longer is chosen else "rejected"
            yield ex, (f"the pair differs only in length: `{side}` is the other answer with "
                       f"{len(longer) - len(shorter)} characters added"), "length_only"
