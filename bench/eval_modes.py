"""Eval scoring modes on one classification suite, same model, one run: `choices` (log-likelihood of each label)
against ONE batched forward pass over the same prompts (the least any scorer must do: read every prompt once;
goal <= 1.5x), and batched greedy generation against one item at a time (same answers, and the speed-up).
With prompt baselines in the config, each baseline's `choices` pass against the zero-shot one (a stratified
k-shot prompt: goal <= 1.5x, its examples run once per call), and the stratified one again without the shared
prefix's cache (what the cache saves). Prints wall and CPU seconds (the machine may be shared: CPU seconds are
the steadier number).

    .venv/bin/python bench/eval_modes.py [--config adapterci.yaml] [--adapter DIR|none] [--suite NAME] [--repeat 3]

`--adapter none` scores the base model; without --adapter it uses the run directory's adapter, training one
first if there is none."""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """(best wall seconds, CPU seconds of that run, result) after one warm-up call."""
    result = fn()
    best = (float("inf"), 0.0)
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), cpu_seconds()
        result = fn()
        best = min(best, (time.perf_counter() - wall, cpu_seconds() - cpu))
    return best[0], best[1], result


def forward_once(model, tokenizer, prompts: list[str], batch_size: int) -> None:
    """One forward pass over every prompt, `batch_size` per call, left-padded, logits of the last position only."""
    import torch

    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        for start in range(0, len(prompts), batch_size):
            enc = tokenizer(prompts[start:start + batch_size], return_tensors="pt", padding=True).to(model.device)
            with torch.inference_mode():
                model(**enc, logits_to_keep=1)
    finally:
        tokenizer.padding_side = side


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="adapterci.yaml")
    parser.add_argument("--adapter", default=None, help="adapter directory, or `none` for the base model")
    parser.add_argument("--suite", default=None, help="a task suite with `choices` (default: the first)")
    parser.add_argument("--repeat", type=int, default=3, help="timed repetitions (best of)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from adapterci.config import load_config
    from adapterci.eval import scoring
    from adapterci.eval.baselines import Baselines
    from adapterci.eval.items import build_items, read_suite
    from adapterci.eval.metrics import compute, outcome_arrays
    from adapterci.eval.models import check_prompt
    from adapterci.eval.scoring import load_model
    from adapterci.modelio import load_tokenizer
    from adapterci.prompting import PromptFormat
    from adapterci.runs import run_dir_for

    cfg = load_config(args.config)
    suite_cfg = next(s for s in cfg.eval.suites if s.kind == "task" and s.choices and (args.suite in (None, s.name)))
    tokenizer = load_tokenizer(cfg)
    adapter = None if args.adapter == "none" else Path(args.adapter) if args.adapter else run_dir_for(cfg).adapter
    if adapter is not None and not (adapter / "adapter_config.json").is_file():
        from adapterci.train.run import train

        print(f"no adapter in {adapter}: training one first")
        train(cfg)
    template = cfg.prompt_template if adapter is None else \
        check_prompt(cfg, tokenizer, adapter, "candidate", must_match_config=True)
    model = load_model(cfg, adapter, cfg.eval.seed)
    batch = cfg.eval.batch_size
    longest = max(len(tokenizer(c)["input_ids"]) for c in suite_cfg.choices) + 1  # + eos
    choices_suite = read_suite(cfg, suite_cfg.model_copy(update={"mode": "choices"}))
    gen_suite = read_suite(cfg, suite_cfg.model_copy(update={"mode": "generate", "max_new_tokens": longest}))
    fmt = PromptFormat(template, tokenizer)
    prompts = [fmt.render(ex.messages) for ex in choices_suite.examples]
    n = len(prompts)

    def score(suite, batch_size: int, texts: list[str] = prompts):
        return lambda: suite.score(model, tokenizer, texts, cfg.eval.model_copy(update={"batch_size": batch_size}),
                                   lambda k: None)

    rows = {
        "one forward pass": timed(lambda: forward_once(model, tokenizer, prompts, batch), args.repeat),
        "choices": timed(score(choices_suite, batch), args.repeat),
        "generate batched": timed(score(gen_suite, batch), args.repeat),
        "generate one-by-one": timed(score(gen_suite, 1), max(1, args.repeat // 2)),
    }
    baselines, shots = Baselines(cfg), {}  # name -> (timing, goal)
    for b in cfg.eval.baselines:  # prompts of the base model, scored here by the model loaded above
        texts = choices_suite.prompts(tokenizer, cfg.prompt_template, baselines.prompt(b.name, suite_cfg).messages)
        stratified = bool(b.few_shot and b.few_shot.select == "stratified")
        shots[b.name] = (timed(score(choices_suite, batch, texts), args.repeat), " (goal <= 1.5)" if stratified else "")
        if stratified:
            floor, scoring.MIN_COMMON = scoring.MIN_COMMON, 10 ** 9  # the same prompts without the shared prefix's cache
            try:
                shots[f"{b.name}, prefix not cached"] = (timed(score(choices_suite, batch, texts), args.repeat), "")
            finally:
                scoring.MIN_COMMON = floor
    print(f"suite `{suite_cfg.name}`: {n} items, labels {suite_cfg.choices}, batch {batch}, prompt tokens "
          f"{sum(len(ids) for ids in tokenizer(prompts)['input_ids'])}, generate max_new_tokens {longest}, "
          f"best of {args.repeat}, torch threads {torch.get_num_threads()}, model {cfg.base_model}"
          f"{'' if adapter is None else ' + adapter'}")
    print(f"{'mode':<22}{'wall s':>9}{'cpu s':>9}{'items/s':>10}{'accuracy':>10}")
    for name, (wall, cpu, outputs) in rows.items():
        acc = ""
        if outputs is not None:
            suite = choices_suite if name == "choices" else gen_suite
            items = build_items(suite, {"candidate": outputs}, cfg.eval)
            acc = f"{compute('accuracy', outcome_arrays('task', suite_cfg.choices, items, 'candidate'), suite_cfg.choices):.3f}"
        print(f"{name:<22}{wall:>9.3f}{cpu:>9.2f}{n / wall:>10.1f}{acc:>10}")
    fwd, ch, gb, g1 = (rows[k] for k in rows)
    print(f"choices / one forward pass: wall {ch[0] / fwd[0]:.2f}, cpu {ch[1] / fwd[1]:.2f} (goal <= 1.5)")
    print(f"generate one-by-one / batched: wall {g1[0] / gb[0]:.2f}, cpu {g1[1] / gb[1]:.2f} (batching speed-up)")
    differ = sum(a["answer"] != b["answer"] for a, b in zip(gb[2], g1[2]))
    print("generate batched vs one-by-one: " + ("same answers" if not differ else f"{differ} of {n} answers DIFFER"))
    for name, ((wall, cpu, _), goal) in shots.items():
        print(f"baseline `{name}` choices / zero-shot choices: wall {wall / ch[0]:.2f}, cpu {cpu / ch[1]:.2f}{goal}")


if __name__ == "__main__":
    main()
