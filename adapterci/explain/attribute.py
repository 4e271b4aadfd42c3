"""`explain(cfg)`: which training rows made the candidate regress.

Order: the run's eval results and item-level diff are read (no eval results: exit 2); the regressions are
grouped by suite, failure type and label (a label regression and a safety regression have different causes); the
training rows in scope are loaded (with `base_ref`, the rows added or changed since that git ref; else all);
then the rows are ranked per group, by LoRA gradient features when affordable, else by text similarity, and
`explain/attribution.json` is written.

The gradient score of a row is the mean, over the group's regressed items, of the cosine similarity between
the row's gradient feature and the feature of grad L(the candidate's wrong answer), as LESS scores training
rows against target examples: a gradient step on a row with a high score makes the wrong answer more likely
(TracIn's first-order argument). Gradients are taken at the champion adapter when there is one, i.e. before
the new rows moved the model: at the candidate, the rows that caused the regression are already fitted and
their gradients are small and point elsewhere (measured: bench/attribution.py). Without a champion they are
taken at the candidate."""

from __future__ import annotations

import dataclasses
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

from adapterci import __version__
from adapterci.console import log_line
from adapterci.data.checks.corpus import text_of
from adapterci.data.dataset import load_training_data
from adapterci.data.gitdiff import added_lines
from adapterci.data.load import display_path
from adapterci.errors import StageFailed, UsageError
from adapterci.eval.diff import item_diff
from adapterci.eval.items import read_suite
from adapterci.eval.results import EvalResults
from adapterci.eval.scoring import load_model
from adapterci.explain.gradients import features
from adapterci.explain.textsim import rank
from adapterci.fsio import read_json, write_json_atomic
from adapterci.modelio import load_tokenizer
from adapterci.prompting import PromptFormat
from adapterci.runs import RunDir, run_dir_for
from adapterci.train.backends import training_precision
from adapterci.train.data import tokenize_examples

METHODS = ("auto", "gradient", "text")


def explain(cfg, run_dir: str | Path | None = None, items: int = 10, top: int = 10, base_ref: str | None = None,
            method: str = "auto", dim: int = 8192, log: Callable[[str], None] = log_line) -> dict[str, Any]:
    """Rank the training rows by their influence on the run's top regressions (up to `items` per group of
    suite and failure type); keep the `top` rows of each group. Writes and returns explain/attribution.json."""
    rd = run_dir_for(cfg, run_dir)
    with rd.locked():
        return _explain(cfg, rd, items, top, base_ref, method, dim, log)


def _explain(cfg, rd: RunDir, items: int, top: int, base_ref: str | None, method: str, dim: int,
             log: Callable[[str], None]) -> dict[str, Any]:
    if method not in METHODS:
        raise UsageError(f"unknown attribution method {method!r}: use one of {', '.join(METHODS)}")
    started, cpu = time.perf_counter(), time.process_time()
    results = EvalResults.load(rd.eval_json)
    groups = _groups(regression_records(cfg, rd, results), items)
    rows, added, scope = _scope(cfg, base_ref)
    data: dict[str, Any] = {"adapterci_version": __version__, "method": None, "dim": None, "scope": scope,
                            "base_ref": base_ref, "rows_scored": len(rows), "items_per_group": items,
                            "fallback_reason": None, "groups": []}
    if groups and rows:
        adapter = _gradient_point(results, rd)
        chosen, reason = _choose(method, adapter, cfg, rows)
        scores = None
        if chosen == "gradient":
            try:
                scores = _gradient_scores(cfg, adapter, rows, groups, dim)
                data["dim"] = dim
            except (ValueError, OSError, RuntimeError) as exc:  # RuntimeError: torch, e.g. out of memory
                if method == "gradient":
                    raise StageFailed("explain", f"cannot compute gradient features: {exc}") from exc
                chosen, reason = "text", f"gradient features failed ({exc})"
        if scores is None:
            scores = _text_scores(rows, groups)
        data["method"], data["fallback_reason"] = chosen, reason
        data["groups"] = [_ranked(g, s, rows, added, top) for g, s in zip(groups, scores)]
    data["seconds"] = round(time.perf_counter() - started, 3)
    data["cpu_seconds"] = round(time.process_time() - cpu, 3)
    write_json_atomic(rd.attribution_json, data)
    log(f"explain: {len(data['groups'])} group(s) of regressions, {len(rows)} rows ranked by "
        f"{data['method'] or 'nothing'} in {data['seconds']:.1f}s")
    return data


def regression_records(cfg, rd, results=None) -> list[dict[str, Any]]:
    """The item-level diff of the run in `rd` (eval/regressions.jsonl; recomputed from the eval results for
    runs written before it existed)."""
    if rd.eval_regressions.is_file():
        try:
            return [json.loads(line) for line in rd.eval_regressions.read_text(encoding="utf-8").splitlines() if line]
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read {rd.eval_regressions}: {exc}; re-run `adapterci eval`") from None
    return item_diff(results or EvalResults.load(rd.eval_json), cfg.eval)


def _groups(records: list[dict[str, Any]], items: int) -> list[dict[str, Any]]:
    """Regressions by suite, failure type and label (a positive item read as negative and a negative one read as
    positive pull in opposite directions), largest group first; each keeps its first `items` (the most
    confident regressions come first in the diff)."""
    grouped: dict[tuple[str, str, str | None], list[dict]] = defaultdict(list)
    for r in records:
        if r["change"] == "regression":
            grouped[(r["suite"], r["failure"], r.get("label"))].append(r)
    order = sorted(grouped, key=lambda k: -len(grouped[k]))
    return [{"suite": s, "failure": f, "label": label, "regressions": len(grouped[(s, f, label)]),
             "items": grouped[(s, f, label)][:items]} for s, f, label in order]


def _scope(cfg, base_ref: str | None):
    """The training rows to rank (validation rows are not trained on), whether each was added or changed since
    `base_ref`, and the scope in words. With a base ref only those rows are ranked (all when there are none)."""
    train, _ = load_training_data(cfg)
    if train.problems:
        raise UsageError(f"the training data has {len(train.problems)} problem(s), e.g. {train.problems[0]}: "
                         "run `adapterci check`")
    rows = train.examples
    if base_ref is None:
        return rows, [False] * len(rows), "all training rows"
    new = added_lines({display_path(p, cfg.base_dir): p for p in train.files}, cfg.base_dir, base_ref)
    added = [ex for ex in rows if (ex.source.file, ex.source.line) in new]
    if not added:
        return rows, [False] * len(rows), f"all training rows (none added or changed since `{base_ref}`)"
    return added, [True] * len(added), f"rows added or changed since `{base_ref}`"


def _gradient_point(results, rd) -> Path:
    """The adapter whose gradients rank the rows: the champion eval compared with, else the candidate (the run's
    adapter unless eval was given another)."""
    models = results.data.get("models") or {}
    for role in ("champion", "candidate"):
        path = (models.get(role) or {}).get("adapter")
        if path and Path(path).is_dir():
            return Path(path)
    return rd.adapter


def _choose(method: str, adapter: Path, cfg, rows) -> tuple[str, str | None]:
    """`gradient` or `text`, and why text similarity is used when `auto` falls back to it."""
    if method == "text":
        return "text", None
    if not (adapter / "adapter_config.json").is_file():
        if method == "gradient":
            raise UsageError(f"no adapter in {adapter}: gradient attribution needs the champion or candidate adapter")
        return "text", f"no adapter is in {adapter}"
    if method == "gradient":
        return "gradient", None

    try:
        trained = int(read_json(adapter / "adapterci-train.json")["train_tokens"])
    except (OSError, ValueError, KeyError, TypeError):
        return "gradient", None

    tokens = sum(len(ids) for ids in load_tokenizer(cfg)([text_of(ex) for ex in rows])["input_ids"])
    if tokens > trained:
        return "text", (f"gradients of {len(rows)} rows ({tokens} tokens) would cost more than the training "
                        f"did ({trained} tokens)")
    return "gradient", None


def _item_examples(cfg, groups) -> dict[tuple[str, int], Any]:
    """The eval examples behind the grouped regressions, checked against the run's item records."""
    suites = {s.name: s for s in cfg.eval.suites}
    wanted = {r["suite"] for g in groups for r in g["items"]}
    loaded = {}
    for name in wanted:
        if name not in suites:
            raise UsageError(f"eval suite `{name}` of the run is no longer in the config: re-run `adapterci eval`")
        loaded[name] = read_suite(cfg, suites[name]).examples
    out = {}
    for g in groups:
        for r in g["items"]:
            examples = loaded[r["suite"]]
            if r["index"] >= len(examples) or examples[r["index"]].prompt_text != r["prompt"]:
                raise UsageError(f"eval set `{r['suite']}` changed since the run ({r['source']}): re-run `adapterci eval`")
            out[(r["suite"], r["index"])] = examples[r["index"]]
    return out


def _gradient_scores(cfg, adapter: Path, rows, groups, dim: int) -> list[list[float]]:
    import numpy as np

    examples = _item_examples(cfg, groups)
    tokenizer = load_tokenizer(cfg)
    fmt = PromptFormat(cfg.prompt_template, tokenizer)
    limit = cfg.train.max_length

    def encode(exs) -> list[dict[str, list[int]]]:
        # as training tokenizes them; rows are cut at `train.max_length` as the trainer saw them
        tok = tokenize_examples(exs, fmt, tokenizer, 10**9, "truncate", cfg.train.completion_only_loss)
        return [{"input_ids": r["input_ids"][:limit], "labels": r["labels"][:limit]} for r in tok.rows]

    model = load_model(cfg, adapter, cfg.eval.seed)
    pad = tokenizer.pad_token_id
    batch = cfg.eval.batch_size
    bf16 = training_precision(cfg) == "bf16"  # the arithmetic the adapter was trained with here
    row_feats = _unit(features(model, encode(rows), pad, dim, cfg.train.seed, batch, bf16))
    pairs = [(examples[(r["suite"], r["index"])], r) for g in groups for r in g["items"]]
    wrong = [dataclasses.replace(ex, completion=r["answers"]["candidate"]) for ex, r in pairs]
    directions = _unit(features(model, encode(wrong), pad, dim, cfg.train.seed, batch, bf16))
    scores, start = [], 0
    for g in groups:
        n = len(g["items"])
        scores.append((row_feats @ directions[start:start + n].mean(axis=0)).tolist())
        start += n
    del model
    return scores if np.isfinite(np.array(scores)).all() else [[0.0] * len(rows) for _ in groups]


def _unit(x):
    import numpy as np

    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def _text_scores(rows, groups) -> list[list[float]]:
    texts = [text_of(ex) for ex in rows]
    return [rank(texts, [f"{r['prompt']}\n\n{r['answers']['candidate']}" for r in g["items"]]) for g in groups]


def _ranked(group: dict[str, Any], scores: list[float], rows, added: list[bool], top: int) -> dict[str, Any]:
    """The group's `top` rows, highest score first."""
    order = sorted(range(len(rows)), key=lambda i: -scores[i])[:top]
    return {"suite": group["suite"], "failure": group["failure"], "label": group["label"],
            "regressions": group["regressions"],
            "items": [r["source"] for r in group["items"]],
            "rows": [{"source": str(rows[i].source), "added": added[i], "score": round(float(scores[i]), 6),
                      "prompt": rows[i].prompt_text, "answer": rows[i].completion} for i in order]}

