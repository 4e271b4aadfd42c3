"""PII and secrets in any row of the training data or the eval sets (shown redacted, never in full)."""

from __future__ import annotations

from collections import Counter

from adapterci.data.checks.corpus import Corpus, text_of
from adapterci.data.checks.result import CheckResult, Failure
from adapterci.data.pii import scan_texts

_LABELS = {"email": "an email address", "phone": "a phone number", "credit_card": "a payment card number"}


def check_pii(corpus: Corpus, cfg) -> CheckResult:
    result = CheckResult("pii")
    if not cfg.checks.pii:
        result.summary = "skipped (`checks.pii: false`)"
        return result
    examples = [ex for part in corpus.parts for ex in part.examples if corpus.is_new(ex.source)]
    kinds: Counter[str] = Counter()
    for i, match in scan_texts([text_of(ex) for ex in examples]):
        kinds[match.kind] += 1
        what = _LABELS.get(match.kind, f"a secret ({match.kind})")
        result.failures.append(Failure.at(examples[i].source, f"contains {what}: {match.redacted}"))
    result.summary = f"{sum(kinds.values())} finding(s)" + (f": {dict(kinds)}" if kinds else "")
    result.details = {"findings": dict(kinds)}
    return result
