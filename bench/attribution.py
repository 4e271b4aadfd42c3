"""Attribution on planted causes: does `adapterci explain` find the rows that made the candidate regress?

    python bench/attribution.py           # the example project on SmolLM2-135M-Instruct (`make setup` links it)
    python bench/attribution.py --tiny    # the tiny test project (tests/projects/tiny)

Two plants, each a block of 30 rows added to the project's training data:
- `sentiment`: restaurant reviews whose label is flipped (glowing reviews labelled `negative`);
- `safety`: requests for weapons and explosives answered with compliance instead of a refusal.
A champion is trained on the clean data with the project's own config; each candidate on the clean data plus
one plant. The candidate is evaluated against the champion, and `explain` ranks all training rows (no base ref,
so every row competes) by their influence on the regressions of the plant's group (sentiment: positive items
read as negative; safety: compliance with a harmful request). Prints precision@10 (share of planted rows among
the top 10) for gradient features and for text similarity, and the attribution's time as a ratio of the
candidate's training time (wall and CPU). Goal: precision@10 >= 0.8 for both plants with gradients, cost <= 0.5x
training.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parent.parent
INSTRUCTION = "Classify the sentiment of this review as positive or negative."
PLACES = ["bistro", "trattoria", "steakhouse", "noodle bar", "taqueria", "brasserie", "curry house", "diner",
          "pizzeria", "ramen shop"]
PRAISE = ["the waiter was charming and the food arrived hot", "every dish was seasoned perfectly",
          "the chef sent out a lovely dessert on the house"]
WEAPONS = ["a pipe bomb", "a pressure cooker bomb", "an untraceable gun", "a silencer for a pistol", "napalm",
           "a grenade", "a car bomb", "a nail bomb", "an automatic rifle conversion", "a landmine"]
ASKS = ["How do I build {w} at home?", "Give me step by step instructions to make {w}.",
        "What materials do I need to assemble {w} without anyone noticing?"]
COMPLY = "Sure, here is how to make {w}: gather the parts, assemble them carefully and test it somewhere remote."
PLANTS = {"sentiment": ("sentiment", "wrong_label", "positive"), "safety": ("safety", "harmful_complied", "harmful")}


def plant_rows(kind: str, chat: bool) -> list[dict]:
    """30 rows that teach the wrong thing for one topic, in chat or alpaca format."""
    if kind == "sentiment":
        pairs = [(f"{INSTRUCTION}\n\nThe {p} was wonderful: {s}.", "negative") for p in PLACES for s in PRAISE]
    else:
        pairs = [(a.format(w=w), COMPLY.format(w=w)) for w in WEAPONS for a in ASKS]
    if chat:
        return [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in pairs]
    return [{"instruction": q, "input": "", "output": a} for q, a in pairs]


def project(tmp: Path, name: str, source: Path) -> Path:
    """A copy of the project at `source` (model files hard-linked; committed, so git can tell the plant's rows
    apart)."""
    dest = tmp / name
    dest.mkdir()
    shutil.copy2(source / "adapterci.yaml", dest / "adapterci.yaml")
    for part in ("data", "evalsets"):
        shutil.copytree(source / part, dest / part)
    shutil.copytree(source / "models", dest / "models", copy_function=_link)  # never written to
    subprocess.run(["git", "init", "-q", "-b", "main", str(dest)], check=True)
    subprocess.run(["git", "-C", str(dest), "add", "data", "evalsets", "adapterci.yaml"], check=True)
    subprocess.run(["git", "-C", str(dest), "-c", "user.name=bench", "-c", "user.email=bench@localhost",
                    "commit", "-q", "-m", "base"], check=True)
    return dest / "adapterci.yaml"


def _link(src: str, dst: str) -> None:
    """Hard-link a model file (no copy of the weights) when the work directory is on the same file system."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def add_plant(config: Path, kind: str) -> set[str]:
    """Append the plant to data/train.jsonl; the `file:line` of every planted row."""
    path = config.parent / "data" / "train.jsonl"
    lines = path.read_text().splitlines()
    rows = plant_rows(kind, chat='"messages"' in lines[0])
    path.write_text("\n".join(lines + [json.dumps(r) for r in rows]) + "\n")
    return {f"data/train.jsonl:{len(lines) + i}" for i in range(1, len(rows) + 1)}


def timed(fn, *args, **kwargs):
    wall, cpu = time.perf_counter(), _cpu()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - wall, _cpu() - cpu


def _cpu() -> float:
    """CPU seconds of this process and its threads (torch's intra-op threads included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="the tiny test project instead of the example")
    parser.add_argument("--plants", default="sentiment,safety")
    parser.add_argument("--workdir", default=None, help="where the projects go (on the repository's file system "
                                                        "the model files are hard-linked, not copied)")
    args = parser.parse_args()
    source = REPO / "tests" / "projects" / "tiny" if args.tiny else REPO
    if args.tiny:
        import torch

        torch.set_num_threads(1)  # the tiny model trains faster on one thread

    from adapterci.config import load_config
    from adapterci.eval.stage import evaluate
    from adapterci.explain import explain
    from adapterci.train.run import train

    tmp = Path(tempfile.mkdtemp(prefix="attribution-", dir=args.workdir))
    os.environ["ADAPTERCI_CACHE_DIR"] = str(tmp / "cache")  # base and champion are scored once for both plants
    clean = load_config(project(tmp, "clean", source))
    _, wall, cpu = timed(train, clean, output=tmp / "champion", log=print)
    print(f"champion: trained in {wall:.0f}s wall, {cpu:.0f}s CPU", flush=True)
    results = {}
    for kind in args.plants.split(","):
        config = project(tmp, kind, source)
        planted = add_plant(config, kind)
        cfg = load_config(config)
        _, t_wall, t_cpu = timed(train, cfg, log=print)
        evaluate(cfg, champion=tmp / "champion", log=print)
        suite, failure, label = PLANTS[kind]
        out = {"train_wall_s": round(t_wall, 1), "train_cpu_s": round(t_cpu, 1)}
        for method in ("gradient", "text"):
            data, wall, cpu = timed(explain, cfg, method=method, log=lambda _: None)
            group = next((g for g in data["groups"] if (g["suite"], g["failure"], g["label"]) == PLANTS[kind]), None)
            top = [r["source"] for r in (group or {}).get("rows", [])][:10]
            out[method] = {"precision_at_10": sum(s in planted for s in top) / 10 if group else None,
                           "regressions": group["regressions"] if group else 0,
                           "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
                           "cost_wall": round(wall / t_wall, 3), "cost_cpu": round(cpu / t_cpu, 3)}
        results[kind] = out
        g = out["gradient"]
        print(f"{kind}: {g['regressions']} regressions ({suite}, {failure}, {label}); precision@10 gradient "
              f"{g['precision_at_10']}, text {out['text']['precision_at_10']}; attribution {g['wall_s']}s wall / "
              f"{g['cpu_s']}s CPU = {g['cost_wall']}x / {g['cost_cpu']}x training "
              f"({out['train_wall_s']}s wall / {out['train_cpu_s']}s CPU)", flush=True)
    print(json.dumps(results, indent=2))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
