"""The `hf://` backend specifically: loading a release through the client by revision, transient faults the
backend rides out, privacy, and the token never leaking."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapterci.cli import cli
from adapterci.config import load_config
from adapterci.errors import RegistryError
from adapterci.registry import open_registry
from adapterci.release import promote, release

pytestmark = pytest.mark.xdist_group("registry")
REPO_ID = "tester/sentiment"

LOAD_SCRIPT = """
import hashlib, sys
from peft import PeftModel
from transformers import AutoModelForCausalLM
base = AutoModelForCausalLM.from_pretrained(sys.argv[1])
model = PeftModel.from_pretrained(base, sys.argv[2], revision=sys.argv[3])
h = hashlib.sha256()
for key, value in sorted(model.state_dict().items()):
    if "lora_" in key:
        h.update(key.replace(".default", "").encode() + value.numpy().tobytes())
print(h.hexdigest())
"""


def lora_digest(adapter_dir: Path) -> str:
    import hashlib

    from safetensors.torch import load_file

    h = hashlib.sha256()
    for key, value in sorted(load_file(adapter_dir / "adapter_model.safetensors").items()):
        h.update(key.encode() + value.numpy().tobytes())
    return h.hexdigest()


@pytest.fixture
def cfg(example_project, hub_emulator):
    config = load_config(example_project / "adapterci.yaml")
    config.registry = f"hf://{REPO_ID}"
    return config


def test_release_loads_with_peft_from_the_hub_by_revision(cfg, hub_emulator, tiny_peft_adapter):
    base_dir, adapter_dir = tiny_peft_adapter
    assert release(cfg, adapter_dir).version == "v0.1.0"
    proc = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, str(base_dir), REPO_ID, "v0.1.0"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == lora_digest(adapter_dir)
    served = [r["path"] for r in hub_emulator.requests if r["method"] == "GET" and "/resolve/" in r["path"]]
    assert any(p.endswith("/adapter_model.safetensors") for p in served)
    assert hub_emulator.state.repo("models", REPO_ID).private


AUTO_LOAD_SCRIPT = """
import hashlib, sys
from peft import AutoPeftModelForCausalLM
model = AutoPeftModelForCausalLM.from_pretrained(sys.argv[1], revision=sys.argv[2])
h = hashlib.sha256()
for key, value in sorted(model.state_dict().items()):
    if "lora_" in key:
        h.update(key.replace(".default", "").encode() + value.numpy().tobytes())
print(model.peft_config["default"].base_model_name_or_path, h.hexdigest())
"""


def test_release_is_portable_automodel_fetches_the_base_from_the_hub(cfg, hub_emulator, tiny_peft_adapter, tmp_path):
    """The published adapter names its base by Hub id and revision: loading it elsewhere needs no local path."""
    from huggingface_hub import HfApi

    base_dir, source = tiny_peft_adapter
    api = HfApi()
    api.create_repo("tester/tiny-base")
    base_sha = api.upload_folder(repo_id="tester/tiny-base", folder_path=str(base_dir)).oid
    adapter = shutil.copytree(source, tmp_path / "adapter")
    train = json.loads((adapter / "adapterci-train.json").read_text())
    train["base_model"] = {"base_model": str(base_dir), "content_hash": "b" * 64, "hub_id": "tester/tiny-base",
                           "hub_revision": base_sha}
    (adapter / "adapterci-train.json").write_text(json.dumps(train))
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == str(base_dir)
    release(cfg, adapter)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run([sys.executable, "-c", AUTO_LOAD_SCRIPT, REPO_ID, "v0.1.0"], cwd=elsewhere,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["tester/tiny-base", lora_digest(source)]
    repo = hub_emulator.state.repo("models", REPO_ID)
    published = json.loads(hub_emulator.state.blobs[repo.commits[repo.tags["v0.1.0"]].files["adapter_config.json"]])
    assert (published["base_model_name_or_path"], published["revision"]) == ("tester/tiny-base", base_sha)
    published = b"".join(hub_emulator.state.blobs[sha] for sha in repo.commits[repo.tags["v0.1.0"]].files.values())
    assert str(base_dir).encode() not in published and str(tmp_path).encode() not in published


def test_release_rides_out_transient_faults(cfg, hub_emulator, tiny_peft_adapter):
    _, adapter_dir = tiny_peft_adapter
    hub_emulator.add_fault(r"/refs$", status=503, times=2)
    hub_emulator.add_fault(r"/commit/releases$", action="drop", times=1)  # connection lost mid-upload
    hub_emulator.add_fault(r"/commit/releases$", status=502, times=1)
    hub_emulator.add_fault(r"/tag/", method="POST", action="delay", delay=3.0, times=1)  # > the 2 s timeout
    result = release(cfg, adapter_dir)
    assert (result.version, result.no_op) == ("v0.1.0", False)
    fired = {(f["path"], f["action"]): f["fired"] for f in hub_emulator.faults.list()}
    assert list(fired.values()) == [2, 1, 1, 1]
    refs = open_registry(cfg).refs()
    assert set(refs.tags) == {"v0.1.0"} and refs.branches["canary"] == result.commit


def test_release_persistent_outage_fails_cleanly_and_rerun_finishes(cfg, hub_emulator, tiny_peft_adapter):
    _, adapter_dir = tiny_peft_adapter
    hub_emulator.add_fault(r"/tag/", method="POST", status=503, times=-1)
    with pytest.raises(RegistryError, match=r"create tag v0.1.0 failed .* after \d+ attempts in [\d.]+ s: .*HTTP 503"):
        release(cfg, adapter_dir)
    assert open_registry(cfg).refs().tags == {}
    hub_emulator.faults.clear()
    result = release(cfg, adapter_dir)
    assert (result.version, result.finished) == ("v0.1.0", True)


def test_hub_token_never_appears_in_output(cfg, hub_emulator, tiny_peft_adapter, example_project, monkeypatch,
                                           capfd, caplog):
    caplog.set_level("DEBUG")
    _, adapter_dir = tiny_peft_adapter
    token = hub_emulator.token
    monkeypatch.setenv("ADAPTERCI_REGISTRY", f"hf://{REPO_ID}")
    config = ["--config", str(example_project / "adapterci.yaml")]
    runner = CliRunner()
    outputs = [runner.invoke(cli, ["release", *config, "--unverified", "--adapter", str(adapter_dir), *extra])
               for extra in ([], ["--json"])]
    outputs += [runner.invoke(cli, [cmd, *config, "--json"]) for cmd in ("promote", "versions")]
    hub_emulator.add_fault(r"/refs$", status=500, times=-1)
    outputs.append(runner.invoke(cli, ["rollback", *config]))
    hub_emulator.faults.clear()
    monkeypatch.setenv("HF_TOKEN", "hf_" + "x" * 32)  # a wrong token: the error must not echo it either
    outputs.append(runner.invoke(cli, ["release", *config, "--unverified", "--adapter", str(adapter_dir), "--bump", "minor"]))
    assert [r.exit_code for r in outputs] == [0, 0, 0, 0, 1, 1]
    assert "the Hub rejected the token" in outputs[-1].output
    text = "\n".join(r.output for r in outputs) + capfd.readouterr().out + capfd.readouterr().err + caplog.text
    assert "Error:" in text and "v0.1.0" in text
    assert token not in text and "x" * 32 not in text
    stored = b"".join(hub_emulator.state.blobs.values())
    assert token.encode() not in stored


def test_promote_through_hub_uses_branches_not_main(cfg, hub_emulator, tiny_peft_adapter):
    _, adapter_dir = tiny_peft_adapter
    released = release(cfg, adapter_dir)
    promote(cfg)
    repo = hub_emulator.state.repo("models", REPO_ID)
    assert repo.branches["canary"] == repo.branches["stable"] == released.commit == repo.tags["v0.1.0"]
    assert set(repo.tags) == {"v0.1.0"}  # the history of `stable` lives in its own branch, not in tags
    assert json.loads(repo.commits[released.commit].files and hub_emulator.state.blobs[
        repo.commits[released.commit].files["adapterci.json"]])["version"] == "v0.1.0"



def test_release_waits_out_a_429_retry_after_within_the_budget(cfg, hub_emulator, adapters, monkeypatch):
    """A 429 whose `Retry-After` fits in ADAPTERCI_HUB_RETRY_S is waited out (the retry comes no sooner); one that
    does not fit (an HTTP date far ahead) fails at once with a clear error, without hammering the Hub."""
    import time

    monkeypatch.setenv("ADAPTERCI_HUB_RETRY_S", "5")
    hub_emulator.add_fault(r"/tag/", method="POST", status=429, headers={"Retry-After": "2"}, times=1)
    start = time.monotonic()
    assert release(cfg, adapters(1)).version == "v0.1.0"
    assert time.monotonic() - start >= 2
    tags = [r["status"] for r in hub_emulator.requests if r["method"] == "POST" and "/tag/" in r["path"]]
    assert tags == [429, 200]

    hub_emulator.add_fault(r"/commit/releases$", status=429, times=-1,
                           headers={"Retry-After": "Fri, 31 Dec 2100 23:59:59 GMT"})
    before, start = len(hub_emulator.requests), time.monotonic()
    with pytest.raises(RegistryError, match=r"upload failed .* after 1 attempts .*HTTP 429.*\(Retry-After: \d+ s\)"):
        release(cfg, adapters(2))
    assert time.monotonic() - start < 5
    assert [r["path"] for r in hub_emulator.requests[before:]].count(f"/api/models/{REPO_ID}/commit/releases") == 1
