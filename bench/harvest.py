"""`adapterci harvest` at scale: 1M logged requests (JSONL and Parquet) to a labeling queue, goal <= 60 s and
<= 1 GB peak memory. The logs are the traffic simulator's (canary + stable, its error types, feedback, task
success and safety flags; about 16% of the requests fail) with the example's prompts made distinct per request (a
ticket sentence of random words), so that redaction and MinHash see 1M different texts, not 24 repeated ones.
Each harvest runs in a fresh process (`adapterci harvest --limit 1000` on the example's config): its wall time
and peak resident memory are printed, with rows/s.

    .venv/bin/python bench/harvest.py [--rows 1000000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from adapterci.canary.config import LogFields
from adapterci.canary.simulate import conversations, simulate, write_logs

REPO = Path(__file__).resolve().parent.parent
CHUNK_HOURS, PER_HOUR = 20, 5000  # 100,000 rows per chunk
RUN = """
import json, resource, sys, time
from adapterci.config import load_config
from adapterci.harvest.harvest import harvest
cfg = load_config(sys.argv[1])
start = time.perf_counter()
result = harvest(cfg, [sys.argv[2]], limit=1000, out=sys.argv[3])
print(json.dumps({"seconds": time.perf_counter() - start, "rows": result.rows, "failures": result.failures,
                  "clusters": len(result.clusters), "queued": len(result.items),
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_logs_files(directory: Path, rows: int, seed: int) -> tuple[Path, Path]:
    """The same simulated requests as one JSONL and one Parquet file, written chunk by chunk."""
    import pyarrow.parquet as pq

    rng, words = np.random.default_rng(seed), [f"w{i}" for i in range(5000)]
    jsonl, parquet = directory / "requests.jsonl", directory / "requests.parquet"
    writer = None
    with open(jsonl, "w", encoding="utf-8") as out:
        for chunk in range(rows // (CHUNK_HOURS * PER_HOUR)):
            requests = simulate(rng, CHUNK_HOURS, PER_HOUR, 0.1, "new error type at 2%",
                                start=1_767_225_600.0 + chunk * CHUNK_HOURS * 3600)
            texts = conversations(rng, requests)
            ticket = rng.integers(len(words), size=(len(requests), 6))
            texts["prompt"] = np.array([f"{p} Ticket {chunk}-{i}: {' '.join(words[w] for w in ticket[i])}."
                                        for i, p in enumerate(texts["prompt"])], dtype=object)
            texts["request_id"] = np.array([f"req-{chunk}-{i}" for i in range(len(requests))], dtype=object)
            part = write_logs(requests, directory / "chunk.parquet", {}, LogFields(), texts)
            table = pq.read_table(part)
            if writer is None:
                writer = pq.ParquetWriter(parquet, table.schema)
            writer.write_table(table)
            for row in table.to_pylist():
                out.write(json.dumps(row) + "\n")
    writer.close()
    (directory / "chunk.parquet").unlink()
    return jsonl, parquet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        files = write_logs_files(Path(tmp), args.rows, args.seed)
        print(f"wrote {args.rows:,} simulated requests as JSONL ({files[0].stat().st_size / 1e6:.0f} MB) and "
              f"Parquet ({files[1].stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - started:.0f} s\n")
        for path in files:
            done = subprocess.run([sys.executable, "-c", RUN, str(REPO / "adapterci.yaml"), str(path),
                                   str(Path(tmp) / f"queue-{path.suffix[1:]}")], capture_output=True, text=True)
            if done.returncode:
                sys.exit(done.stderr)
            r = json.loads(done.stdout)
            goal = "meets" if r["seconds"] <= 60 and r["peak_mb"] <= 1024 else "MISSES"
            print(f"{path.suffix[1:]:<8} {r['rows']:,} rows in {r['seconds']:.1f} s = {r['rows'] / r['seconds']:,.0f} "
                  f"rows/s, peak memory {r['peak_mb']:.0f} MB; {r['failures']:,} failures in {r['clusters']:,} "
                  f"clusters, {r['queued']} queued; {goal} the goal (<= 60 s, <= 1024 MB)")


if __name__ == "__main__":
    main()
