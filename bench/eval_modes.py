"""Eval scoring modes on one classification suite, same model, one run:
`choices` (log-likelihood of each label) vs `generate` (greedy, batched) vs `generate` one item at a time.
Prints wall times, speed ratios and the accuracy of each (which must agree for a model that answers labels).

    .venv/bin/python bench/eval_modes.py [--config adapterci.yaml] [--adapter DIR] [--suite sentiment] [--repeat 3]

Without --adapter it uses the run directory's adapter, training one first if there is none."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="adapterci.yaml")
    parser.add_argument("--adapter", default=None)
    parser.add_argument("--suite", default=None, help="a task suite with `choices` (default: the first)")
    parser.add_argument("--repeat", type=int, default=3, help="timed repetitions (best of)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    from adapterci.config import load_config
    from adapterci.eval.items import build_items, read_suite
    from adapterci.eval.metrics import compute, outcome_arrays
    from adapterci.eval.models import check_prompt
    from adapterci.eval.scoring import load_model
    from adapterci.modelio import load_tokenizer
    from adapterci.runs import run_dir_for

    cfg = load_config(args.config)
    suite_cfg = next(s for s in cfg.eval.suites if s.kind == "task" and s.choices and (args.suite in (None, s.name)))
    adapter = Path(args.adapter) if args.adapter else None
    if adapter is None:
        adapter = run_dir_for(cfg).adapter
        if not (adapter / "adapter_config.json").is_file():
            from adapterci.train import train

            print(f"no adapter in {adapter}: training one first")
            train(cfg)
    tokenizer = load_tokenizer(cfg)
    template = check_prompt(cfg, tokenizer, adapter, "candidate", must_match_config=True)
    model = load_model(cfg, adapter, cfg.eval.seed)
    longest = max(len(tokenizer(c)["input_ids"]) for c in suite_cfg.choices) + 1  # + eos
    variants = {
        "choices": (suite_cfg.model_copy(update={"mode": "choices"}), cfg.eval.batch_size),
        "generate batched": (suite_cfg.model_copy(update={"mode": "generate", "max_new_tokens": longest}), cfg.eval.batch_size),
        "generate one-by-one": (suite_cfg.model_copy(update={"mode": "generate", "max_new_tokens": longest}), 1),
    }
    rows = {}
    for name, (sc, batch) in variants.items():
        suite = read_suite(cfg, sc)
        settings = cfg.eval.model_copy(update={"batch_size": batch})
        suite.score(model, tokenizer, template, settings, lambda n: None)  # warm-up
        best = float("inf")
        for _ in range(args.repeat):
            start = time.perf_counter()
            outputs = suite.score(model, tokenizer, template, settings, lambda n: None)
            best = min(best, time.perf_counter() - start)
        items = build_items(suite, {"candidate": outputs}, settings)
        accuracy = compute("accuracy", outcome_arrays("task", sc.choices, items, "candidate"), sc.choices)
        rows[name] = (best, accuracy, len(items))

    n = rows["choices"][2]
    print(f"suite `{suite_cfg.name}`: {n} items, labels {suite_cfg.choices}, batch {cfg.eval.batch_size}, "
          f"generate max_new_tokens {longest}, best of {args.repeat}, torch threads {__import__('torch').get_num_threads()}")
    print(f"{'mode':<22}{'seconds':>9}{'items/s':>10}{'accuracy':>10}")
    for name, (sec, acc, _) in rows.items():
        print(f"{name:<22}{sec:>9.3f}{n / sec:>10.1f}{acc:>10.3f}")
    c, g, g1 = (rows[k][0] for k in variants)
    print(f"generate batched / choices time ratio: {g / c:.2f}")
    print(f"generate one-by-one / batched time ratio: {g1 / g:.2f} (batching speed-up)")
    same = len({round(r[1], 6) for r in rows.values()}) == 1
    print("accuracy: " + ("same in all modes" if same else "DIFFERS between modes"))


if __name__ == "__main__":
    main()
