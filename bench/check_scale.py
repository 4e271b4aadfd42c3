"""How `adapterci check` scales: all checks on generated training sets of 100k and 1M rows.

    .venv/bin/python bench/check_scale.py                 # 100k and 1M rows
    .venv/bin/python bench/check_scale.py --rows 20000 100000

Each size gets its own temporary project (the example's config, eval sets and tiny model; generated
alpaca rows: varied review-like sentences plus refusal rows). A warm-up run on the example project loads
Great Expectations and the tokenizer first, so the timings are of the checks, not of imports.
Prints wall and CPU seconds (the CPU figure is what a shared machine distorts least), rows/s per size and
the time ratio of the largest to the smallest size (10x rows: ~10 is linear).
Target: 100k rows <= 15 s.

Hostile input (`--hostile`, also run by default first; about 1 to 2 minutes): the inputs that are about time or
memory, each next to ordinary input of the same size measured in the same run, each in a fresh subprocess whose
wall time, CPU time and peak RSS (`os.wait4`: that child's own) are printed: a 0.4 KB YAML alias bomb ("billion
laughs", 9 levels) and 1200-deep nesting (`adapterci validate`), the bomb in a pull request head's
adapterci.yaml (`adapterci pr materialize`), a nested-`range` prompt template (`validate`), a row of 100,000
nested `[` and a 20 MB single line (the JSONL reader that `check` and `train` use) must each be refused within
5 s and 500 MB; 27 MB of rows longer than `checks.max_chars` must be checked (`adapterci check`, the rows fail
`schema` and are not tokenized) within 2x the time and memory of 27 MB of ordinary rows."""

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
NESTED_RANGES = ("{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}"
                 "{% for m in messages %}{{ m.content }}{% endfor %}")
ORDINARY_TEMPLATE = ("{% for m in messages %}{% if m.role == 'system' %}[SYS] {% endif %}{{ m.content | trim }}"
                     "\n{% endfor %}### Answer:\n")
LONG_ROWS_MB = 27


def measured(cmd: list[str], cwd: Path) -> tuple[float, float, float, str]:
    """(wall seconds, CPU seconds, peak RSS in MB, last output line) of one fresh subprocess, its own peak
    (`os.wait4` returns the resource usage of that child alone)."""
    import subprocess

    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        _, _, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = 0  # reaped by wait4
        out.seek(0)
        text = out.read().decode(errors="replace").strip().splitlines()
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, text[-1][:110] if text else ""


def _git(repo: Path, *args: str) -> str:
    import subprocess

    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=b", "-c", "user.email=b@example.com", *args],
                          check=True, capture_output=True, text=True).stdout.strip()


def _pr_repo(root: Path, head_configs: dict[str, str]) -> tuple[Path, str, dict[str, str]]:
    """The example project committed on `main`, one PR branch per head config; (repo, base sha, head shas)."""
    repo = root / "pr"
    shutil.copytree(TINY, repo, ignore=shutil.ignore_patterns(".adapterci", "models"))
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "base")
    base, heads = _git(repo, "rev-parse", "HEAD"), {}
    for name, text in head_configs.items():
        _git(repo, "checkout", "-qb", name, base)
        (repo / "adapterci.yaml").write_text(text)
        _git(repo, "commit", "-qam", name)
        heads[name] = _git(repo, "rev-parse", "HEAD")
    _git(repo, "checkout", "-q", "main")
    return repo, base, heads


def _long_rows(path: Path, megabytes: int, row_chars: int) -> int:
    """A training file of `megabytes` MB of review rows whose input has `row_chars` characters."""
    rng, written, rows = random.Random(1), 0, 0
    with path.open("w") as f:
        while written < megabytes << 20:
            row = make_row(rng, rows)
            text = row["input"] or row["instruction"]
            row["input"] = (text + " ") * (row_chars // (len(text) + 1)) + text[:row_chars % (len(text) + 1)]
            line = json.dumps(row) + "\n"
            f.write(line)
            written, rows = written + len(line), rows + 1
    return rows


def hostile(tmp: Path) -> bool:
    """Each hostile input that is about time or memory, next to ordinary input of the same size measured in the
    same run, each in a fresh subprocess; returns whether every refusal met the limits."""
    project = tmp / "hostile"
    shutil.copytree(TINY, project)
    base_config = (TINY / "adapterci.yaml").read_text()
    cli = [sys.executable, "-m", "adapterci"]

    def padded(text: str, size: int) -> str:  # ordinary YAML (a comment) up to `size` bytes
        return text + "#" * max(size - len(text) - 1, 0) + "\n"

    deep = base_config.replace("base_revision: null", "base_revision: " + "[" * 1200 + "]" * 1200)
    bombed = BOMB + base_config
    (project / "bomb.yaml").write_text(bombed)
    (project / "bomb-size.yaml").write_text(padded(base_config, len(bombed)))
    (project / "deep.yaml").write_text(deep)
    (project / "deep-size.yaml").write_text(padded(base_config, len(deep)))
    template = base_config.replace("prompt_template: alpaca ", f"prompt_template: {json.dumps(NESTED_RANGES)} ")
    ordinary = base_config.replace("prompt_template: alpaca ", f"prompt_template: {json.dumps(ORDINARY_TEMPLATE)} ")
    (project / "ranges.yaml").write_text(template)
    (project / "ranges-size.yaml").write_text(padded(ordinary, len(template)))
    with (project / "line.jsonl").open("w") as f:
        f.write('{"prompt": "' + "x" * (20 << 20) + '", "completion": "positive"}\n')
    brackets = "[" * 100_000 + "]" * 100_000
    (project / "brackets.jsonl").write_text(brackets + "\n")
    (project / "brackets-size.jsonl").write_text(
        json.dumps({"prompt": "y" * (len(brackets) - 40), "completion": "positive"}) + "\n")
    for name, chars in (("long", 100_000), ("ordinary", 270)):  # over checks.max_chars (32,000) / ordinary rows
        part = tmp / f"rows-{name}"
        shutil.copytree(TINY, part)
        _long_rows(part / "data" / "train.jsonl", LONG_ROWS_MB, chars)
        config = part / "adapterci.yaml"  # room for a 270-character review in tokens, as `make_project` gives
        config.write_text(config.read_text().replace("  pii: true", "  pii: true\n  max_tokens: 512"))
        _git(part, "init", "-q")
    repo, base, heads = _pr_repo(tmp, {"bomb": BOMB.replace("\n", "\n  ").join(["train:\n  bomb:\n  ", "\n"]).join(
        base_config.split("train:\n", 1)), "ordinary": base_config.replace("epochs: 10", "epochs: 2") + "#" * 400 + "\n"})

    def materialize(head: str) -> list[str]:
        return cli + ["pr", "materialize", "--config", str(repo / "adapterci.yaml"), "--head-repo", str(repo),
                      "--head-sha", heads[head], "--base-sha", base, "--run-dir", str(tmp / f"run-{head}")]

    # (name, command, cwd, limited): a limited case must be refused within LIMIT_S and LIMIT_MB; the 27 MB file
    # of over-long rows is checked in full (its rows fail `schema`): within 2x its baseline's time and memory
    cases = [
        ("YAML alias bomb 0.4 KB: validate", cli + ["validate", "bomb.yaml"], project, True),
        ("  baseline: config of that size", cli + ["validate", "bomb-size.yaml"], project, False),
        ("YAML nested 1200 deep: validate", cli + ["validate", "deep.yaml"], project, True),
        ("  baseline: config of that size", cli + ["validate", "deep-size.yaml"], project, False),
        ("alias bomb in PR head: pr materialize", materialize("bomb"), repo, True),
        ("  baseline: ordinary PR head config", materialize("ordinary"), repo, False),
        ("nested-range template: validate", cli + ["validate", "ranges.yaml"], project, True),
        ("  baseline: ordinary template", cli + ["validate", "ranges-size.yaml"], project, False),
        ("100k nested [ row: JSONL reader", [sys.executable, "-c", READ, "brackets.jsonl"], project, True),
        ("  baseline: 200 KB ordinary row", [sys.executable, "-c", READ, "brackets-size.jsonl"], project, False),
        ("20 MB single-line file: reader", [sys.executable, "-c", READ, "line.jsonl"], project, True),
        ("  baseline: example train.jsonl", [sys.executable, "-c", READ, "data/train.jsonl"], project, False),
        (f"{LONG_ROWS_MB} MB rows > max_chars: check", cli + ["check"], tmp / "rows-long", None),
        (f"  baseline: {LONG_ROWS_MB} MB ordinary rows", cli + ["check"], tmp / "rows-ordinary", False),
    ]
    ok, previous = True, None
    print(f"{'input':40} {'wall s':>7} {'CPU s':>7} {'peak MB':>8}   vs baseline (wall, peak)")
    for name, cmd, cwd, limited in cases:
        seconds, cpu, mb, last = measured(cmd, cwd)
        verdict = ""
        if limited:
            within = seconds <= LIMIT_S and mb <= LIMIT_MB
            verdict = "within limits" if within else "OVER THE LIMIT"
            ok &= within
        elif limited is False and previous is not None:
            hostile_case = previous
            ratio = (hostile_case[1] / seconds, hostile_case[3] / mb)
            verdict = f"hostile/baseline: {ratio[0]:.2f}x wall, {ratio[1]:.2f}x peak"
            if hostile_case[2] is None:  # the check of the long rows: relative limits
                within = ratio[0] <= 2 and ratio[1] <= 2
                ok &= within
                verdict += "  within 2x" if within else "  OVER 2x"
        print(f"{name:40} {seconds:7.2f} {cpu:7.2f} {mb:8.0f}   {verdict}\n    -> {last}")
        previous = (name, seconds, limited, mb) if limited is not False else None
    print(f"hostile inputs: {'all within' if ok else 'NOT all within'} the limits ({LIMIT_S:.0f} s and {LIMIT_MB} MB "
          f"for a refusal; 2x the baseline for the {LONG_ROWS_MB} MB check)")
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
