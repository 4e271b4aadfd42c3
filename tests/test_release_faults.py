"""Release, promote and rollback under real faults: each Hub call × {5xx, a timeout after the server acted, a
dropped connection, SIGKILL of the client, a 429 with Retry-After, a lagging replica, a truncated LFS upload},
and parallel releases with injected delays, late answers and listings
that lag behind the writes. After every case the
emulator's own state is audited (adapterci.hub_emulator.faultmatrix): no version minted twice, every tag on a
complete commit matching its manifest, `canary`/`stable` present and serving exactly their version; then the
operation runs again without faults and must leave the refs where they belong."""

from __future__ import annotations

import json
import subprocess

import pytest

from adapterci.config import load_config
from adapterci.hub_emulator.faultmatrix import CASES, Scenario, audit

pytestmark = pytest.mark.xdist_group("registry")
REPO_ID = "tester/sentiment"
LATE_S = 1.2  # > ADAPTERCI_HUB_TIMEOUT below: the client gives up before the answer comes
_SNAPSHOTS: dict = {}


@pytest.fixture
def scenario(example_project, hub_emulator, adapters, monkeypatch) -> Scenario:
    for key, value in {"ADAPTERCI_HUB_TIMEOUT": "1", "ADAPTERCI_HUB_RETRY_S": "0.5", "ADAPTERCI_HUB_BACKOFF": "0.05",
                       "ADAPTERCI_REGISTRY": f"hf://{REPO_ID}"}.items():
        monkeypatch.setenv(key, value)
    cfg = load_config(example_project / "adapterci.yaml")
    return Scenario(hub_emulator, cfg, REPO_ID, adapters, LATE_S, _SNAPSHOTS)


def _case(op: str, call: str, kind: str):
    """The Hub-fidelity cases (rate limits, replica lag, LFS uploads) run in the slow tier: each waits out a
    `Retry-After`, a lag or a whole first release."""
    slow = kind in ("429", "stale", "truncate") or call.startswith("lfs ")
    return pytest.param(op, call, kind, id=f"{op}-{call.replace(' ', '_')}-{kind}",
                        marks=[pytest.mark.slow] if slow else [])


@pytest.mark.parametrize("op,call,kind", [_case(*case) for case in CASES])
def test_release_fault_matrix_stays_consistent_and_rerun_finishes(scenario, op, call, kind):
    assert scenario.run(op, call, kind) == []


@pytest.mark.parametrize("faults", ["delays", "late answers", "stale reads"])
def test_release_parallel_releases_end_with_canary_on_the_highest(scenario, hub_emulator, adapters, faults):
    """Three releases at once (plus the seeded v0.1.0): distinct versions, `canary` on the highest."""
    scenario.seed("released")
    if faults == "delays":  # every writer's reads go stale while the others commit
        hub_emulator.add_fault(r"/refs$", action="delay", delay=0.3, times=6)
        hub_emulator.add_fault(r"/commit/releases$", action="delay", delay=0.4, times=3)
        hub_emulator.add_fault(r"/commit/canary$", action="delay", delay=0.5, times=2)
    elif faults == "late answers":  # writes that land after their client gave up, and a canary swap answered late
        hub_emulator.add_fault(r"/commit/releases$", action="late", delay=LATE_S, times=2)
        hub_emulator.add_fault(r"/commit/canary$", action="late", delay=LATE_S, times=2)
        hub_emulator.add_fault(r"/tag/", method="POST", action="late", delay=LATE_S, times=1)
    else:  # read-after-write delay: listings show the refs and commits as they were 1 s ago
        hub_emulator.add_fault(r"/refs$", method="GET", action="stale", delay=1.0, times=-1)
        hub_emulator.add_fault(r"/commits/releases$", method="GET", action="stale", delay=1.0, times=-1)
    procs = [subprocess.Popen([*scenario.command("release")[:-1], str(adapters(i)), "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(1, 4)]
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0] * 3, [err[-1500:] for _, err in outs]
    assert sorted(json.loads(out)["version"] for out, _ in outs) == ["v0.1.1", "v0.1.2", "v0.1.3"]
    found = audit(hub_emulator, REPO_ID)
    assert found.problems == [] and found.serving == {"canary": "v0.1.3", "stable": "v0.1.0"}
    assert all(f["fired"] for f in hub_emulator.faults.list())
