"""Train/eval leakage: a training row (train or validation) that shares a word n-gram (`checks.leakage_ngram`)
with an eval item, or contains a shorter eval item whole, lets the adapter see the test.

Template text never counts: word runs covered by n-grams found in more than `checks.leakage_template_share`
of a suite's items (and in at least 3), such as a shared instruction, are masked out of the eval items, and
n-grams that many training rows share are dropped the same way."""

from __future__ import annotations

import numpy as np

from adapterci.data.checks.corpus import Corpus, text_of
from adapterci.data.checks.ngrams import Words, ngrams, whole_text_hashes, words_of
from adapterci.data.checks.result import CheckResult, Failure


def check_leakage(corpus: Corpus, cfg) -> CheckResult:
    n, share = cfg.checks.leakage_ngram, cfg.checks.leakage_template_share
    result = CheckResult("leakage")
    training = corpus.training
    suites = [s for s in corpus.suites if s.examples]
    words = words_of([text_of(ex) for ex in training] + [text_of(ex) for s in suites for ex in s.examples])
    train = _TrainingGrams(words.subset(0, len(training)), share)
    leaks, start = 0, len(training)
    for suite in suites:
        items = words.subset(start, start + len(suite.examples))
        start += len(suite.examples)
        for t, e in _leaks(train, items, n, share):
            row, item = training[t], suite.examples[e]
            leaks += 1
            if corpus.is_new(row.source) or corpus.is_new(item.source):
                how = (f"shares a {n}-word sequence with eval item {item.source}" if items.lengths[e] >= n
                       else f"contains eval item {item.source} whole")
                result.failures.append(Failure.at(row.source, f"{how} ({suite.name})"))
    result.summary = f"{leaks} training row/eval item overlap(s) ({n}-word sequences)"
    result.details = {"leaks": leaks, "ngram": n}
    return result


class _TrainingGrams:
    """The m-gram hashes of the training rows, computed once per length m."""

    def __init__(self, words: Words, share: float):
        self.words, self.share, self._cache = words, share, {}

    def get(self, m: int) -> tuple[np.ndarray, np.ndarray]:
        if m not in self._cache:
            keys, rows, _ = ngrams(self.words, m)
            self._cache[m] = (keys, rows)
        return self._cache[m]


def _leaks(train: _TrainingGrams, items: Words, n: int, share: float) -> list[tuple[int, int]]:
    """(training row, eval item) pairs."""
    n_items = len(items.lengths)
    limit = max(2, share * n_items)
    keys, owner, starts = ngrams(items, n)
    content = _outside_template(keys, owner, starts, items, n, limit)
    groups = [(n, keys[content], owner[content])]
    lengths = items.lengths
    short = np.flatnonzero((lengths < n) & (lengths > 0))
    whole = whole_text_hashes(items, short)
    for m in np.unique(lengths[short]):
        chosen = lengths[short] == m
        groups.append((int(m), whole[chosen], short[chosen]))
    pairs: set[tuple[int, int]] = set()
    for m, ev_keys, ev_items in groups:
        ev_keys, ev_items = _rare(ev_keys, ev_items, limit)
        if not len(ev_keys):
            continue
        order = np.argsort(ev_keys, kind="stable")
        ev_keys, ev_items = ev_keys[order], ev_items[order]
        train_keys, train_rows = train.get(m)
        pos = np.minimum(np.searchsorted(ev_keys, train_keys), len(ev_keys) - 1)
        hit = ev_keys[pos] == train_keys
        hit_keys, hit_rows = _rare(train_keys[hit], train_rows[hit], max(2, share * len(train.words.lengths)))
        for key, row in set(zip(hit_keys.tolist(), hit_rows.tolist())):
            lo, hi = np.searchsorted(ev_keys, np.uint64(key), "left"), np.searchsorted(ev_keys, np.uint64(key), "right")
            pairs.update((row, int(item)) for item in ev_items[lo:hi])
    return sorted(pairs)


def _rare(keys: np.ndarray, owners: np.ndarray, limit: float) -> tuple[np.ndarray, np.ndarray]:
    """Drop keys owned by more than `limit` distinct texts."""
    if not len(keys):
        return keys, owners
    uniq, df = np.unique(np.unique(np.stack([keys, owners.astype(np.uint64)], axis=1), axis=0)[:, 0],
                         return_counts=True)
    keep = ~np.isin(keys, uniq[df > limit])
    return keys[keep], owners[keep]


def _outside_template(keys, owner, starts, items: Words, n: int, limit: float) -> np.ndarray:
    """Mask of n-grams that touch no word covered by a template n-gram (one in more than `limit` items)."""
    if not len(keys):
        return np.zeros(0, bool)
    common_keys, _ = _rare(keys, owner, limit)
    common = ~np.isin(keys, common_keys)
    first = int(items.offsets[0])
    size = int(items.offsets[-1]) - first
    edges = np.zeros(size + 1, dtype=np.int64)
    np.add.at(edges, starts[common] - first, 1)
    np.add.at(edges, starts[common] - first + n, -1)
    covered = np.concatenate([[0], np.cumsum(np.cumsum(edges)[:-1] > 0)])
    return covered[starts - first + n] - covered[starts - first] == 0
