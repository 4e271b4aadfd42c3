"""The prompt baselines can be served by this data: every few-shot baseline finds its k rows (per label, for
`stratified`) among the training rows that do not leak into an eval set, on every suite. Found by `check` on
the pull request's data, before any GPU time: a ConfigError naming the baseline's key and line (exit 2)."""

from __future__ import annotations

from adapterci.data.checks.corpus import Corpus
from adapterci.data.checks.result import CheckResult
from adapterci.eval.baselines import Baselines


def check_baselines(corpus: Corpus, cfg) -> CheckResult:
    few_shot = [b for b in cfg.eval.baselines if b.few_shot]
    if not few_shot:
        return CheckResult("baselines", summary=f"{len(cfg.eval.baselines)} prompt baseline(s), none with examples")
    if corpus.train.loaded.problems:
        return CheckResult("baselines", summary="not checked: the training rows have problems (see schema)")
    baselines = Baselines(cfg, corpus)
    for baseline in few_shot:
        for part in corpus.suites:
            baselines.prompt(baseline.name, part.suite)
    pool = baselines.pool
    return CheckResult("baselines", summary=f"{len(few_shot)} few-shot baseline(s) served by {len(pool.rows)} "
                                            f"training rows ({pool.excluded} leaking into the eval sets left out)",
                       details={"rows": len(pool.rows), "excluded": pool.excluded})
