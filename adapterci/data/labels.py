"""Label answers written differently from the configured label (` Positive`, `NEGATIVE`, `positive.`, a
non-breaking space): flagged the same way by `check` and `train`, since eval accepts only the exact label."""

from __future__ import annotations

import re
import unicodedata
from typing import Sequence

from adapterci.data.formats import Example
from adapterci.data.load import Problem


def normalize(text: str, case: bool = True, whitespace: bool = True, punctuation: bool = True) -> str:
    """An answer as compared: optionally case-folded, without punctuation, whitespace collapsed."""
    if case:
        text = text.casefold()
    if punctuation:
        text = re.sub(r"[^\w\s]|_", "", text)
    if whitespace:
        text = " ".join(text.split())
    return text


def _key(text: str) -> str:
    return normalize(unicodedata.normalize("NFKC", text))


def label_variants(examples: Sequence[Example], labels: Sequence[str] | None) -> list[Problem]:
    """One problem per row whose answer equals a label only after normalisation (case, whitespace,
    punctuation, Unicode compatibility forms)."""
    if not labels:
        return []
    by_key = {_key(label): label for label in labels}
    exact = set(labels)
    out = []
    for ex in examples:
        if ex.completion is None or ex.completion in exact:
            continue
        label = by_key.get(_key(ex.completion))
        if label is not None:
            out.append(Problem(ex.source, f"answer {ex.completion!r} is the label {label!r} written differently: "
                                          "write it exactly as in `checks.labels`"))
    return out
