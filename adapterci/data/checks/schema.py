"""Format validity: every row that could not be read or normalised (malformed JSON, not UTF-8, a missing or
empty field, bad chat roles, no final assistant turn, an empty file) fails with its file and line."""

from __future__ import annotations

from adapterci.data.checks.corpus import Corpus
from adapterci.data.checks.result import CheckResult, Failure


def check_schema(corpus: Corpus, cfg) -> CheckResult:
    result = CheckResult("schema")
    rows = 0
    for part in corpus.parts:
        rows += len(part.examples)
        result.failures.extend(Failure.of(p) for p in part.loaded.problems if corpus.is_new(p.source))
    result.summary = f"{rows} rows read, {len(result.failures)} unreadable"
    result.details = {"rows": {p.name: len(p.examples) for p in corpus.parts}}
    return result
