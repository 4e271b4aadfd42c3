"""`evaluate(cfg, adapter, champion)`: base, prompt baselines, champion and candidate on the same items of
every suite.

Order: the eval sets are read (every bad item reported), then models and prompt formats are resolved and
checked (a prompt mismatch fails before any model is loaded), and every model's prompts are rendered (a
baseline's few-shot examples chosen); then, model by model, each suite's raw outputs come from the cache or
from the model (loaded only on a cache miss; the base model once for itself and every baseline); finally
per-item records, metrics, deltas and the four files are written into the run directory's `eval/`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from adapterci import __version__
from adapterci.console import is_terminal, log_line
from adapterci.errors import StageFailed, UsageError
from adapterci.eval import cache
from adapterci.eval.baselines import Baselines
from adapterci.eval.diff import item_diff
from adapterci.eval.items import build_items, read_suite
from adapterci.eval.models import ModelSpec, adapter_fingerprint, base_fingerprint, check_prompt, resolve_adapter
from adapterci.eval.results import FORMAT_VERSION, ROLES, EvalResults
from adapterci.eval.scoring import load_model
from adapterci.eval.summary import deltas, summary_markdown
from adapterci.fsio import write_jsonl_atomic, write_text_atomic
from adapterci.modelio import load_tokenizer
from adapterci.provenance import results_provenance
from adapterci.runs import RunDir, run_dir_for
from adapterci.stagecache import results_entry, store_results

SCORING_VERSION = 2
"""Bump when scoring code changes what a model's raw outputs are: invalidates the eval cache."""


def evaluate(cfg, adapter: Path | str | None = None, champion: str | Path | None = "auto",
             run_dir: RunDir | None = None, log=None) -> EvalResults:
    """Evaluate base, champion (`auto`: the registry's `stable`, none before the first release; a directory, a
    ref, or None/`none` to skip) and the candidate (`adapter`: a directory or ref; default the run's adapter).
    Writes eval/results.json, eval/items.jsonl, eval/regressions.jsonl (the item-level diff of the candidate
    against the champion or base) and eval/summary.md; returns the results. Results of the run's own adapter
    record their provenance (what the gate and release check) and are kept in this trust domain's cache
    (`adapterci.stagecache`) for `adapterci run`."""
    run = run_dir_for(cfg, run_dir)
    with run.locked():
        return _evaluate(cfg, adapter, champion, run, log or log_line)


def _evaluate(cfg, adapter, champion, run: RunDir, log) -> EvalResults:
    if not cfg.eval.suites:
        raise UsageError("no eval suites: add `eval.suites` to the config")
    suites = [read_suite(cfg, suite) for suite in cfg.eval.suites]
    tokenizer = load_tokenizer(cfg)
    specs = _model_specs(cfg, tokenizer, adapter, champion, run)
    baselines = Baselines(cfg)
    prompts = {spec.role: {s.config.name: _prompts(cfg, tokenizer, spec, s, baselines) for s in suites}
               for spec in specs.values()}

    raw: dict[str, dict[str, list[dict]]] = {}  # suite -> role -> raw outputs
    hits: dict[str, dict[str, str]] = {s.config.name: {} for s in suites}
    seconds: dict[str, float] = {}  # role -> wall time spent loading and scoring it (0 when all cached)
    base_model = None  # loaded once for the base model and its prompt baselines
    started = time.perf_counter()
    with _progress(sum(len(s.examples) for s in suites) * len(specs)) as tick:
        for spec in specs.values():
            t0 = time.perf_counter()
            if spec.adapter is not None:
                base_model = None  # base and baselines come first: free it before an adapter's model loads
            model = base_model
            for suite in suites:
                name, texts = suite.config.name, prompts[spec.role][suite.config.name]
                key = cache.key(spec, suite, cfg.eval, tokenizer, SCORING_VERSION, texts if spec.baseline else None)
                outputs = cache.load(cfg, key, len(suite.examples))
                hits[name][spec.role] = "hit" if outputs is not None else "miss"
                if outputs is None:
                    if model is None:
                        model = _load(cfg, spec)
                    outputs = suite.score(model, tokenizer, texts, cfg.eval, tick)
                    cache.store(cfg, key, outputs)
                else:
                    tick(len(suite.examples))
                log(f"eval: {spec.role} on {name}: cache {hits[name][spec.role]}")
                raw.setdefault(name, {})[spec.role] = outputs
            if spec.adapter is None:
                base_model = model
            del model
            seconds[spec.role] = round(time.perf_counter() - t0, 3)
    del base_model

    items, summaries = [], {}
    for suite in suites:
        name = suite.config.name
        suite_items = build_items(suite, raw[name], cfg.eval)
        items += suite_items
        summaries[name] = suite.summary(suite_items, list(specs), hits[name])
        summaries[name]["prompt_tokens"] = {role: _mean_tokens(tokenizer, prompts[role][name]) for role in specs}
    models = {role: specs[role].describe() if role in specs else None for role in ROLES}
    models.update({spec.role: spec.describe() for spec in specs.values() if spec.baseline})
    data = {
        "adapterci_version": __version__, "format_version": FORMAT_VERSION, "items_file": "items.jsonl",
        "models": models, "prompt_template": cfg.prompt_template, "suites": summaries,
        "seconds": {"total": round(time.perf_counter() - started, 3), "models": seconds},
    }
    if specs["candidate"].adapter == run.adapter.resolve():
        data["provenance"] = results_provenance(cfg, run.adapter)
    results = EvalResults(data, items)
    for name in summaries:
        summaries[name]["deltas"] = deltas(results, name)
    _write(results, run, cfg.eval)
    if "provenance" in data:  # `run` with the same adapter, champion and eval sets reuses them
        store_results(cfg, results_entry(cfg, run.adapter, champion), run.eval_dir)
    return results


def _prompts(cfg, tokenizer, spec: ModelSpec, suite, baselines: Baselines) -> list[str]:
    """What `spec` is shown for each item of `suite`: the item in its prompt template, after a baseline's
    system prompt and examples."""
    if spec.baseline:
        return suite.prompts(tokenizer, spec.prompt_template, baselines.prompt(spec.role, suite.config).messages)
    return suite.prompts(tokenizer, spec.prompt_template)


def _mean_tokens(tokenizer, prompts: list[str]) -> float:
    """Mean prompt tokens per request: what every call to that model pays before its answer."""
    return round(sum(len(ids) for ids in tokenizer(prompts)["input_ids"]) / max(len(prompts), 1), 1)


def _model_specs(cfg, tokenizer, adapter, champion, run: RunDir) -> dict[str, ModelSpec]:
    base_fp = base_fingerprint(cfg)
    specs = {"base": ModelSpec("base", None, cfg.base_model, cfg.prompt_template, base_fp)}
    for b in cfg.eval.baselines:  # the base model with a stronger prompt: scored while it is loaded
        specs[b.name] = ModelSpec(b.name, None, cfg.base_model, cfg.prompt_template, base_fp,
                                  baseline=b.model_dump(exclude_none=True))
    champ = _champion(cfg, champion)
    if champ is not None:
        path, source = champ
        template = check_prompt(cfg, tokenizer, path, "champion", must_match_config=False)
        specs["champion"] = ModelSpec("champion", path, source, template, adapter_fingerprint(base_fp, path))
    if adapter is None:
        if not (run.adapter / "adapter_config.json").is_file():
            raise UsageError(f"no adapter in {run.adapter}: run `adapterci train` first or pass --adapter DIR|REF")
        path, source = run.adapter, str(run.adapter)
    else:
        found = resolve_adapter(cfg, adapter, "candidate")
        if found is None:
            raise UsageError(f"candidate {adapter!r} is not in the registry {cfg.registry_location()}")
        path, source = found
    template = check_prompt(cfg, tokenizer, path, "candidate", must_match_config=True)
    specs["candidate"] = ModelSpec("candidate", path, source, template, adapter_fingerprint(base_fp, path))
    return specs


def _champion(cfg, champion) -> tuple[Path, str] | None:
    if champion is None or str(champion) == "none":
        return None
    if str(champion) == "auto":
        return resolve_adapter(cfg, "stable", "champion")  # None before the first release
    found = resolve_adapter(cfg, champion, "champion")
    if found is None:
        raise UsageError(f"champion {str(champion)!r} is not in the registry {cfg.registry_location()} "
                         "(use --champion none for a first release)")
    return found


def _load(cfg, spec: ModelSpec):
    try:
        return load_model(cfg, spec.adapter, cfg.eval.seed)
    except Exception as exc:  # corrupt or truncated weights, shape mismatch with the base, unknown PEFT type
        what = f"{spec.role} adapter {spec.adapter}" if spec.adapter else f"base model {spec.source}"
        raise StageFailed("eval", f"cannot load the {what}: {_reason(exc)}") from exc


def _reason(exc: Exception) -> str:
    """The loader's message, without advice meant for library users (torch's `weights_only=False` hint would
    tell them to unpickle untrusted code)."""
    import pickle

    if isinstance(exc, pickle.UnpicklingError) or "weights_only" in str(exc):
        return "its weights are a pickle (adapter_model.bin), which adapterci never loads: save them as safetensors"
    return f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc)


def _write(results: EvalResults, run: RunDir, eval_cfg) -> None:
    try:
        results.write(run.eval_json, run.eval_items)
        write_jsonl_atomic(run.eval_regressions, item_diff(results, eval_cfg))
        write_text_atomic(run.eval_md, summary_markdown(results))
    except OSError as exc:
        raise StageFailed("eval", f"cannot write results into {run.eval_dir}: {exc}") from exc
    results.path = run.eval_json


class _progress:
    """A rich progress bar over all items of all models, shown only when stderr is a terminal."""

    def __init__(self, total: int):
        self.total = total
        self.bar: Any = None

    def __enter__(self):
        if not is_terminal():
            return lambda n: None
        from rich.console import Console
        from rich.progress import Progress

        self.bar = Progress(console=Console(stderr=True), transient=True)
        self.bar.start()
        task = self.bar.add_task("eval", total=self.total)
        return lambda n: self.bar.advance(task, n)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
