"""The canary workflow under act (host mode) against the Hub emulator: a dispatch that only reports, the hourly
schedule that rolls a slow canary back (verdict and tables in the step summary), and the next hour's CONTINUE."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from test_canary import fake_adapter
from test_workflows import BIN, HUB_REPO, TOKEN, act, make_project, serves

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("act")]


def test_workflows_canary_reports_rolls_back_then_continues(tmp_path: Path) -> None:
    from adapterci.canary.config import LogFields
    from adapterci.canary.simulate import simulate, write_logs
    from adapterci.hub_emulator.server import HubEmulator

    project = make_project(tmp_path / "project")
    home = tmp_path / "home"
    home.mkdir()
    with HubEmulator(token=TOKEN) as hub:
        env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0", "HF_TOKEN": TOKEN,
               "ADAPTERCI_REGISTRY": f"hf://{HUB_REPO}", "HF_HOME": str(home / "hf-setup")}
        for args in (["release", "--unverified", "--adapter", str(fake_adapter(tmp_path, "a"))], ["promote"],
                     ["release", "--unverified", "--adapter", str(fake_adapter(tmp_path, "b"))]):
            done = subprocess.run([str(BIN / "adapterci"), *args], cwd=project, env=env, capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
        repo = hub.state.repo("model", HUB_REPO)
        v010 = repo.tags["v0.1.0"]
        for commit in repo.commits.values():  # released when the simulated logs start (2026-01-01)
            commit.date = 1_767_225_600.0
        requests = simulate(np.random.default_rng(0), 4, 2500, 0.2, "latency +30%")
        write_logs(requests, project / "logs" / "requests.jsonl", {"canary": "v0.1.1", "stable": v010}, LogFields())

        def run(event_name: str, event: dict):
            return act(project, event_name, event, "adapter-canary.yml", home,
                       env={"HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0"}, secrets={"HF_TOKEN": TOKEN},
                       variables={"ADAPTERCI_REGISTRY": f"hf://{HUB_REPO}", "ADAPTERCI_CANARY_LOGS": "logs/*.jsonl"})

        report_only = run("workflow_dispatch", {"inputs": {"act": False}})
        assert report_only.jobs == {"canary": "failure"}, report_only.log[-4000:]  # ROLLBACK fails the run ...
        assert report_only.outputs[("canary", "verdict")] == "ROLLBACK"
        assert serves(hub, HUB_REPO, "canary") == "v0.1.1"  # ... but without `act` nothing moved

        hourly = run("schedule", {"schedule": "17 * * * *"})
        assert hourly.jobs == {"canary": "failure"}, hourly.log[-4000:]
        assert hourly.outputs[("canary", "verdict")] == "ROLLBACK"
        assert hourly.outputs[("canary", "exit-code")] == "1"
        assert serves(hub, HUB_REPO, "canary") == serves(hub, HUB_REPO, "stable") == "v0.1.0"
        summary = next(s for s in hourly.summaries if "adapterci canary" in s)
        assert "❌ ROLLBACK" in summary and "| `latency.p95 <= stable * 1.10` | ❌ VIOLATED |" in summary
        assert "### Error types" in summary and "Acted: `canary` -> v0.1.0" in summary

        next_hour = run("schedule", {"schedule": "17 * * * *"})
        assert next_hour.jobs == {"canary": "success"}, next_hour.log[-4000:]  # CONTINUE is not a failure
        assert next_hour.outputs[("canary", "verdict")] == "CONTINUE"
        assert next_hour.outputs[("canary", "exit-code")] == "3"
        assert TOKEN not in report_only.log + hourly.log + next_hour.log
