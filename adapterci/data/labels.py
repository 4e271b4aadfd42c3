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


# Letters of other scripts that look like a Latin letter (after case folding), after Unicode TR39's confusables:
# "pоsitive" with a Cyrillic о is a different string that reads the same.
_LOOKALIKES = str.maketrans({
    **dict(zip("авеікмнорстухѕԁԛԝһӏјɡɑıʏ", "abeikmhopctyxsdqwhljgaiy")),  # Cyrillic and Latin variants
    **dict(zip("αβεικνορτυχγϲϳζѵ", "abeiknoptuxycjzv")),  # Greek
})


def skeleton(text: str) -> str:
    """`text` as it reads: Unicode compatibility forms folded (NFKC: full-width, ligatures), invisible format
    characters (zero-width spaces, joiners) dropped, case folded, lookalike letters of other scripts mapped to
    the Latin letter, whitespace collapsed. Two labels with one skeleton cannot be told apart by a reader."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(c for c in text if unicodedata.category(c) != "Cf")
    return " ".join(text.casefold().translate(_LOOKALIKES).split())


def same_reading(values: Sequence[str]) -> tuple[str, str] | None:
    """The first two values with one skeleton (an exact repeat included), or None."""
    seen: dict[str, str] = {}
    for value in values:
        key = skeleton(value)
        if key in seen:
            return seen[key], value
        seen[key] = value
    return None


def _key(text: str) -> str:
    return normalize(skeleton(text))


def label_variants(examples: Sequence[Example], labels: Sequence[str] | None) -> list[Problem]:
    """One problem per row whose answer equals a label only after normalisation (case, whitespace,
    punctuation, Unicode compatibility forms and lookalike letters)."""
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
