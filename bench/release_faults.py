"""Releases under faults on the Hub emulator with the real client: how many fault cases end consistent, and how
long a release takes to give a clear error under a persistent 5xx.

    .venv/bin/python bench/release_faults.py [--runs 3]

Part 1 plays every case of adapterci.hub_emulator.faultmatrix (release, first release, promote and rollback × each
Hub call they make, LFS batch/upload/verify included × {persistent 503, an answer after the client's timeout
although the server acted, a dropped connection, SIGKILL of the client, one 429 with Retry-After, a replica
lagging behind the writes on reads and resolve, a truncated LFS object}) with short test timeouts, and counts the
cases whose registry passes the audit after the fault and after a rerun (goal: all), per fault kind. Part 2 uses the default retry settings (ADAPTERCI_HUB_RETRY_S=20,
ADAPTERCI_HUB_BACKOFF=1) and times a release while listing the commits answers 503 forever (goal: a clear error
within 30 s), as a ratio of a clean release measured in the same run, with the number of requests it made. (A
paginated call: huggingface_hub retries it itself; before the one retry layer this case took 130 s and 32
requests on this machine, measured with the code of commit ac48b96.) Part 3, with the same settings: a release
under a persistent 429 with `Retry-After: 2` (goal: a clear error within the budget), and 5 parallel releases
while every read lags 3 s behind the writes (goal: all 5 finish, distinct versions).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from adapterci.hub_emulator import HubEmulator  # noqa: E402  (does not import huggingface_hub)
from release_time import build_adapter, timed, variant  # noqa: E402

FAST = {"ADAPTERCI_HUB_TIMEOUT": "1", "ADAPTERCI_HUB_RETRY_S": "1", "ADAPTERCI_HUB_BACKOFF": "0.05"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="clean releases for the baseline")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="adapterci-bench-"))
    token = "hf_" + secrets.token_hex(16)
    with HubEmulator(token=token) as hub:
        os.environ.update(HF_ENDPOINT=hub.url, HF_TOKEN=token, HF_HOME=str(root / "hf"), HF_HUB_DISABLE_TELEMETRY="1",
                          HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_PROGRESS_BARS="1",
                          ADAPTERCI_REGISTRY="hf://tester/faults")
        os.environ.pop("HF_HUB_OFFLINE", None)  # set before anything imports huggingface_hub
        from adapterci.config import load_config
        from adapterci.errors import RegistryError
        from adapterci.hub_emulator.faultmatrix import CASES, Scenario
        from adapterci.release import release

        source = build_adapter(root / "adapter")
        made: dict[int, Path] = {}

        def adapters(i: int) -> Path:
            if i not in made:
                made[i] = variant(source, root, i)
            return made[i]

        cfg = load_config(REPO / "adapterci.yaml")
        os.environ.update(FAST)
        scenario = Scenario(hub, cfg, "tester/faults", adapters, late_s=1.5, snapshots={})
        start, failures = time.perf_counter(), {}
        for op, call, kind in CASES:
            violations = scenario.run(op, call, kind)
            if violations:
                failures[f"{op} / {call} / {kind}"] = violations
        matrix_s = time.perf_counter() - start
        for key in FAST:
            os.environ.pop(key)

        cfg.registry = "hf://tester/timing"
        clean = [timed(lambda: release(cfg, adapters(10 + i))) for i in range(args.runs)]
        outage_s, requests, error = outage(hub, cfg, adapters(99), RegistryError, status=503, headers=None)
        limited_s, limited_requests, limited = outage(hub, cfg, adapters(98), RegistryError, status=429,
                                                      headers={"Retry-After": "2"})
        hub.faults.clear()
        cfg.registry = "hf://tester/lagging"
        release(cfg, adapters(20))
        hub.lag_s = 3.0
        began = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-m", "adapterci", "release", "--config", str(cfg.path),
                                   "--unverified", "--adapter", str(adapters(21 + i)), "--json"],
                                  env={**os.environ, "ADAPTERCI_REGISTRY": cfg.registry},
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(5)]
        outs = [proc.communicate(timeout=600) for proc in procs]
        lag_s = time.perf_counter() - began
        hub.lag_s = 0.0
        versions = sorted(json.loads(out)["version"] for (out, _), proc in zip(outs, procs) if proc.returncode == 0)
        lag_errors = [err.strip().splitlines()[-1] for (_, err), proc in zip(outs, procs) if proc.returncode and err.strip()]
    base = statistics.median(clean)
    print(f"fault cases consistent after the fault and after a rerun: {len(CASES) - len(failures)}/{len(CASES)} "
          f"({matrix_s:.0f} s for the matrix)")
    for kind in dict.fromkeys(kind for _, _, kind in CASES):
        cases = [f"{op} / {call} / {k}" for op, call, k in CASES if k == kind]
        print(f"  {kind}: {sum(case not in failures for case in cases)}/{len(cases)}")
    for case, violations in failures.items():
        print(f"  INCONSISTENT {case}: {'; '.join(violations)}")
    print(f"clean release (baseline): median {base:.2f} s over {args.runs}")
    print(f"persistent 503 on list commits: {'clear error' if error else 'NO ERROR'} after {outage_s:.1f} s "
          f"(x{outage_s / base:.0f} baseline; goal <= 30 s), {requests} requests")
    print(f"  {error}")
    print(f"persistent 429 (Retry-After: 2) on list commits: {'clear error' if limited else 'NO ERROR'} after "
          f"{limited_s:.1f} s, {limited_requests} requests")
    print(f"  {limited}")
    print(f"5 parallel releases under 3 s replica lag: {len(versions)}/5 finished in {lag_s:.0f} s, versions "
          f"{versions} ({'distinct' if len(set(versions)) == len(versions) else 'DUPLICATES'})")
    for line in lag_errors:
        print(f"  {line}")
    shutil.rmtree(root, ignore_errors=True)


def outage(hub, cfg, adapter: Path, registry_error: type, status: int, headers: dict | None) -> tuple[float, int, str]:
    """Release while listing the commits answers `status` forever: (seconds, requests, the error; "" if none)."""
    from adapterci.hub_emulator.faultmatrix import CALLS
    from adapterci.release import release

    hub.faults.clear()
    method, path = CALLS["list commits"]
    hub.add_fault(path, method=method, status=status, headers=headers, times=-1)
    before, error = len(hub.requests), ""
    began = time.perf_counter()
    try:
        release(cfg, adapter)
    except registry_error as exc:
        error = str(exc)
    return time.perf_counter() - began, len(hub.requests) - before, error


if __name__ == "__main__":
    main()
