"""Label balance: among training rows answered with one of `checks.labels`, no label may take more than
`checks.max_label_share`, and every label must occur. (The share of rows answered with something else is
a Great Expectations value-set expectation that reports into this check too.)"""

from __future__ import annotations

from collections import Counter

from adapterci.data.checks.corpus import Corpus
from adapterci.data.checks.result import CheckResult, Failure
from adapterci.data.labels import label_variants


def check_label_balance(corpus: Corpus, cfg, where: str) -> CheckResult:
    """`where` names the file (or part) the whole-corpus failures are reported against."""
    result = CheckResult("label_balance")
    labels = cfg.checks.labels
    if not labels:
        result.summary = "skipped (no `checks.labels`)"
        return result

    result.failures += [Failure.of(p) for p in label_variants(corpus.training, labels) if corpus.is_new(p.source)]
    answers = [ex.completion for ex in corpus.training]
    counts = Counter(a for a in answers if a in labels)
    labelled = sum(counts.values())
    shares = {label: counts[label] / labelled if labelled else 0.0 for label in labels}
    for label, share in shares.items():
        if not counts[label]:
            result.failures.append(Failure(where, 0, f"label {label!r} never occurs in the training data"))
        elif share > cfg.checks.max_label_share:
            result.failures.append(Failure(where, 0, f"label {label!r} is {share:.0%} of labelled rows, more than "
                                                      f"`checks.max_label_share` ({cfg.checks.max_label_share:.0%})"))
    unlabeled = 1 - labelled / len(answers) if answers else 0.0
    result.summary = ", ".join(f"{k} {v:.0%}" for k, v in shares.items()) + f"; other answers {unlabeled:.0%}"
    result.details = {"counts": dict(counts), "shares": shares, "unlabeled_share": unlabeled}
    return result
