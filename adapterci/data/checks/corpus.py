"""Everything `adapterci check` looks at, loaded once: training and validation rows, the eval suites,
the problems met while reading them, and (with `--base-ref`) which rows are new."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from adapterci.data.checks.ngrams import words_of
from adapterci.data.dataset import Loaded, load_examples, load_preferences, load_suite
from adapterci.data.formats import Example
from adapterci.data.load import Source, display_path


@dataclass
class Part:
    """One group of rows: `train`, `validation`, `preferences` (the pairs of `data.preferences`) or an eval suite
    (`kind` task/safety/preference, `suite` its config)."""

    name: str
    kind: str
    loaded: Loaded
    suite: object | None = None

    @property
    def examples(self) -> list[Example]:
        return self.loaded.examples

    def where(self, base: Path) -> str:
        """The file whole-part failures are reported against (the part's name when it spans several files)."""
        files = self.loaded.files
        return display_path(files[0], base) if len(files) == 1 else self.name


@dataclass
class Corpus:
    train: Part
    validation: Part | None
    suites: list[Part]
    preferences: Part | None = None
    new_rows: set[tuple[str, int]] | None = None  # None: every row counts as new
    files: dict[str, Path] = field(default_factory=dict)  # display name -> absolute path

    @property
    def parts(self) -> list[Part]:
        return [*self.training_parts, *self.suites]

    @property
    def training_parts(self) -> list[Part]:
        """train, validation and preferences (those configured)."""
        return [self.train, *(p for p in (self.validation, self.preferences) if p is not None)]

    @property
    def training(self) -> list[Example]:
        """Rows the adapter learns from (train + validation + preference pairs): compared with each other and with
        the eval sets."""
        return [ex for part in self.training_parts for ex in part.examples]

    @cached_property
    def training_texts(self) -> list[str]:
        """`text_of` every training row."""
        return [text_of(ex) for ex in self.training]

    @cached_property
    def words(self):
        """The words of every training row, then of every eval item's prompt (suite by suite), split once for
        the near-duplicate and leakage checks."""
        return words_of(self.training_texts + [ex.prompt_text for p in self.suites for ex in p.examples])

    def is_new(self, source: Source) -> bool:
        """Whether a row is reported on: every row, or with `--base-ref` only rows added since the ref.
        Line 0 stands for the whole file (empty, unreadable) and is always reported."""
        return self.new_rows is None or source.line == 0 or (source.file, source.line) in self.new_rows


def load_corpus(cfg) -> Corpus:
    """Read every configured data file and eval set; bad rows become problems, never exceptions."""
    base = cfg.base_dir
    train = Part("train", "train", load_examples(cfg.data.patterns("train"), base, cfg.data.format, root=cfg.root))
    validation = None
    if cfg.data.validation is not None:
        validation = Part("validation", "validation",
                          load_examples(cfg.data.patterns("validation"), base, cfg.data.format, root=cfg.root))
    suites = [Part(f"eval:{s.name}", s.kind, load_suite(cfg, s), s) for s in cfg.eval.suites]
    prefs = Part("preferences", "preferences", load_preferences(cfg)) if cfg.data.preferences is not None else None
    corpus = Corpus(train, validation, suites, prefs)
    for part in corpus.parts:
        for path in part.loaded.files:
            corpus.files[display_path(path, base)] = path
    return corpus


def text_of(ex: Example) -> str:
    """The whole content of a row (prompt and answer, both answers of a pair) as compared by the duplicate,
    leakage and PII checks."""
    text = ex.prompt_text if ex.completion is None else f"{ex.prompt_text}\n\n{ex.completion}"
    return text if ex.rejected is None else f"{text}\n\n{ex.rejected}"


def canonical(text: str) -> str:
    """Text with whitespace runs collapsed: rows equal in this form are exact duplicates."""
    return " ".join(text.split())
