"""Train/eval leakage: a training row (train or validation) that shares a word n-gram (`checks.leakage_ngram`)
with an eval item's prompt, or contains a shorter item whole, lets the adapter see the test; so does a row that
holds `checks.leakage_containment` of the character n-grams of an item's non-template words (a paraphrase:
words inserted, swapped or replaced, case and punctuation changed; see `paraphrase`).

Template text never counts: words covered by n-grams found in more than `checks.leakage_template_share` of a
suite's items (and in at least 3), such as a shared instruction, are masked out of the items; an item left
with fewer than n other words leaks when a training row contains all of them in a row. Sequences that many
training rows share are dropped the same way."""

from __future__ import annotations

import numpy as np

from adapterci.data.checks.corpus import Corpus
from adapterci.data.checks.ngrams import Words, ngrams, run_hashes, tokens
from adapterci.data.checks.paraphrase import CHAR_N, contained
from adapterci.data.checks.result import CheckResult, Failure


def check_leakage(corpus: Corpus, cfg) -> CheckResult:
    n, similar = cfg.checks.leakage_ngram, cfg.checks.leakage_containment
    result = CheckResult("leakage")
    leaks = near = 0
    for suite, t, e, m, length in _suite_leaks(corpus, cfg):
        row, item = corpus.training[t], suite.examples[e]
        leaks += 1
        near += isinstance(m, float)
        if corpus.is_new(row.source) or corpus.is_new(item.source):
            how = (f"holds {m:.0%} of the character {CHAR_N}-grams of eval item {item.source} (a paraphrase of it?)"
                   if isinstance(m, float) else f"shares a {n}-word sequence with eval item {item.source}" if m == n
                   else f"contains eval item {item.source} whole" if m == length
                   else f"contains the {m} non-template words of eval item {item.source}")
            result.failures.append(Failure.at(row.source, f"{how} ({suite.name})"))
    result.summary = (f"{leaks} training row/eval item overlap(s) ({n}-word sequences; {near} paraphrase(s) holding "
                      f">= {similar:.0%} of an item's character {CHAR_N}-grams)")
    result.details = {"leaks": leaks, "ngram": n, "paraphrases": near, "containment": similar}
    return result


def leaked_rows(corpus: Corpus, cfg) -> set[int]:
    """Indices (into `corpus.training`) of the rows that leak into any eval suite, new or not."""
    return {t for _, t, _, _, _ in _suite_leaks(corpus, cfg)}


def _suite_leaks(corpus: Corpus, cfg):
    """(suite part, training row, eval item, shared length or containment, item length) of every overlap, suite
    by suite: the exact ones (an int, the shared word count), then the paraphrases the exact ones missed (a
    float, the share of the item's character n-grams the row holds)."""
    n, share = cfg.checks.leakage_ngram, cfg.checks.leakage_template_share
    train = _TrainingGrams(corpus.words.subset(0, len(corpus.training)))
    start = len(corpus.training)
    found, contents, owners = set(), [], []
    for suite in corpus.suites:
        items = corpus.words.subset(start, start + len(suite.examples))
        start += len(suite.examples)
        covered = _template(items, n, share)
        for t, e, m in _leaks(train, items, covered, n, share):
            found.add((suite.name, t, e))
            yield suite, t, e, m, int(items.lengths[e])
        contents += _content(suite, items, covered)
        owners += [(suite, e) for e in range(len(suite.examples))]
    for t, i, held in contained(corpus.training_texts, contents, cfg.checks.leakage_containment, share):
        suite, e = owners[i]
        if (suite.name, t, e) not in found:
            yield suite, t, e, held, len(contents[i].split())


def _content(suite, items: Words, covered: np.ndarray) -> list[str]:
    """Each item's prompt without its template words (those `covered` marks)."""
    first, out = int(items.offsets[0]), []
    for e, example in enumerate(suite.examples):
        lo = int(items.offsets[e]) - first
        out.append(" ".join(w for k, w in enumerate(tokens(example.prompt_text))
                            if covered[lo + k + 1] == covered[lo + k]))
    return out


class _TrainingGrams:
    """The m-gram hashes of the training rows, computed once per length m."""

    def __init__(self, words: Words):
        self.words, self._cache = words, {}

    def get(self, m: int) -> tuple[np.ndarray, np.ndarray]:
        if m not in self._cache:
            keys, rows, _ = ngrams(self.words, m)
            self._cache[m] = (keys, rows)
        return self._cache[m]


def _template(items: Words, n: int, share: float) -> np.ndarray:
    """Prefix sums over the items' words of "covered by a template n-gram" (see `_covered`)."""
    keys, owner, starts = ngrams(items, n)
    return _covered(keys, owner, starts, items, n, max(2, share * len(items.lengths)))


def _leaks(train: _TrainingGrams, items: Words, covered: np.ndarray, n: int, share: float
           ) -> list[tuple[int, int, int]]:
    """(training row, eval item, length of the shared word sequence) triples; `covered` from `_template`."""
    limit = max(2, share * len(items.lengths))
    keys, owner, starts = ngrams(items, n)
    first = int(items.offsets[0])
    content = covered[starts - first + n] - covered[starts - first] == 0
    groups = [(n, *_rare(keys[content], owner[content], limit))]
    run_items, run_starts, run_lengths = _short_content(items, covered, set(owner[content].tolist()))
    run_keys = run_hashes(items.ids, run_starts, run_lengths)
    for m in np.unique(run_lengths):
        chosen = run_lengths == m
        groups.append((int(m), *_rare(run_keys[chosen], run_items[chosen], limit)))
    pairs: set[tuple[int, int, int]] = set()
    for m, ev_keys, ev_items in groups:
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
            pairs.update((row, int(item), m) for item in ev_items[lo:hi])
    return sorted(pairs)


def _rare(keys: np.ndarray, owners: np.ndarray, limit: float) -> tuple[np.ndarray, np.ndarray]:
    """Drop keys owned by more than `limit` distinct texts."""
    if not len(keys):
        return keys, owners
    uniq, df = np.unique(np.unique(np.stack([keys, owners.astype(np.uint64)], axis=1), axis=0)[:, 0],
                         return_counts=True)
    keep = ~np.isin(keys, uniq[df > limit])
    return keys[keep], owners[keep]


def _covered(keys, owner, starts, items: Words, n: int, limit: float) -> np.ndarray:
    """Prefix sums over the items' words of "covered by a template n-gram" (one in more than `limit` items)."""
    first = int(items.offsets[0])
    edges = np.zeros(int(items.offsets[-1]) - first + 1, dtype=np.int64)
    if len(keys):
        common = ~np.isin(keys, _rare(keys, owner, limit)[0])
        np.add.at(edges, starts[common] - first, 1)
        np.add.at(edges, starts[common] - first + n, -1)
    return np.concatenate([[0], np.cumsum(np.cumsum(edges)[:-1] > 0)])


def _short_content(items: Words, covered: np.ndarray, with_ngram: set[int]) -> tuple[np.ndarray, ...]:
    """For items with no content n-gram (shorter than n, or little text besides the template): the item's
    longest run of non-template words, as (item, first word position, length)."""
    first = int(items.offsets[0])
    out: list[tuple[int, int, int]] = []
    for item in range(len(items.lengths)):
        if item in with_ngram:
            continue
        best, run = (0, 0), 0
        for pos in range(int(items.offsets[item]), int(items.offsets[item + 1])):
            run = 0 if covered[pos - first + 1] > covered[pos - first] else run + 1
            if run > best[1]:
                best = (pos - run + 1, run)
        if best[1]:
            out.append((item, *best))
    arr = np.array(out, dtype=np.int64).reshape(-1, 3)
    return arr[:, 0], arr[:, 1], arr[:, 2]
