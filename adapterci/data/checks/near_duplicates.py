"""Near duplicates: MinHash signatures of word 3-gram shingles, banded LSH to find candidates, and the
signature agreement (an estimate of Jaccard similarity) to confirm them. Vectorised; never pairwise.

Shingles that occur in a large share of the rows (a shared instruction, a chat preamble) are template
text, not content, and are left out; exact duplicates are the `duplicates` check's business."""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np

from adapterci.data.checks.corpus import Corpus, canonical, text_of
from adapterci.data.checks.ngrams import Words, mix, ngrams, run_hashes, words_of
from adapterci.data.checks.result import CheckResult, Failure

SHINGLE = 3
NUM_PERM = 64
TEMPLATE_SHARE = 0.05  # a shingle in more than this share of rows (and in more than TEMPLATE_MIN) is template text
TEMPLATE_MIN = 10
SMALL_BUCKET = 8  # buckets up to this size are compared all-pairs, larger ones as a chain


def check_near_duplicates(corpus: Corpus, cfg) -> CheckResult:
    """Rows of the training data (train + validation), or of one eval suite, that nearly repeat another."""
    threshold = cfg.checks.near_duplicate_threshold
    result = CheckResult("near_duplicates")
    training = corpus.training
    groups = [(training, corpus.training_texts, corpus.words.subset(0, len(training)))]
    groups += [(p.examples, [text_of(ex) for ex in p.examples], None) for p in corpus.suites]
    pairs = 0
    for examples, texts, words in groups:
        reported: set[int] = set()
        for i, j, sim in similar_pairs(texts, threshold, words):  # sorted: a row's earliest partner comes first
            a, b = examples[i], examples[j]
            pairs += 1
            if j not in reported and (corpus.is_new(b.source) or corpus.is_new(a.source)):
                reported.add(j)
                result.failures.append(Failure.at(
                    b.source, f"near duplicate of {a.source} (estimated similarity {sim:.2f})"))
    result.summary = f"{pairs} near-duplicate pair(s) at similarity >= {threshold}"
    result.details = {"pairs": pairs, "threshold": threshold}
    return result


def similar_pairs(texts: Sequence[str], threshold: float, words: Words | None = None,
                  template_share: float = TEMPLATE_SHARE) -> list[tuple[int, int, float]]:
    """(i, j, estimated Jaccard) with i < j for texts whose shingle sets are at least `threshold` similar.
    Texts equal up to whitespace are skipped (they are exact duplicates). `words`: the texts already split.
    `template_share`: shingles in more than this share of the texts (and in more than TEMPLATE_MIN) are left out."""
    if len(texts) < 2:
        return []
    words = words_of(texts) if words is None else words
    sig, rows = _signatures(words, template_share)
    if len(rows) < 2:
        return []
    bands, width = _bands(threshold)
    candidates = _candidates(sig, bands, width)
    if not len(candidates):
        return []
    sims = (sig[candidates[:, 0]] == sig[candidates[:, 1]]).mean(axis=1)
    keep = sims >= threshold
    out = []
    for (a, b), s in zip(candidates[keep], sims[keep]):
        i, j = sorted((int(rows[a]), int(rows[b])))
        if canonical(texts[i]) != canonical(texts[j]):
            out.append((i, j, float(s)))
    return sorted(set(out))


def _signatures(words, template_share: float = TEMPLATE_SHARE) -> tuple[np.ndarray, np.ndarray]:
    """MinHash signatures (rows x NUM_PERM, uint32) of the texts that have content shingles, and their indices."""
    import pandas as pd

    h, row, _ = ngrams(words, SHINGLE)
    short = np.flatnonzero((words.lengths < SHINGLE) & (words.lengths > 0))
    h = np.concatenate([h, run_hashes(words.ids, words.offsets[short], words.lengths[short])])
    row = np.concatenate([row, short])
    codes, _ = pd.factorize(h)
    counts = np.bincount(codes)
    n_rows = len(words.lengths)
    content = counts[codes] <= max(TEMPLATE_MIN, template_share * n_rows)
    h, row = h[content], row[content]
    order = np.argsort(row, kind="stable")
    h, row = h[order], row[order]
    rows, starts = np.unique(row, return_index=True)
    sig = np.empty((len(rows), NUM_PERM), dtype=np.uint32)
    a, b = _perm_params()
    with np.errstate(over="ignore"):
        for k in range(NUM_PERM):
            sig[:, k] = np.minimum.reduceat(((h * a[k] + b[k]) >> np.uint64(32)).astype(np.uint32), starts)
    return sig, rows


@lru_cache(maxsize=1)
def _perm_params() -> tuple[np.ndarray, np.ndarray]:
    seeds = mix(np.arange(1, 2 * NUM_PERM + 1, dtype=np.uint64))
    return seeds[:NUM_PERM] | np.uint64(1), seeds[NUM_PERM:]


@lru_cache(maxsize=16)
def _bands(threshold: float) -> tuple[int, int]:
    """Bands x rows-per-band minimising false positives + false negatives around `threshold` (as datasketch)."""
    s = np.linspace(0, 1, 1001)
    best, best_err = (1, NUM_PERM), np.inf
    for b in range(1, NUM_PERM + 1):
        r = NUM_PERM // b
        p = 1 - (1 - s ** r) ** b
        err = np.trapezoid(np.where(s < threshold, p, 0), s) + np.trapezoid(np.where(s >= threshold, 1 - p, 0), s)
        if err < best_err:
            best, best_err = (b, r), err
    return best


def _candidates(sig: np.ndarray, bands: int, width: int) -> np.ndarray:
    """Pairs of signature rows that agree on at least one band (unique, each as [a, b] with a < b)."""
    pairs = []
    with np.errstate(over="ignore"):
        for band in range(bands):
            part = sig[:, band * width:(band + 1) * width].astype(np.uint64)
            key = np.zeros(len(sig), dtype=np.uint64)
            for col in range(width):
                key = mix(key * np.uint64(0x100000001B3) + part[:, col])
            pairs.append(_bucket_pairs(key))
    if not pairs:
        return np.empty((0, 2), dtype=np.int64)
    allp = np.concatenate(pairs)
    return np.unique(allp, axis=0) if len(allp) else allp


def _bucket_pairs(key: np.ndarray) -> np.ndarray:
    """Pairs of rows with equal keys: all pairs in small buckets, a chain through larger ones."""
    order = np.argsort(key, kind="stable")
    k = key[order]
    same = np.flatnonzero(k[1:] == k[:-1])
    if not len(same):
        return np.empty((0, 2), dtype=np.int64)
    chain = np.stack([order[same], order[same + 1]], axis=1)
    _, starts, sizes = np.unique(k, return_index=True, return_counts=True)
    extra = []
    for start, size in zip(starts[(sizes > 2) & (sizes <= SMALL_BUCKET)], sizes[(sizes > 2) & (sizes <= SMALL_BUCKET)]):
        members = order[start:start + size]
        extra += [(members[x], members[y]) for x in range(size) for y in range(x + 2, size)]
    out = np.concatenate([chain, np.array(extra, dtype=np.int64).reshape(-1, 2)])
    return np.sort(out, axis=1)
