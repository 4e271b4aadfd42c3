"""First `adapterci run` vs an unchanged rerun on the example project (target: rerun <= 10% of the first run).

Each run is a fresh `adapterci run --no-release` process (imports included, as a user or CI sees it) in a
fresh copy of the example project, so the first run trains and evaluates from scratch and the rerun finds the
cached check results, adapter, eval results and gate decision.

    .venv/bin/python bench/rerun.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "tests" / "projects" / "tiny"  # the tiny-model example (its models/ links to the repository's)
TARGET = 0.10


def timed_run(project: Path, env: dict) -> tuple[float, dict]:
    adapterci = Path(sys.executable).parent / "adapterci"
    started = time.perf_counter()
    proc = subprocess.run([str(adapterci), "run", "--no-release", "--json"], cwd=project, env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode not in (0, 1, 3):  # a gate verdict is a result; anything else is a broken run
        sys.exit(f"adapterci run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return seconds, json.loads(proc.stdout)


def main() -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("ADAPTERCI_CACHE_DIR", None)
    with tempfile.TemporaryDirectory(prefix="adapterci-bench-") as tmp:
        project = Path(tmp) / "project"
        shutil.copytree(TINY, project, ignore=shutil.ignore_patterns(".adapterci"))
        subprocess.run(["git", "init", "-q", str(project)], check=True)
        first, first_out = timed_run(project, env)
        rerun, rerun_out = timed_run(project, env)
    statuses = {s["name"]: s["status"] + (" (reused)" if s["reused"] and s["status"] != "cached" else "")
                for s in rerun_out["stages"]}
    print(f"first run: {first:7.1f} s  " + ", ".join(f"{s['name']} {s['seconds']:.1f}s" for s in first_out["stages"]))
    print(f"rerun:     {rerun:7.1f} s  " + ", ".join(f"{n} {st}" for n, st in statuses.items()))
    ratio = rerun / first
    print(f"ratio rerun/first: {ratio:.3f} (target <= {TARGET})  verdict {first_out['verdict']}")
    if not all(s["reused"] for s in rerun_out["stages"]):
        sys.exit("the unchanged rerun did not reuse every stage")


if __name__ == "__main__":
    main()
