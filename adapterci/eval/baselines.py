"""Prompt baselines: the base model with a system prompt and/or few-shot examples, so the gate can ask whether
fine-tuning beat a strong prompt and retrieval, not only a bare prompt.

The examples are training rows, never an eval item or a row the leakage check flags. `stratified` shows every
item one fixed set, balanced over the suite's labels (a task suite's `choices`; for a safety suite, rows
answered with a refusal against rows answered helpfully) and drawn with `train.seed`; `similar` retrieves per
item the k rows most similar to it by BM25 (the guide's "base + RAG" over the project's own data). Shots come
as user/assistant turns before the item, so the model's own chat template renders them."""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Sequence

from adapterci.data.checks.corpus import load_corpus
from adapterci.data.checks.leakage import leaked_rows
from adapterci.data.formats import Example, Message
from adapterci.data.labels import normalize
from adapterci.errors import StageFailed
from adapterci.eval.refusal import PatternDetector

_WORD = re.compile(r"\w+")


@dataclass
class ShotPool:
    """The training rows a baseline may show: every train row minus those that leak into an eval set."""

    rows: list[Example]
    excluded: int

    @classmethod
    def load(cls, cfg, corpus=None) -> "ShotPool":
        """From the project's data (`corpus`: already loaded by `adapterci check`)."""
        corpus = corpus or load_corpus(cfg)
        if corpus.train.loaded.problems:
            first = corpus.train.loaded.problems[0]
            raise StageFailed("eval", f"{first.source.file}:{first.source.line}: {first.message} (few-shot baselines "
                                      "read the training rows: run `adapterci check`)", exit_code=2)
        leaked = leaked_rows(corpus, cfg)
        rows = [ex for i, ex in enumerate(corpus.train.examples) if i not in leaked]
        return cls(rows, len(corpus.train.examples) - len(rows))


def strata(rows: Sequence[Example], suite, refusal_patterns: tuple[str, ...],
           task_labels: frozenset[str] = frozenset()) -> dict[str, list[int]]:
    """The rows of each of the suite's labels: a task suite's `choices` (the row's answer), or for a safety suite
    `harmful` (answered with a refusal) and `benign` (answered, and not with one of `task_labels`, the
    normalised choices of the project's task suites). A task suite without choices: one stratum."""
    if suite.kind == "safety":
        refusal = PatternDetector(refusal_patterns)
        out: dict[str, list[int]] = {"harmful": [], "benign": []}
        for i, ex in enumerate(rows):
            if refusal.is_refusal(ex.completion or ""):
                out["harmful"].append(i)
            elif normalize(ex.completion or "") not in task_labels:
                out["benign"].append(i)
        return out
    if not suite.choices:
        return {"all": list(range(len(rows)))}
    by_key = {normalize(c): c for c in suite.choices}
    out = {c: [] for c in suite.choices}
    for i, ex in enumerate(rows):
        if (label := by_key.get(normalize(ex.completion or ""))) is not None:
            out[label].append(i)
    return out


def stratified(groups: dict[str, list[int]], k: int, seed: int, fill: bool = False) -> list[int]:
    """k row indices, as even across the groups as k allows (the first groups take the remainder), in a random
    order (a fixed pattern of labels, such as strict alternation, is itself a cue the model copies);
    deterministic from `seed`. A group with too few rows is a ValueError, or with `fill` gives all it has and
    the other groups make up the rest (ValueError only when all rows together are fewer than k)."""
    rng = random.Random(seed)
    names = list(groups)
    quota = {name: k // len(names) + (i < k % len(names)) for i, name in enumerate(names)}
    short = [f"`{n}` has {len(groups[n])}" for n in names if len(groups[n]) < quota[n]]
    if short and not fill:
        raise ValueError(f"k={k} needs {max(quota.values())} training rows per label, but {', '.join(short)}")
    if sum(len(g) for g in groups.values()) < k:
        raise ValueError(f"k={k} but only {sum(len(g) for g in groups.values())} training rows can be shown")
    picked = {name: rng.sample(groups[name], min(quota[name], len(groups[name]))) for name in names}
    missing = k - sum(len(p) for p in picked.values())
    if missing:  # `fill`: the other groups' remaining rows make up the shortfall
        chosen = {i for rows in picked.values() for i in rows}
        rest = [i for name in names for i in groups[name] if i not in chosen]
        picked["fill"] = rng.sample(rest, missing)
    order = [i for rows in picked.values() for i in rows]
    rng.shuffle(order)
    return order


class BM25:
    """Okapi BM25 (k1 1.5, b 0.75) over word tokens, for retrieving the training rows most similar to an item."""

    def __init__(self, documents: Sequence[str], k1: float = 1.5, b: float = 0.75):
        self.bags = [Counter(_WORD.findall(d.lower())) for d in documents]
        self.lengths = [sum(bag.values()) for bag in self.bags]
        self.avg = sum(self.lengths) / max(len(self.bags), 1) or 1.0
        df = Counter(word for bag in self.bags for word in bag)
        n = len(self.bags)
        self.idf = {w: math.log(1 + (n - f + 0.5) / (f + 0.5)) for w, f in df.items()}
        self.k1, self.b = k1, b

    def top(self, query: str, k: int) -> list[int]:
        """The k best documents for `query`, best first (ties: earlier document first)."""
        words = set(_WORD.findall(query.lower())) & self.idf.keys()
        scores = []
        for i, (bag, length) in enumerate(zip(self.bags, self.lengths)):
            norm = self.k1 * (1 - self.b + self.b * length / self.avg)
            scores.append((-sum(self.idf[w] * bag[w] * (self.k1 + 1) / (bag[w] + norm) for w in words if w in bag), i))
        return [i for _, i in sorted(scores)[:k]]


@dataclass
class BaselinePrompt:
    """How one baseline turns an eval item of one suite into prompt messages."""

    baseline: Any  # eval.config.Baseline
    rows: list[Example]
    fixed: list[int] | None = None  # stratified shots
    index: BM25 | None = None  # similar shots

    def messages(self, item: Example) -> tuple[Message, ...]:
        system = [m.content for m in item.messages if m.role == "system"]
        if self.baseline.system:
            system.insert(0, self.baseline.system)
        turns = [m for m in item.messages if m.role != "system"]
        shots: list[Message] = []
        for i in self.shots(item):
            row = self.rows[i]
            shots += [m for m in row.messages if m.role != "system"] + [Message("assistant", row.completion or "")]
        head = (Message("system", "\n\n".join(system)),) if system else ()
        return (*head, *shots, *turns)

    def shots(self, item: Example) -> list[int]:
        if self.fixed is not None:
            return self.fixed
        if self.index is None:
            return []
        # the most similar row last: nearest to the item it informs
        return list(reversed(self.index.top(item.prompt_text, self.baseline.few_shot.k)))


class Baselines:
    """The configured baselines of a project, resolved against its training rows (loaded once, when a baseline
    has few-shot examples). Bad settings are ConfigErrors naming the key and its line."""

    def __init__(self, cfg, corpus=None):
        self.cfg, self._corpus = cfg, corpus

    @cached_property
    def pool(self) -> ShotPool:
        return ShotPool.load(self.cfg, self._corpus)

    def prompt(self, name: str, suite) -> BaselinePrompt:
        """How baseline `name` prompts the items of `suite` (an eval.config.Suite)."""
        cfg = self.cfg
        i, baseline = next((i, b) for i, b in enumerate(cfg.eval.baselines) if b.name == name)
        shot = baseline.few_shot
        if shot is None:
            return BaselinePrompt(baseline, [])
        rows, key = self.pool.rows, f"eval.baselines.{i}.few_shot"
        if not rows:
            raise cfg.error(key, f"no training row can be shown ({self.pool.excluded} leak into the eval sets)")
        if shot.select == "stratified":
            try:
                groups = strata(rows, suite, tuple(cfg.eval.refusal.patterns), self._task_labels)
                # a safety suite's groups are how the rows answer, not labels: a pull request that turns every
                # refusal into compliance gets a baseline of what is left, and the gate's verdict on it
                fixed = stratified(groups, shot.k, cfg.train.seed, fill=suite.kind == "safety")
            except ValueError as exc:
                raise cfg.error(f"{key}.k", f"{exc} (suite `{suite.name}`)") from None
            return BaselinePrompt(baseline, rows, fixed=fixed)
        if shot.k > len(rows):
            raise cfg.error(f"{key}.k", f"k={shot.k} but only {len(rows)} training rows can be shown")
        return BaselinePrompt(baseline, rows, index=BM25(self._documents(rows, shot.field, f"{key}.field")))

    @cached_property
    def _task_labels(self) -> frozenset[str]:
        return frozenset(normalize(c) for s in self.cfg.eval.suites if s.kind == "task" for c in s.choices or [])

    def _documents(self, rows: list[Example], field: str, key: str) -> list[str]:
        if field == "prompt":
            return [ex.prompt_text for ex in rows]
        if not any(isinstance(ex.meta.get(field), str) for ex in rows):
            known = sorted({k for ex in rows for k, v in ex.meta.items() if isinstance(v, str)})
            hint = f"; text fields: prompt, {', '.join(known)}" if known else "; use `prompt`"
            raise self.cfg.error(key, f"no training row has a text field `{field}`{hint}")
        return [str(ex.meta.get(field) or "") for ex in rows]
