"""`adapterci ingest`: a reviewed queue -> validated items -> training rows and eval items appended to the project.

Items whose prompts are the same or near duplicates (MinHash, `checks.near_duplicate_threshold`) form a group:
a group that repeats a row already in the data (an eval item or a training row) is left out, and of every other
group one item is kept (the first in queue order), so that no prompt, nor a near duplicate of one, is ever on
both sides or twice on one. `harvest.holdout` of each cluster's kept items become eval items (`quotas`), the rest
training rows."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapterci import __version__
from adapterci.canary.logs import SHOWN_PROBLEMS
from adapterci.data.dataset import load_examples, load_training_data
from adapterci.data.load import display_path, expand
from adapterci.data.pii import scan_texts
from adapterci.errors import UsageError
from adapterci.fsio import write_text_atomic
from adapterci.harvest.cluster import components
from adapterci.harvest.queue import PROVENANCE, REVIEW_LABELS, ReviewError, read_review

REQUIRED = ("id", "cluster", "prompt", "request_id", "version", "time")


@dataclass
class Ingest:
    """What an ingest read, kept and appended where."""

    items: int
    discarded: int
    train: list[dict[str, Any]]
    eval: list[dict[str, Any]]
    known: list[str]  # items left out: the same as or near duplicates of rows already in the data
    repeats: list[str]  # items left out: the same prompt as, or a near duplicate of, an item kept
    train_file: str
    eval_file: str
    suite: str
    branch: str | None = None
    commit: str | None = None
    clusters: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"adapterci_version": __version__, "items": self.items, "discarded": self.discarded,
                "train_rows": len(self.train), "eval_items": len(self.eval), "already_in_data": self.known,
                "repeats": self.repeats,
                "train_file": self.train_file, "eval_file": self.eval_file, "suite": self.suite,
                "clusters": self.clusters, "branch": self.branch, "commit": self.commit}


def ingest(cfg, path: str | Path, branch: str | None = None) -> Ingest:
    """Validate the reviewed queue at `path`, split it and append it to `harvest.train_file` and the eval suite's
    file; with `branch`, on a new git branch, committed. ReviewError (exit 2) naming file:line for bad items,
    UsageError for an existing branch; nothing is appended then."""
    suite = _suite(cfg)
    train_path = _train_file(cfg)
    items = validate(read_review(Path(path)), suite.choices)
    kept = [(where, item) for where, item in items if item["label"] != "discard"]
    if branch is not None:
        _check_branch(cfg.root, branch, [train_path, suite.path])
    train, evals, known, repeats = split(cfg, kept)
    result = Ingest(len(items), len(items) - len(kept), [], [], known, repeats,
                    display_path(train_path, cfg.base_dir), display_path(suite.path, cfg.base_dir), suite.name, branch)
    result.train = [training_row(item, where, cfg.data.format) for where, item in train]
    result.eval = [eval_item(item, where) for where, item in evals]
    for side, chosen in (("train", train), ("eval", evals)):
        for _, item in chosen:
            result.clusters.setdefault(item["cluster"], {"name": item.get("cluster_name", ""), "train": 0, "eval": 0})
            result.clusters[item["cluster"]][side] += 1
    if branch is not None and (switched := _git(cfg.root, "switch", "--quiet", "-c", branch)).returncode:
        raise UsageError(f"git could not create the branch {branch!r}: {switched.stderr.strip()} (nothing was appended)")
    _append(train_path, result.train)
    _append(suite.path, result.eval)
    if branch is not None:
        result.commit = _commit(cfg.root, [train_path, suite.path], commit_message(result))
    return result


def validate(rows: list[tuple[str, Any]], choices: list[str] | None) -> list[tuple[str, dict[str, Any]]]:
    """The reviewed items, or ReviewError listing every bad one by file:line: a field harvest wrote is missing,
    the label is not in the label set, no reviewer, an empty answer (or one not among the suite's `choices`),
    personal data or a secret in the prompt or the answer (the project's detector, shown masked)."""
    problems, out = [], []
    for where, item in rows:
        if isinstance(item, ValueError):
            problems.append(f"{where}: {item}")
            continue
        why = _problem(item, choices)
        if why:
            problems.append(f"{where}: {why}")
        else:
            out.append((where, item))
    if not rows:
        raise ReviewError("the reviewed queue has no items")
    items = [(where, item) for where, item in rows if isinstance(item, dict)]
    texts = [f"{item.get('prompt')}\n{item.get('answer')}" for _, item in items]
    for index, match in scan_texts(texts):  # a reviewer may paste what harvest kept out
        problems.append(f"{items[index][0]}: contains {match.kind.replace('_', ' ')} ({match.redacted}): remove it")
    if problems:
        more = f"\n  ... and {len(problems) - SHOWN_PROBLEMS} more" if len(problems) > SHOWN_PROBLEMS else ""
        raise ReviewError(f"{len(problems)} bad reviewed item(s), nothing appended:\n  "
                          + "\n  ".join(problems[:SHOWN_PROBLEMS]) + more)
    return out


def _problem(item: dict[str, Any], choices: list[str] | None) -> str | None:
    missing = [k for k in REQUIRED if not isinstance(item.get(k), str) or not item[k].strip()]
    if missing:
        return f"missing {', '.join(f'`{k}`' for k in missing)} (a field harvest wrote: keep it as it is)"
    label = item.get("label")
    if not isinstance(label, str) or not label.strip():
        return f"no `label`: pick one of {', '.join(REVIEW_LABELS)}"
    if label not in REVIEW_LABELS:
        return f"unknown label {label[:40]!r}: the label set is {', '.join(REVIEW_LABELS)}"
    if not isinstance(item.get("reviewer"), str) or not item["reviewer"].strip():
        return "no `reviewer`: name who reviewed the item"
    if label == "discard":
        return None
    answer = item.get("answer")
    if not isinstance(answer, str) or not answer.strip():
        return "empty `answer`: write the correct answer (or label the item `discard`)"
    if choices and answer.strip() not in choices:
        return f"answer {answer[:40]!r} is not one of the eval suite's choices ({', '.join(choices)})"
    return None


def split(cfg, items: list[tuple[str, dict]]) -> tuple[list, list, list[str], list[str]]:
    """(training items, eval items, items left out as already in the data, items left out as repeats), the last
    two as `file:line: why`."""
    existing_eval = [ex.prompt_text for s in cfg.eval.suites for ex in _suite_examples(cfg, s)]
    train_data, valid_data = load_training_data(cfg)
    existing_train = [ex.prompt_text for ex in train_data.examples + valid_data.examples]
    prompts = [item["prompt"] for _, item in items]
    labels = components(prompts + existing_eval + existing_train, cfg.checks.near_duplicate_threshold)
    n, m = len(prompts), len(existing_eval)
    near_eval, near_train = set(labels[n:n + m].tolist()), set(labels[n + m:].tolist())
    groups: dict[int, list[int]] = defaultdict(list)
    for i in sorted(range(n), key=lambda i: _order(items[i])):
        groups[int(labels[i])].append(i)
    known, repeats, reps = [], [], []
    for label, members in groups.items():
        if label in near_eval or label in near_train:
            what = "an eval item" if label in near_eval else "a training row"
            known += [f"{items[i][0]}: the same as or a near duplicate of {what} already there" for i in members]
            continue
        reps.append(members[0])
        repeats += [f"{items[i][0]}: the same prompt as, or a near duplicate of, {items[members[0]][0]}"
                    for i in members[1:]]
    cluster_of = {i: items[i][1]["cluster"] for i in reps}
    target = quotas(Counter(cluster_of.values()), cfg.harvest.holdout)
    held: Counter = Counter()
    train, evals = [], []
    for i in sorted(reps, key=lambda i: hashlib.sha256(prompts[i].encode()).hexdigest()):
        c = cluster_of[i]
        if held[c] < target[c]:
            held[c] += 1
            evals.append(items[i])
        else:
            train.append(items[i])
    return sorted(train, key=_order), sorted(evals, key=_order), known, repeats


def quotas(sizes: dict[str, int], share: float) -> dict[str, int]:
    """Eval items per cluster: `share` of each, rounded by largest remainder so that the total is `share` of
    all items even when every cluster is small (ties: clusters in order)."""
    exact = {c: share * n for c, n in sizes.items()}
    out = {c: int(x) for c, x in exact.items()}
    left = round(share * sum(sizes.values())) - sum(out.values())
    for c in sorted(exact, key=lambda c: (-(exact[c] - out[c]), c))[:max(left, 0)]:
        out[c] += 1
    return out


def _order(entry: tuple[str, dict]) -> tuple:
    return (entry[1].get("rank") if isinstance(entry[1].get("rank"), int) else 0, entry[1]["id"])


def _suite_examples(cfg, suite):
    return load_examples([display_path(suite.path, cfg.base_dir)], cfg.base_dir, "auto", require_completion=False,
                         root=cfg.root).examples


def provenance(item: dict[str, Any], where: str) -> dict[str, Any]:
    """The provenance a row keeps: where it came from in production and who reviewed it."""
    return {"source": "adapterci harvest", **{k: item.get(k) for k in PROVENANCE if k in item},
            "label": item["label"], "reviewer": item["reviewer"], "draft": item.get("draft", ""), "queue": where}


def training_row(item: dict[str, Any], where: str, fmt: str) -> dict[str, Any]:
    """A training row in the data's format (`data.format`; chat when `auto`), with `provenance`."""
    prompt, answer = item["prompt"], item["answer"]
    if fmt == "alpaca":
        row: dict[str, Any] = {"instruction": prompt, "input": "", "output": answer}
    elif fmt == "prompt_completion":
        row = {"prompt": prompt, "completion": answer}
    else:
        row = {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]}
    return {**row, "provenance": provenance(item, where)}


def eval_item(item: dict[str, Any], where: str) -> dict[str, Any]:
    """An eval item of a task suite: prompt, expected answer, category, `provenance`."""
    out = {"prompt": item["prompt"], "completion": item["answer"].strip()}
    if item.get("category"):
        out["category"] = item["category"]
    return {**out, "provenance": provenance(item, where)}


def commit_message(result: Ingest) -> str:
    lines = [f"data: {len(result.train)} training row(s), {len(result.eval)} eval item(s) from production failures",
             "", f"Reviewed with `adapterci ingest` ({result.train_file}, {result.eval_file}). Clusters:"]
    lines += [f"- {cid} {c['name']}: {c['train']} train, {c['eval']} eval"
              for cid, c in sorted(result.clusters.items())]
    return "\n".join(lines) + "\n"


def _suite(cfg):
    tasks = [s for s in cfg.eval.suites if s.kind == "task"]
    name = cfg.harvest.eval_suite
    if name is None:
        if not tasks:
            raise cfg.error("eval.suites", "ingest needs a task suite for the eval items: add one")
        return tasks[0]
    found = next((s for s in cfg.eval.suites if s.name == name), None)
    if found is None or found.kind != "task":
        raise cfg.error("harvest.eval_suite", f"{name!r} is not a task suite of `eval.suites` "
                                              f"(task suites: {', '.join(s.name for s in tasks) or 'none'})")
    return found


def _train_file(cfg) -> Path:
    configured = cfg.harvest.train_file
    files = expand(cfg.data.patterns("train"), cfg.base_dir, cfg.root)
    if configured is None:
        patterns = cfg.data.patterns("train")
        if len(patterns) != 1 or len(files) != 1 or any(c in patterns[0] for c in "*?["):
            raise cfg.error("harvest.train_file", "`data.train` names several files: set `harvest.train_file` "
                                                  "to the one that gets the training rows")
        return files[0]
    path = cfg.resolve(configured)
    if path not in files:
        raise cfg.error("harvest.train_file", f"{configured} is not one of `data.train`'s files: training would "
                                              "never read the rows appended to it")
    return path


def _append(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if old and not old.endswith("\n"):
        old += "\n"
    write_text_atomic(path, old + "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)


def _check_branch(root: Path, branch: str, files: list[Path]) -> None:
    """Refuse (UsageError) before anything is appended: no git repository, a bad or existing branch name, or
    uncommitted changes in the files the commit would hold."""
    if _git(root, "rev-parse", "--verify", "--quiet", "HEAD").returncode:
        raise UsageError(f"--branch needs a git repository with a commit, and {root} has none")
    if _git(root, "check-ref-format", "--branch", branch).returncode:
        raise UsageError(f"--branch {branch!r} is not a valid branch name")
    if not _git(root, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}").returncode:
        raise UsageError(f"--branch {branch!r} already exists: name a new branch (nothing was appended)")
    rels = [str(p.resolve().relative_to(root.resolve())) for p in files]
    if _git(root, "diff", "--quiet", "HEAD", "--", *rels).returncode:
        raise UsageError(f"uncommitted changes in {', '.join(rels)}: commit or stash them first, so that the "
                         "branch holds only the reviewed rows")


def _commit(root: Path, files: list[Path], message: str) -> str:
    rels = [str(p.resolve().relative_to(root.resolve())) for p in files]
    added = _git(root, "add", "--", *rels)
    done = _git(root, "commit", "--quiet", "-m", message, "--", *rels) if not added.returncode else added
    if done.returncode:
        raise UsageError(f"git could not commit the rows on the new branch: {done.stderr.strip()} (the rows are "
                         "appended in the work tree; commit them by hand)")
    return _git(root, "rev-parse", "HEAD").stdout.strip()
