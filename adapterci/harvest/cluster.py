"""Failures grouped and ranked: by reason, error type and `category`, then, inside each group, prompts that nearly
repeat one another (MinHash, `adapterci.data.checks.near_duplicates`) form a cluster of their own. Clusters are
ranked by size times the severity of their reason (`select.SEVERITY`), so a large cluster of safety failures
comes before a few complaints."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from adapterci.data.checks.corpus import canonical
from adapterci.data.checks.near_duplicates import similar_pairs
from adapterci.harvest.select import SEVERITY, Failure


@dataclass
class Cluster:
    """Failures with one reason, error type and category, and (when `near_duplicates`) nearly the same prompt."""

    id: str
    reason: str
    error: str
    category: str
    near_duplicates: bool
    members: list[Failure] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.members)

    @property
    def score(self) -> int:
        return self.size * SEVERITY[self.reason]

    @property
    def name(self) -> str:
        parts = [self.reason.replace("_", " ") + (f" {self.error}" if self.error else "")]
        if self.category:
            parts.append(f"category {self.category}")
        if self.near_duplicates:
            lines = [line for line in self.members[0].prompt.splitlines() if line.strip()] or [""]
            parts.append(f"near-duplicates of {lines[-1][:60]!r}")  # the last line: past a shared instruction
        return " · ".join(parts)

    def as_dict(self, rank: int) -> dict:
        return {"id": self.id, "rank": rank, "name": self.name, "reason": self.reason, "error_type": self.error,
                "category": self.category, "near_duplicates": self.near_duplicates, "size": self.size,
                "severity": SEVERITY[self.reason], "score": self.score,
                "versions": sorted({m.version for m in self.members})}


TEMPLATE_SHARE = 0.5
"""Word shingles in more than this share of the distinct texts compared (failures and background) are template
text, such as a shared instruction or system prompt, and left out. Higher than the `near_duplicates` check's 5%:
the variants of one cluster of near duplicates may well be a tenth of the texts, and their shared text is their
content."""


def components(texts: list[str], threshold: float, background: list[str] | None = None) -> np.ndarray:
    """A component label per text: texts equal up to whitespace, or near duplicates (estimated Jaccard of word
    shingles >= `threshold`), directly or through others, share one. `background` (other texts of the same
    source, e.g. prompts that did not fail) takes part only in telling template text from content."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    first: dict[str, int] = {}
    unique = np.array([first.setdefault(canonical(t), len(first)) for t in texts], dtype=np.int64)
    n = len(first)
    if n == 0:
        return unique
    context = list(first) + [t for t in dict.fromkeys(canonical(b) for b in background or []) if t not in first]
    pairs = np.array([(i, j) for i, j, _ in similar_pairs(context, threshold, template_share=TEMPLATE_SHARE) if j < n], dtype=np.int64)
    pairs = pairs.reshape(-1, 2)
    graph = coo_matrix((np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1][unique]  # one label per distinct text, then per text


def cluster(failures: list[Failure], threshold: float, background: list[str] | None = None) -> list[Cluster]:
    """The clusters of `failures`, ranked (highest score first; ids `c001`, `c002`... in that order);
    `background`: prompts of requests that did not fail (see `components`)."""
    groups: dict[tuple[str, str, str], list[Failure]] = defaultdict(list)
    for f in failures:
        groups[(f.reason, f.error, f.category)].append(f)
    found: list[Cluster] = []
    for (reason, error, category), group in groups.items():  # group by group: MinHash's memory grows with texts
        members = list(zip(group, components([f.prompt for f in group], threshold, background).tolist()))
        sizes = Counter(label for _, label in members)
        by_label: dict[int, list[Failure]] = defaultdict(list)
        rest = Cluster("", reason, error, category, False)
        for m, label in members:
            (by_label[label] if sizes[label] > 1 else rest.members).append(m)
        found += [Cluster("", reason, error, category, True, ms) for ms in by_label.values()]
        if rest.members:
            found.append(rest)
    found.sort(key=lambda c: (-c.score, -c.size, c.name))
    for rank, c in enumerate(found, 1):
        c.id = f"c{rank:03d}"
        c.members.sort(key=lambda m: m.timestamp)
    return found
