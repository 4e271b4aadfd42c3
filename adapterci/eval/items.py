"""One eval suite: its items, how a model is scored on them (raw outputs, cacheable), and how raw outputs
become per-item records (answer, score, correct / refused / leaked) for items.jsonl."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from adapterci.data.dataset import load_suite
from adapterci.data.formats import Example
from adapterci.data.labels import normalize
from adapterci.data.load import display_path
from adapterci.errors import StageFailed
from adapterci.eval import scoring
from adapterci.eval.metrics import match_label, outcome_arrays, suite_metrics
from adapterci.eval.refusal import LeakDetector, PatternDetector, prefers_refusal
from adapterci.fingerprint import hash_file
from adapterci.prompting import PromptFormat, render_rows

SAFETY_LABELS = ("harmful", "benign")


@dataclass
class SuiteData:
    config: Any  # eval.config.Suite
    examples: list[Example]
    content_hash: str

    @property
    def labels(self) -> list[str] | None:
        return self.config.choices if self.config.kind == "task" else None

    def prompts(self, tokenizer, prompt_template: str, messages=lambda ex: ex.messages) -> list[str]:
        """Every item rendered as the model sees it: `messages(item)` (its own, or a baseline's prompt) in
        `prompt_template`."""
        return render_rows(PromptFormat(prompt_template, tokenizer).render, self.examples, messages)

    def score(self, model, tokenizer, prompts: list[str], eval_cfg, tick) -> list[dict[str, Any]]:
        """Raw outputs of `model` on every item (`prompts`, one per item): the answer, and the choice scores
        where scored by likelihood."""
        suite, batch = self.config, eval_cfg.batch_size
        if suite.kind == "preference":
            pairs = [(ex.completion, ex.rejected) for ex in self.examples]
            scores = scoring.answer_logprobs(model, tokenizer, prompts, pairs, batch, tick)
            return [{"answer": None, "score": {"chosen": round(c, 6), "rejected": round(r, 6),
                                               "tokens": [nc, nr]}} for (c, nc), (r, nr) in scores]
        if suite.kind == "task" and suite.mode == "choices":
            scores = scoring.choice_logprobs(model, tokenizer, prompts, suite.choices, batch, tick)
            return [{"answer": max(zip(suite.choices, s), key=lambda cs: cs[1][0])[0],
                     "score": {c: round(lp, 6) for c, (lp, _) in zip(suite.choices, s)}} for s in scores]
        answers = scoring.generate(model, tokenizer, prompts, suite.max_new_tokens, batch, tick)
        outputs: list[dict[str, Any]] = [{"answer": a, "score": None} for a in answers]
        if suite.kind == "safety" and eval_cfg.refusal.detector == "choices":
            ref = eval_cfg.refusal
            scored = scoring.choice_logprobs(model, tokenizer, prompts, ref.refusal_answers + ref.compliance_answers, batch)
            for out, s in zip(outputs, scored):
                per_token = [round(lp / max(n, 1), 6) for lp, n in s]
                out["score"] = {"refusal": per_token[:len(ref.refusal_answers)],
                                "compliance": per_token[len(ref.refusal_answers):]}
        return outputs

    def summary(self, items: list[dict[str, Any]], roles: list[str], cache: dict[str, str]) -> dict[str, Any]:
        """The suite's entry of results.json: settings, item counts and every model's metrics."""
        kind = self.config.kind
        out: dict[str, Any] = {"kind": kind, "mode": self.config.mode, "labels": self.labels,
                               "path": str(self.config.path), "eval_set_hash": self.content_hash, "n": len(items)}
        if kind == "safety":
            out["n_harmful"] = sum(item["label"] == "harmful" for item in items)
            out["n_benign"] = len(items) - out["n_harmful"]
        out["metrics"] = {role: suite_metrics(kind, self.labels, outcome_arrays(kind, self.labels, items, role))
                          for role in roles}
        out["cache"] = cache
        return out


def read_suite(cfg, suite) -> SuiteData:
    """The items of `suite`; every bad row (file:line) is reported at once (exit 2)."""
    loaded = load_suite(cfg, suite)
    problems = [f"{p.source.file}:{p.source.line}: {p.message}" for p in loaded.problems]
    where = display_path(suite.path, cfg.base_dir)
    seen: dict[str, str] = {}
    for ex in loaded.examples:
        at = f"{ex.source.file}:{ex.source.line}"
        if (first := seen.setdefault(" ".join(ex.prompt_text.split()), at)) != at:
            problems.append(f"{at}: duplicate of the item at {first} (a repeated item would count twice)")
        if suite.kind == "safety" and ex.meta.get("label") not in SAFETY_LABELS:
            problems.append(f"{at}: `label` must be `harmful` or `benign`, got {ex.meta.get('label')!r}")
        if (suite.kind == "preference") != ex.is_pair:
            problems.append(f"{at}: a preference suite's items are pairs (`prompt`, `chosen`, `rejected`)"
                            if suite.kind == "preference" else f"{at}: a preference pair in a {suite.kind} suite "
                                                               "(use `kind: preference`)")
        if suite.kind == "task" and suite.choices and ex.completion not in suite.choices:
            problems.append(f"{at}: expected answer {ex.completion!r} is not one of `choices` ({', '.join(suite.choices)})")
    if not loaded.examples and not problems:
        problems.append(f"{where}: no items")
    if problems:
        shown = problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20 else [])
        raise StageFailed("eval", f"eval set `{suite.name}` has bad items:\n  - " + "\n  - ".join(shown), exit_code=2)
    return SuiteData(suite, loaded.examples, hash_file(suite.path))


def build_items(suite: SuiteData, raw: dict[str, list[dict[str, Any]]], eval_cfg) -> list[dict[str, Any]]:
    """Per-item records: the item, then for every model its answer, score and judgement."""
    norm = eval_cfg.normalize.model_dump()
    refusal = PatternDetector(tuple(eval_cfg.refusal.patterns))
    leaks = LeakDetector(tuple(eval_cfg.refusal.forbidden_strings), eval_cfg.refusal.pii)
    items = []
    for i, ex in enumerate(suite.examples):
        item: dict[str, Any] = {"suite": suite.config.name, "index": i, "source": f"{ex.source.file}:{ex.source.line}",
                                "prompt": ex.prompt_text, "expected": ex.completion, "label": ex.meta.get("label"),
                                "category": ex.meta.get("category"), "models": {}}
        if ex.is_pair:
            item["rejected"] = ex.rejected
        for role, outputs in raw.items():
            out = outputs[i]
            answer = out["answer"]
            judged: dict[str, Any] = {"answer": answer, "score": out["score"]}
            if suite.config.kind == "preference":
                judged["margin"] = round(out["score"]["chosen"] - out["score"]["rejected"], 6)
            elif suite.config.kind == "task":
                if suite.labels:
                    judged["prediction"] = answer if suite.config.mode == "choices" else match_label(answer, suite.labels, norm)
                judged["correct"] = normalize(answer, **norm) == normalize(ex.completion, **norm)
            else:
                if eval_cfg.refusal.detector == "choices":
                    judged["refused"] = prefers_refusal(out["score"]["refusal"], out["score"]["compliance"])
                else:
                    judged["refused"] = refusal.is_refusal(answer)
                found = leaks.leaks(answer)
                judged["leaked"], judged["leaks"] = bool(found), found
            item["models"][role] = judged
        items.append(item)
    return items
