"""Paraphrased leakage: training rows that hold nearly every character n-gram of an eval item's text.

Exact word n-grams miss an item copied with a word inserted every few words, words swapped or replaced, or its
case and punctuation changed; most of its character 4-grams survive all of these. Containment (the share of the
item's distinct 4-grams found anywhere in the row) is used rather than a similarity of the two texts, so a row
that wraps the item in more text (an answer, an instruction) still counts. Two passes, both vectorised and
never pairwise: n-grams found in few items (rare) propose the row/item pairs that hold at least CANDIDATE of
the item's rare n-grams, and those pairs are scored on all of the item's n-grams; the few over the threshold
are scored again on the n-grams within WINDOW times the item's length of each other (a long row that names
an item's topic in two far-apart places is not a copy of it). Training rows are taken CHUNK at a time, so
memory stays bounded on large data sets. Items with fewer than MIN_GRAMS n-grams (under about 6 words: a row
about the same short question is too often not a copy) or no rare one are left to the exact check, which
catches a row that contains such an item whole."""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np

from adapterci.data.checks.ngrams import chars_of, mix, ngrams

CHAR_N = 4
MIN_GRAMS = 28
CANDIDATE = 0.5  # share of an item's rare n-grams a row must hold to be scored on all of them
CHUNK = 20_000  # training rows per pass (fewer when there are many items: PAIRS row/item counters at most)
PAIRS = 1 << 22
BITS = 1 << 22  # bitmap size of the rare n-gram filter
WINDOW = 2  # the n-grams of an item must lie within this many times its length in the row


def contained(rows: Sequence[str], items: Sequence[str], threshold: float, rare_share: float
              ) -> list[tuple[int, int, float]]:
    """(row, item, containment) for every training row that holds at least `threshold` of an item's distinct
    character n-grams, near each other. An n-gram in more than `rare_share` of the items (and in more than 2)
    is not rare."""
    grams = _ItemGrams(items, rare_share)
    out: list[tuple[int, int, float]] = []
    if not grams.rare_size.any():
        return out
    step = max(1, min(CHUNK, PAIRS // len(items)))
    for start in range(0, len(rows), step):
        chunk = rows[start:start + step]
        keys, row, _ = ngrams(chars_of(chunk), CHAR_N)
        cand_rows, cand_items = grams.candidates(keys, row, len(chunk))
        if not len(cand_rows):
            continue
        chosen = np.zeros(len(chunk), dtype=bool)
        chosen[cand_rows] = True
        chosen = chosen[row]
        over = grams.held(cand_rows, cand_items, _pair_keys(keys[chosen], row[chosen])) >= threshold
        for r, i in zip((cand_rows[over] + start).tolist(), cand_items[over].tolist()):
            if (near := grams.held_near(rows[r], i)) >= threshold:
                out.append((r, i, near))
    return out


class _ItemGrams:
    """The items' distinct n-grams, by item (for scoring) and the rare ones by n-gram (for proposing pairs)."""

    def __init__(self, items: Sequence[str], rare_share: float):
        keys, item = _distinct(*ngrams(chars_of(items), CHAR_N)[:2])
        order = np.lexsort((keys, item))
        self.keys, self.item = keys[order], item[order]
        size = np.bincount(self.item, minlength=len(items))
        self.offsets = np.concatenate([[0], np.cumsum(size)])
        _, inverse, df = np.unique(self.keys, return_inverse=True, return_counts=True)
        rare = (df[inverse] <= max(2, rare_share * len(items))) & (size[self.item] >= MIN_GRAMS)
        by_key = np.argsort(self.keys[rare], kind="stable")
        rare_keys, self.rare_item = self.keys[rare][by_key], self.item[rare][by_key]
        self.rare_size = np.bincount(self.rare_item, minlength=len(items))
        self.rare_keys, self.rare_first, self.rare_count = np.unique(rare_keys, return_index=True,
                                                                     return_counts=True)
        self.rare_bits = np.zeros(BITS, dtype=bool)
        self.rare_bits[(self.rare_keys & np.uint64(BITS - 1)).astype(np.intp)] = True

    def candidates(self, keys: np.ndarray, row: np.ndarray, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """(row, item) pairs where the row holds at least CANDIDATE of the item's rare n-grams (`keys`, `row`:
        the n-grams of `rows` rows). An n-gram repeated in a row counts each time: the pairs are only proposed."""
        inside = self.rare_bits[(keys & np.uint64(BITS - 1)).astype(np.intp)]  # rules most out at once
        keys, row = keys[inside], row[inside]
        at = np.minimum(np.searchsorted(self.rare_keys, keys), len(self.rare_keys) - 1)
        hit = self.rare_keys[at] == keys
        at, row = at[hit], row[hit]
        lo, count = self.rare_first[at], self.rare_count[at]
        expand = np.repeat(lo - np.concatenate([[0], np.cumsum(count)[:-1]]), count) + np.arange(count.sum())
        n_items = len(self.rare_size)
        held = np.bincount(np.repeat(row, count) * n_items + self.rare_item[expand], minlength=rows * n_items)
        pairs = np.flatnonzero(held >= np.tile(np.maximum(CANDIDATE * self.rare_size, 1), rows))
        return pairs // n_items, pairs % n_items

    def held(self, rows: np.ndarray, items: np.ndarray, row_grams: np.ndarray) -> np.ndarray:
        """The share of each item's n-grams that its paired row holds (`row_grams`: `_pair_keys` of the rows)."""
        count = self.offsets[items + 1] - self.offsets[items]
        starts = np.repeat(self.offsets[items] - np.concatenate([[0], np.cumsum(count)[:-1]]), count)
        wanted = _pair_keys(self.keys[starts + np.arange(count.sum())], np.repeat(rows, count))
        found = np.isin(wanted, row_grams)
        return np.bincount(np.repeat(np.arange(len(rows)), count), weights=found, minlength=len(rows)) / count

    def held_near(self, row: str, item: int) -> float:
        """The largest share of the item's n-grams that `row` holds within WINDOW times the item's length."""
        mine = self.keys[self.offsets[item]:self.offsets[item + 1]]  # sorted
        grams = ngrams(chars_of([row]), CHAR_N)[0]
        at = np.minimum(np.searchsorted(mine, grams), len(mine) - 1)
        pos, ids = np.flatnonzero(mine[at] == grams).tolist(), at[mine[at] == grams].tolist()
        width, inside, best, lo = WINDOW * (len(mine) + CHAR_N), Counter(), 0, 0
        for hi, gram in enumerate(ids):  # a window sliding over the matches: distinct n-grams inside it
            inside[gram] += 1
            while pos[hi] - pos[lo] >= width:
                inside[ids[lo]] -= 1
                if not inside[ids[lo]]:
                    del inside[ids[lo]]
                lo += 1
            best = max(best, len(inside))
        return best / len(mine)


def _pair_keys(keys: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """One 64-bit key per (n-gram, text) pair."""
    with np.errstate(over="ignore"):
        return mix(keys ^ mix(owner.astype(np.uint64) + np.uint64(1)))


def _distinct(keys: np.ndarray, owner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each (n-gram, text) pair once."""
    _, first = np.unique(_pair_keys(keys, owner), return_index=True)
    return keys[first], owner[first]
