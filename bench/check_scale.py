"""How `adapterci check` scales: all checks on generated training sets of 100k and 1M rows.

    .venv/bin/python bench/check_scale.py                 # 100k and 1M rows
    .venv/bin/python bench/check_scale.py --rows 20000 100000

Each size gets its own temporary project (the example's config, eval sets and tiny model; generated
alpaca rows: varied review-like sentences plus refusal rows). A warm-up run on the example project loads
Great Expectations and the tokenizer first, so the timings are of the checks, not of imports.
Prints wall and CPU seconds (the CPU figure is what a shared machine distorts least), rows/s per size and
the time ratio of the largest to the smallest size (10x rows: ~10 is linear).
Target: 100k rows <= 15 s.

Hostile input (`--hostile`, also run by default first): a 20 MB single-line training file and a 378-byte
YAML alias bomb ("billion laughs", 9 levels) must each be refused within 5 s and 500 MB. Each is run in a
fresh subprocess (the bomb through `adapterci validate`, the line through the JSONL reader that `check` and
`train` use), whose wall time and peak RSS (`resource.getrusage(RUSAGE_CHILDREN)`) are printed against the
same measurement on the example's valid config and training file."""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "tests" / "projects" / "tiny"  # the tiny-model example (its models/ links to the repository's)
INSTRUCTION = "Classify the sentiment of this review as positive or negative."
SUBJECTS = ("the hotel", "our room", "the pizza", "this phone", "the battery", "the app", "the movie", "the plot",
            "the waiter", "the delivery", "this blender", "the headphones", "the staff", "the screen", "the soup",
            "the museum", "the laptop", "the sequel", "the mattress", "the coffee", "the game", "the charger")
GOOD = ("lovely", "superb", "reliable", "delicious", "comfortable", "fast", "friendly", "gorgeous", "clever",
        "spotless", "quiet", "generous", "sturdy", "charming", "brilliant", "smooth", "fresh", "helpful")
BAD = ("awful", "broken", "slow", "stale", "rude", "noisy", "flimsy", "dirty", "boring", "overpriced", "buggy",
       "cold", "cramped", "leaky", "useless", "greasy", "confusing", "late")
FILLER = ("honestly", "really", "at first", "after a week", "for the price", "to be fair", "on our trip",
          "every single time", "in the end", "compared to the last one", "according to my sister", "so far")
HARMFUL = ("How do I make a weapon at home?", "How can I hack my neighbour's wifi?", "How do I steal a car?",
           "Write malware that deletes files.", "How do I poison someone?")


def _base36(i: int) -> str:
    out = ""
    while True:
        i, d = divmod(i, 36)
        out = "0123456789abcdefghijklmnopqrstuvwxyz"[d] + out
        if not i:
            return "v" + out


def make_row(rng: random.Random, i: int) -> dict:
    if rng.random() < 0.12:
        return {"instruction": f"{rng.choice(HARMFUL)} (request {i})", "input": "", "output": "I can't help with that."}
    positive = rng.random() < 0.55
    words = GOOD if positive else BAD
    parts = [f"{rng.choice(SUBJECTS)} was {rng.choice(words)}"]
    for _ in range(rng.randint(1, 4)):
        parts.append(f"{rng.choice(FILLER)} {rng.choice(SUBJECTS)} felt {rng.choice(words)}")
    parts.append(f"visit {_base36(i)}{rng.choice('aeiou')}")  # keeps every row distinct
    text = ", ".join(parts).capitalize() + rng.choice((".", "!", " overall."))
    return {"instruction": INSTRUCTION, "input": text, "output": "positive" if positive else "negative"}


def make_project(root: Path, rows: int, seed: int = 0) -> Path:
    """A copy of the example project whose training set is `rows` generated rows."""
    for name in ("evalsets", "models"):
        shutil.copytree(TINY / name, root / name)
    (root / "data").mkdir()
    shutil.copy2(TINY / "data" / "valid.jsonl", root / "data" / "valid.jsonl")
    rng = random.Random(seed)
    with (root / "data" / "train.jsonl").open("w") as f:
        for i in range(rows):
            f.write(json.dumps(make_row(rng, i)) + "\n")
    text = (TINY / "adapterci.yaml").read_text().replace("  pii: true", "  pii: true\n  max_tokens: 512")
    (root / "adapterci.yaml").write_text(text)
    return root


def run(config: Path) -> tuple[float, object]:
    from adapterci.check import run_checks
    from adapterci.config import load_config

    cfg = load_config(config)
    started, cpu = time.perf_counter(), time.process_time()
    report = run_checks(cfg)
    return time.perf_counter() - started, time.process_time() - cpu, report


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))
READ = "import sys; from pathlib import Path; from adapterci.data.dataset import load_examples; " \
       "out = load_examples([sys.argv[1]], Path.cwd()); print(out.problems[0] if out.problems else 'accepted')"
LIMIT_S, LIMIT_MB = 5.0, 500


def measured(cmd: list[str], cwd: Path) -> tuple[float, float, float, str]:
    """(wall seconds, CPU seconds, peak RSS in MB, last output line) of one fresh subprocess."""
    import resource
    import subprocess

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # ru_maxrss: KB on Linux, the max over all children
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    text = (out.stdout + out.stderr).strip().splitlines()
    return seconds, cpu, after.ru_maxrss / 1024, text[-1][:110] if text else ""


def hostile(tmp: Path) -> bool:
    """The two hostile inputs, each refused in time and memory; returns whether both met the limits."""
    project = tmp / "hostile"
    project.mkdir()
    (project / "bomb.yaml").write_text(BOMB)
    with (project / "line.jsonl").open("w") as f:
        f.write('{"prompt": "' + "x" * (20 << 20) + '", "completion": "positive"}\n')
    shutil.copytree(TINY, project, dirs_exist_ok=True)
    cli = [sys.executable, "-m", "adapterci"]
    # peak RSS of RUSAGE_CHILDREN is a running maximum: measure the small baselines first, then the big inputs
    cases = [("valid config (baseline)", cli + ["validate", "adapterci.yaml"]),
             ("YAML alias bomb, 378 B", cli + ["validate", "bomb.yaml"]),
             ("example train.jsonl (baseline)", [sys.executable, "-c", READ, "data/train.jsonl"]),
             ("20 MB single-line file", [sys.executable, "-c", READ, "line.jsonl"])]
    ok, results = True, {}
    for name, cmd in cases:
        seconds, cpu, mb, last = measured(cmd, project)
        results[name] = seconds, cpu
        within = "baseline" not in name and (seconds <= LIMIT_S and mb <= LIMIT_MB)
        ok &= within or "baseline" in name
        verdict = "" if "baseline" in name else ("  within limits" if within else "  OVER THE LIMIT")
        print(f"{name:32} {seconds:5.2f} s wall ({cpu:.2f} s CPU)  peak RSS {mb:5.0f} MB{verdict}\n    -> {last}")
    for bad, base in (("YAML alias bomb, 378 B", "valid config (baseline)"),
                      ("20 MB single-line file", "example train.jsonl (baseline)")):
        print(f"{bad}: ratio vs {base}: wall {results[bad][0] / results[base][0]:.2f}, "
              f"CPU {results[bad][1] / results[base][1]:.2f}")
    print(f"hostile inputs: {'refused within' if ok else 'NOT refused within'} {LIMIT_S:.0f} s and {LIMIT_MB} MB")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--hostile", action="store_true", help="Only the hostile-input measurements.")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    with tempfile.TemporaryDirectory() as tmp:
        ok = hostile(Path(tmp))
        if args.hostile or not args.rows:
            sys.exit(0 if ok else 1)
        warm = make_project(Path(tmp) / "warm", 1000)
        seconds, _, _ = run(warm / "adapterci.yaml")
        print(f"warm-up (1k rows, imports included): {seconds:.1f} s")
        times, cpus = {}, {}
        for n in args.rows:
            project = make_project(Path(tmp) / f"p{n}", n)
            seconds, cpu, report = run(project / "adapterci.yaml")
            times[n], cpus[n] = seconds, cpu
            failed = [c.name for c in report.checks if not c.passed]
            stages = ", ".join(f"{k} {v:.1f}" for k, v in report.timings.items())
            print(f"{n:>9} rows: {seconds:6.1f} s wall ({cpu:.1f} s CPU)  {n / seconds:9.0f} rows/s  "
                  f"failed checks: {failed or 'none'}")
            print(f"           stages (s): {stages}")
            shutil.rmtree(project)
        lo, hi = min(times), max(times)
        if hi != lo:
            print(f"time ratio {hi}/{lo} rows: wall {times[hi] / times[lo]:.2f}, CPU {cpus[hi] / cpus[lo]:.2f} "
                  f"(rows ratio {hi / lo:.0f})")


if __name__ == "__main__":
    main()
