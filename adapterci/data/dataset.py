"""Load the configured training, validation and eval data as `Example`s."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from adapterci.data.formats import Example, normalise
from adapterci.data.load import Problem, Source, display_path, expand, read_jsonl


@dataclass
class Loaded:
    """Examples read from some files, and every problem met on the way."""

    examples: list[Example] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def load_examples(patterns: list[str], base: Path, fmt: str = "auto", require_completion: bool = True,
                  display_base: Path | None = None, root: Path | None = None) -> Loaded:
    """Read and normalise every row of the files matched by `patterns` (relative to `base`; every file must
    lie inside `root`, default `base`)."""
    out = Loaded()
    files = expand(patterns, base, root)
    if not files:
        out.problems.append(Problem(Source(", ".join(patterns), 0), "no file matches"))
    for path in files:
        out.files.append(path)
        rows, problems = read_jsonl(path, display_base or base)
        out.problems.extend(problems)
        for row in rows:
            result = normalise(row, fmt, require_completion)
            (out.problems if isinstance(result, Problem) else out.examples).append(result)
    return out


def split_validation(examples: list[Example], fraction: float) -> tuple[list[Example], list[Example]]:
    """Deterministic split by content hash: a row stays on its side when other rows are added."""
    train, valid = [], []
    for ex in examples:
        digest = hashlib.sha256(repr(ex.as_dict()).encode()).digest()
        (valid if int.from_bytes(digest[:8], "big") / 2**64 < fraction else train).append(ex)
    return train, valid


def load_training_data(cfg) -> tuple[Loaded, Loaded]:
    """The training and validation examples of a `Config` (validation from its file or split off train)."""
    base = cfg.base_dir
    train = load_examples(cfg.data.patterns("train"), base, cfg.data.format, root=cfg.root)
    if cfg.data.validation is not None:
        valid = load_examples(cfg.data.patterns("validation"), base, cfg.data.format, root=cfg.root)
    else:
        valid = Loaded()
        if cfg.data.validation_split:
            train.examples, valid.examples = split_validation(train.examples, cfg.data.validation_split)
    return train, valid


def load_preferences(cfg) -> Loaded:
    """The preference pairs of `data.preferences` (empty without it)."""
    if cfg.data.preferences is None:
        return Loaded()
    return load_examples(cfg.data.patterns("preferences"), cfg.base_dir, "auto", root=cfg.root)


def wrong_kind(examples: list[Example], pairs: bool, method: str, key: str) -> list[Problem]:
    """A problem for every row of `key` (e.g. `data.train`) that is a preference pair where `method` wants
    supervised rows (`pairs` False), or the reverse."""
    if pairs:
        return [Problem(ex.source, f"a supervised row in `{key}`, but `train.method: {method}` trains on preference "
                                   "pairs (`prompt`, `chosen`, `rejected`)") for ex in examples if not ex.is_pair]
    hint = ("`train.method: dpo` or `orpo`, or " if method == "sft" else "") + \
        "`train.method: sft+dpo` with the pairs in `data.preferences`"
    return [Problem(ex.source, f"a preference pair (`chosen`/`rejected`) in `{key}`, but `train.method: {method}` "
                               f"trains on supervised rows: use {hint}") for ex in examples if ex.is_pair]


def method_problems(cfg, train: Loaded, valid: Loaded, prefs: Loaded) -> list[Problem]:
    """Rows whose kind (supervised row or preference pair) is not what `train.method` trains on."""
    method = cfg.train.method
    pairs = method in ("dpo", "orpo")
    out = wrong_kind(train.examples, pairs, method, "data.train") + wrong_kind(valid.examples, pairs, method,
                                                                                "data.validation")
    return out + wrong_kind(prefs.examples, True, method, "data.preferences")


def load_suite(cfg, suite) -> Loaded:
    """The items of one eval suite; safety items need no expected answer."""
    rel = display_path(suite.path, cfg.base_dir)
    return load_examples([rel], cfg.base_dir, "auto", require_completion=suite.kind != "safety", root=cfg.root)
