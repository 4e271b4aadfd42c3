"""Word (or character) n-gram hashes of many texts at once, vectorised with numpy (shared by near-duplicate and
leakage checks).

Texts are lower-cased and split into words (`\\w+`); each distinct word gets a well-mixed 64-bit id, and an
n-gram is hashed from its ids as a polynomial (wrapping 64-bit arithmetic) with a
final mix. Hashes are comparable only within one `words_of` call."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

_SEP = "\x00"  # joins texts; matched as a token of its own to mark where each text ends
_TOKEN = re.compile(r"\w+|\x00")
_NON_WORD = re.compile(r"[^\w\x00]+")
_MUL = np.uint64(0x9E3779B97F4A7C15)


def mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a well-spread 64-bit hash of each value."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * np.uint64(0xBF58476D1CE4E5B9)
        x = x ^ (x >> np.uint64(27))
        x = x * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


@dataclass
class Words:
    """The word ids of each text: `ids[offsets[i]:offsets[i + 1]]` are the words of text i. A slice of the
    texts shares `ids` and takes a slice of `offsets` (see `subset`)."""

    ids: np.ndarray
    offsets: np.ndarray

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def subset(self, start: int, stop: int) -> "Words":
        """Texts [start, stop) (indices in the subset count from 0)."""
        return Words(self.ids, self.offsets[start:stop + 1])


def words_of(texts: Sequence[str]) -> Words:
    """Split every text into word ids (one vocabulary for all of them)."""
    import pandas as pd

    joined = _SEP.join(texts)
    if joined.count(_SEP) != len(texts) - 1:
        joined = _SEP.join(t.replace(_SEP, " ") for t in texts)
    tokens = _TOKEN.findall(joined.lower())
    codes, uniques = pd.factorize(pd.Series(tokens, dtype=object))
    is_sep = codes == (uniques.get_loc(_SEP) if _SEP in uniques else -1)
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(np.bincount(np.cumsum(is_sep)[~is_sep], minlength=len(texts)))[:len(texts)]
    ids = codes[~is_sep].astype(np.uint64)
    return Words(mix(ids + np.uint64(1)), offsets)


def tokens(text: str) -> list[str]:
    """The words of one text, as `words_of` splits it."""
    return _TOKEN.findall(text.replace(_SEP, " ").lower())


def chars_of(texts: Sequence[str]) -> Words:
    """Every text as characters instead of words (lower-cased, each run of non-word characters one space), in
    the same structure: `ngrams` of it are character n-grams, unchanged by case, punctuation and spacing."""
    joined = _NON_WORD.sub(" ", _SEP.join(t.replace(_SEP, " ") for t in texts).lower())
    codes = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32)
    is_sep = codes == 0
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(np.bincount(np.cumsum(is_sep)[~is_sep], minlength=len(texts)))[:len(texts)]
    return Words(mix(codes[~is_sep].astype(np.uint64) + np.uint64(1)), offsets)


def ngrams(words: Words, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hashes of every word n-gram, the index of the text each belongs to, and its first word's position
    in `words.ids` (texts shorter than n give none)."""
    first, total = int(words.offsets[0]), int(words.offsets[-1])
    if total - first < n:
        return np.empty(0, np.uint64), np.empty(0, np.int64), np.empty(0, np.int64)
    ids, count = words.ids[first:total], total - first - n + 1
    h = ids[:count].copy()
    with np.errstate(over="ignore"):
        for k in range(1, n):  # slices, not gathers: every position at once, the invalid ones dropped after
            h *= _MUL
            h += ids[k:count + k]
    row = np.repeat(np.arange(len(words.lengths)), words.lengths)[:count]
    idx = np.flatnonzero(np.arange(count) + n <= words.offsets[1:][row] - first)  # inside its own text
    return mix(h[idx]), row[idx], first + idx


def run_hashes(ids: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The hash of each word run `ids[start:start + length]`, equal to the hash `ngrams` gives an n-gram of
    the same words. Meant for short runs: the cost grows with the longest one."""
    h = np.zeros(len(starts), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(int(lengths.max(initial=0))):
            live = lengths > k
            h[live] = h[live] * _MUL + ids[starts[live] + k]
    return mix(h)
