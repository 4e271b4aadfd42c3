"""The fallback ranking: TF-IDF cosine similarity of a training row's text (prompt and answer) with the text
of the regressed items (prompt and the candidate's answer). Cheap, and blind to what the model learned."""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Sequence

_WORD = re.compile(r"\w+")


def tfidf(texts: Sequence[str]) -> list[dict[str, float]]:
    """Unit-length TF-IDF vectors (sparse, as dicts) of `texts`, with smoothed IDF over `texts`."""
    bags = [Counter(_WORD.findall(t.lower())) for t in texts]
    df = Counter(word for bag in bags for word in bag)
    n = len(texts)
    vectors = []
    for bag in bags:
        vec = {w: c * (math.log((1 + n) / (1 + df[w])) + 1) for w, c in bag.items()}
        norm = math.sqrt(sum(v * v for v in vec.values())) or 1.0
        vectors.append({w: v / norm for w, v in vec.items()})
    return vectors


def rank(rows: Sequence[str], items: Sequence[str]) -> list[float]:
    """For every row, its mean cosine similarity with the items."""
    vectors = tfidf([*rows, *items])
    row_vecs, item_vecs = vectors[:len(rows)], vectors[len(rows):]
    return [sum(sum(v * item.get(w, 0.0) for w, v in row.items()) for item in item_vecs) / max(len(item_vecs), 1)
            for row in row_vecs]
