"""How well the leakage check catches paraphrased eval items, and what it flags in real training data.

    .venv/bin/python bench/paraphrase_leakage.py                      # the example project
    .venv/bin/python bench/paraphrase_leakage.py tests/projects/tiny --thresholds 0.7 0.75 0.8

For each `checks.leakage_containment` threshold: the training rows of the project that the leakage check flags
(false positives, if the project is clean), then, for each paraphrase below, the share of the eval items whose
paraphrase (added as one training row, with an answer) is caught, and by the exact word n-grams alone.
Paraphrases (deterministic, seed 0): a filler word inserted every 4 words (the attack of issue 23), a pair of
neighbouring words swapped every 5 words, common words replaced by synonyms (how -> in what way, the -> this,
get -> obtain, ...), every 4th word replaced by a filler, upper case without punctuation, and the first three
together."""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FILL = ("really", "very", "just", "also", "quite", "so", "actually", "truly", "basically", "the")
SYNONYMS = {"how": "in what way", "can": "could", "make": "build", "get": "obtain", "good": "great", "bad": "poor",
            "was": "felt", "the": "this", "is": "seems", "and": "plus", "very": "really", "i": "we", "my": "our",
            "to": "in order to", "a": "one", "of": "from", "with": "using", "without": "with no",
            "someone": "somebody"}


def insert4(text: str, rng: random.Random) -> str:
    return " ".join(w + (f" {rng.choice(FILL)}" if i % 4 == 3 else "") for i, w in enumerate(text.split()))


def swap5(text: str, rng: random.Random) -> str:
    words = text.split()
    for _ in range(max(1, len(words) // 5)):
        i = rng.randrange(max(len(words) - 1, 1))
        words[i:i + 2] = words[i:i + 2][::-1]
    return " ".join(words)


def synonyms(text: str, rng: random.Random) -> str:
    return " ".join(SYNONYMS.get(re.sub(r"\W", "", w.lower()), w) for w in text.split())


def replace4(text: str, rng: random.Random) -> str:
    return " ".join(rng.choice(FILL) if i % 4 == 2 else w for i, w in enumerate(text.split()))


def shout(text: str, rng: random.Random) -> str:
    return re.sub(r"[^\w\s]", "", text).upper()


def combined(text: str, rng: random.Random) -> str:
    return shout(swap5(insert4(text, rng), rng), rng)


PARAPHRASES = {"insert every 4 words": insert4, "swap pairs": swap5, "synonyms": synonyms,
               "replace every 4th word": replace4, "upper case, no punctuation": shout, "all of the first three":
               combined}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("project", nargs="?", type=Path, default=REPO)
    parser.add_argument("--thresholds", type=float, nargs="*", default=[0.7, 0.75, 0.8])
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from adapterci.config import load_config
    from adapterci.data.checks.corpus import load_corpus
    from adapterci.data.checks.leakage import check_leakage
    from adapterci.data.formats import Example, Message
    from adapterci.data.load import Source

    cfg = load_config(args.project / "adapterci.yaml")
    clean = load_corpus(cfg)
    items = [(suite.name, ex) for suite in clean.suites for ex in suite.examples]
    rows = len(clean.training)
    print(f"{args.project}: {rows} training rows, {len(items)} eval items")
    for threshold in args.thresholds:
        cfg.checks.leakage_containment = threshold
        started = time.perf_counter()
        flagged = {(f.file, f.line) for f in check_leakage(load_corpus(cfg), cfg).failures}
        seconds = time.perf_counter() - started
        print(f"threshold {threshold}: {len(flagged)} of {rows} real training rows flagged "
              f"({len(flagged) / rows:.2%}) in {seconds:.2f} s")
        for name, paraphrase in PARAPHRASES.items():
            rng, corpus = random.Random(0), load_corpus(cfg)
            added = [Example((Message("user", paraphrase(ex.prompt_text, rng)),), ex.completion or "I can't help "
                             "with that.", Source("paraphrases.jsonl", k), "chat") for k, (_, ex) in enumerate(items, 1)]
            corpus.train.loaded.examples.extend(added)
            result = check_leakage(corpus, cfg)
            caught = {f.line for f in result.failures if f.file == "paraphrases.jsonl"}
            exact = {f.line for f in result.failures if f.file == "paraphrases.jsonl" and "paraphrase" not in f.message}
            print(f"  {name:28s} caught {len(caught):4d}/{len(items)} ({len(caught) / len(items):6.1%}); "
                  f"exact n-grams alone {len(exact)}")


if __name__ == "__main__":
    main()
