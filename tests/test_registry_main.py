"""What an unpinned consumer gets and how every ref move is checked, on both backends and through the real
huggingface_hub client against the Hub emulator: `main` serves `stable` (a README before the first promote),
every ref move is read back, `rollback --from`, and the environment's proxies."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapterci.cli import cli
from adapterci.config import load_config
from adapterci.registry import open_registry
from adapterci.release import promote, release, retract_canary, rollback
from proxy_server import Proxy

pytestmark = pytest.mark.xdist_group("registry")
REPO_ID = "tester/sentiment"
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")

UNPINNED_LOAD = """
import sys
from peft import PeftModel
from transformers import AutoModelForCausalLM
base = AutoModelForCausalLM.from_pretrained(sys.argv[1])
model = PeftModel.from_pretrained(base, sys.argv[2])
print(model.peft_config["default"].lora_dropout)
"""


@pytest.fixture
def hub_cfg(example_project, hub_emulator, monkeypatch):
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("ADAPTERCI_REGISTRY", f"hf://{REPO_ID}")
    return load_config(example_project / "adapterci.yaml")


def main_files(hub) -> dict[str, str]:
    """The files `main` holds in the emulator (path -> blob id), read from its state, not through adapterci."""
    repo = hub.state.repo("models", REPO_ID)
    return dict(repo.commits[repo.branches["main"]].files)


def served(hub, ref: str) -> dict[str, str]:
    """The files `ref` serves, its `adapterci-ref.json` aside."""
    repo = hub.state.repo("models", REPO_ID)
    return {p: b for p, b in repo.commits[repo.branches[ref]].files.items() if p != "adapterci-ref.json"}


def version_files(hub, version: str) -> dict[str, str]:
    repo = hub.state.repo("models", REPO_ID)
    return dict(repo.commits[repo.tags[version]].files)


def cli_run(example_project: Path, *args: str):
    return CliRunner().invoke(cli, [args[0], "--config", str(example_project / "adapterci.yaml"), *args[1:]])


def test_hub_main_serves_stable_for_an_unpinned_from_pretrained(hub_cfg, hub_emulator, adapters, tiny_peft_adapter):
    """release v0.1.0 and v0.1.1, promote v0.1.0, retract the canary: `PeftModel.from_pretrained(base, REPO)` with
    no revision loads v0.1.0. Before the first promote `main` holds only a README (no weights)."""
    from huggingface_hub import HfApi

    base_dir, _ = tiny_peft_adapter
    assert [release(hub_cfg, adapters(i)).version for i in (1, 2)] == ["v0.1.0", "v0.1.1"]
    assert set(main_files(hub_emulator)) == {".gitattributes", "README.md"}
    readme = Path(HfApi().hf_hub_download(REPO_ID, "README.md")).read_text()
    assert "No version of this adapter has been promoted to `stable` yet" in readme
    repo = hub_emulator.state.repo("models", REPO_ID)
    assert all("adapterci-version" not in c.message for c in repo.history("main"))  # releases never land on main

    promote(hub_cfg, "v0.1.0")
    retract_canary(hub_cfg)
    assert served(hub_emulator, "main") == served(hub_emulator, "stable") == version_files(hub_emulator, "v0.1.0")
    assert served(hub_emulator, "canary") == version_files(hub_emulator, "v0.1.0")
    proc = subprocess.run([sys.executable, "-c", UNPINNED_LOAD, str(base_dir), REPO_ID], capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-1] == "0.01"  # adapters(1): lora_dropout 1/100, i.e. v0.1.0

    promote(hub_cfg, "v0.1.1")  # main follows every move of stable, rollback included
    assert served(hub_emulator, "main") == version_files(hub_emulator, "v0.1.1")
    rollback(hub_cfg, "v0.1.1")
    assert served(hub_emulator, "main") == version_files(hub_emulator, "v0.1.0")


def test_local_main_is_a_readme_until_promoted_then_follows_stable(example_project, adapters):
    cfg = load_config(example_project / "adapterci.yaml")
    first, second = release(cfg, adapters(1)), release(cfg, adapters(2))
    reg = open_registry(cfg)
    data = json.loads((reg.root / "refs.json").read_text())
    placeholder = data["branches"]["main"]
    assert sorted(reg.tree(placeholder)) == ["README.md"]
    assert "promoted" in reg.read_file(placeholder, "README.md").decode()
    assert data["branches"]["releases"] == second.commit and [c.id for c in reg.commits()][:2] == [second.commit,
                                                                                                  first.commit]
    promote(cfg, "v0.1.1")
    promote(cfg, "v0.1.0")
    refs = reg.refs()
    assert refs.branches["main"] == refs.target("main") == refs.target("stable") == first.commit
    rollback(cfg, "v0.1.0")
    assert reg.refs().branches["main"] == second.commit


def test_rollback_from_rolls_back_once_and_a_rerun_finishes_main(hub_cfg, hub_emulator, adapters, example_project):
    """`rollback --from V` is a no-op unless stable serves V; an interrupted rollback (stable moved, `main` not
    yet) is finished by the rerun, which does not roll back twice."""
    release(hub_cfg, adapters(1))
    release(hub_cfg, adapters(2))
    promote(hub_cfg, "v0.1.0")
    promote(hub_cfg, "v0.1.1")
    hub_emulator.add_fault(r"/commit/main$", status=503, times=-1)  # `main` cannot follow: outage after the swap
    interrupted = cli_run(example_project, "rollback", "--from", "v0.1.1")
    assert interrupted.exit_code == 1 and "`main` did not follow" in interrupted.output, interrupted.output
    assert served(hub_emulator, "stable") == version_files(hub_emulator, "v0.1.0")
    assert served(hub_emulator, "main") == version_files(hub_emulator, "v0.1.1")
    hub_emulator.faults.clear()

    rerun = cli_run(example_project, "rollback", "--from", "v0.1.1")
    assert rerun.exit_code == 0, rerun.output
    assert rerun.output.strip().endswith("serves v0.1.0, not v0.1.1: nothing to roll back.")
    assert served(hub_emulator, "stable") == served(hub_emulator, "main") == version_files(hub_emulator, "v0.1.0")
    repo = hub_emulator.state.repo("models", REPO_ID)
    state = json.loads(hub_emulator.state.blobs[repo.commits[repo.branches["stable"]].files["adapterci-ref.json"]])
    assert state["history"] == [repo.tags["v0.1.0"]]  # rolled back once: v0.1.0 is all that is left to walk back

    bad = cli_run(example_project, "rollback", "--from", "latest")
    assert bad.exit_code == 2 and "is not a version" in bad.output


def test_a_truncated_copy_fails_the_move_loudly_and_a_rerun_repairs_it(hub_cfg, hub_emulator, adapters,
                                                                       example_project, monkeypatch):
    """The copy of a ref move reads the source file through the network; cut short in transit (here by a proxy),
    the new head serves half a file: the read-back fails the command (exit 1) and the rerun rewrites the ref."""
    release(hub_cfg, adapters(1))
    release(hub_cfg, adapters(2))
    promote(hub_cfg, "v0.1.0")  # `stable` exists: the next promote moves it with a copy
    with Proxy(truncate=r"/resolve/[0-9a-f]{40}/adapter_config\.json$") as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        moved = cli_run(example_project, "promote", "v0.1.1")
    assert proxy.truncated >= 1
    assert moved.exit_code == 1, moved.output
    assert "read-back of `stable`" in moved.output and "adapter_config.json differs" in moved.output
    assert served(hub_emulator, "stable") != version_files(hub_emulator, "v0.1.1")

    monkeypatch.delenv("HTTP_PROXY")
    again = cli_run(example_project, "promote", "v0.1.1")
    assert again.exit_code == 0, again.output
    assert served(hub_emulator, "stable") == served(hub_emulator, "main") == version_files(hub_emulator, "v0.1.1")


def test_hub_calls_go_through_the_environment_proxy_and_no_proxy_bypasses_it(hub_cfg, hub_emulator, adapters,
                                                                             monkeypatch):
    with Proxy() as proxy:
        monkeypatch.setenv("http_proxy", proxy.url)
        assert release(hub_cfg, adapters(1)).version == "v0.1.0"
        paths = [line.split(" ", 1)[1] for line in proxy.seen]
        assert all(p.startswith(hub_emulator.url) for p in paths) and len(paths) >= 10
        for call in ("/api/models/tester/sentiment/refs", "/preupload/releases", "/commit/releases", "/tag/",
                     "/resolve/"):
            assert any(call in p for p in paths), (call, paths)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        before = len(proxy.seen)
        assert release(hub_cfg, adapters(2)).version == "v0.1.1"
        assert len(proxy.seen) == before


@pytest.mark.slow
def test_five_parallel_releases_under_three_seconds_of_replica_lag_all_finish(hub_cfg, hub_emulator, adapters,
                                                                              example_project):
    """Every read lags 3 s behind the writes: every writer keeps losing rounds until it sees the others' commits;
    backoff with jitter within ADAPTERCI_REGISTRY_RACE_S (not a fixed number of attempts) lets all five finish."""
    import os
    import time

    release(hub_cfg, adapters(0))
    time.sleep(3.2)  # a replica only lags behind states it had: let the seeded state be older than the lag
    hub_emulator.lag_s = 3.0  # every read (refs, commits, revision, tree, paths-info, resolve) lags 3 s
    command = [sys.executable, "-m", "adapterci", "release", "--config", str(example_project / "adapterci.yaml"),
               "--unverified", "--json", "--adapter"]
    env = {**os.environ, "ADAPTERCI_HUB_TIMEOUT": "10"}
    procs = [subprocess.Popen([*command, str(adapters(i))], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i in range(1, 6)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * 5, [err[-1500:] for _, err in outs]
    conflicts = [r for r in hub_emulator.requests if r["path"].endswith("/commit/releases") and r["status"] == 412]
    assert len(conflicts) >= 4  # the lag made writers lose rounds (at least one loser per winning upload)
    assert sorted(json.loads(out)["version"] for out, _ in outs) == [f"v0.1.{i}" for i in range(1, 6)]
    assert served(hub_emulator, "canary") == version_files(hub_emulator, "v0.1.5")
    assert set(main_files(hub_emulator)) == {".gitattributes", "README.md"}  # nothing promoted: main untouched
