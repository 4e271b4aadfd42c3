"""The registry behaviour suite, run against both backends: the local `file://` registry and `hf://` through the
real huggingface_hub client talking to the Hub emulator."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from adapterci.config import load_config
from adapterci.errors import RegistryError, UsageError
from adapterci.registry import open_registry
from adapterci.release import promote, release, rollback

pytestmark = pytest.mark.xdist_group("registry")
REPO_ID = "tester/sentiment"


class FailingRegistry:
    """Wraps a local registry and fails one primitive (the local stand-in for an injected Hub fault)."""

    def __init__(self, inner, fail: str):
        self._inner, self._fail = inner, fail

    def __getattr__(self, name):
        attr = getattr(self._inner, name)
        if name == self._fail:
            def failing(*args, **kwargs):
                raise RegistryError(f"injected failure in {name}")
            return failing
        return attr


# Where each release step fails: (emulator fault rule, local primitive to fail).
STEPS = {
    "preupload": ({"path": r"/preupload/", "status": 422, "times": -1}, "upload"),
    "commit": ({"path": r"/commit/releases$", "status": 422, "times": -1}, "upload"),
    "verify": ({"path": r"/tree/[0-9a-f]{40}", "method": "GET", "status": 422, "times": -1}, "tree"),
    "tag": ({"path": r"/tag/", "method": "POST", "body_contains": "v0.", "status": 422, "times": -1}, "create_tag"),
    "canary": ({"path": r"/commit/canary$", "status": 503, "times": -1}, "set_ref"),  # an outage outlasting retries
}


class Backend:
    def __init__(self, kind: str, cfg, hub=None):
        self.kind, self.cfg, self.hub = kind, cfg, hub

    def registry(self):
        return open_registry(self.cfg)

    def failing(self, step: str):
        """A registry whose `step` fails (Hub: an armed emulator fault; local: a failing primitive)."""
        rule, primitive = STEPS[step]
        if self.hub is None:
            return FailingRegistry(self.registry(), primitive)
        self.hub.add_fault(**rule)
        return self.registry()

    def heal(self) -> None:
        if self.hub is not None:
            self.hub.faults.clear()

    def visible_refs(self) -> dict:
        refs = self.registry().refs()
        return {"tags": refs.tags, "canary": refs.target("canary"), "stable": refs.target("stable")}


@pytest.fixture(params=["local", "hub"])
def backend(request, example_project: Path) -> Backend:
    cfg = load_config(example_project / "adapterci.yaml")
    if request.param == "local":
        return Backend("local", cfg)
    hub = request.getfixturevalue("hub_emulator")
    cfg.registry = f"hf://{REPO_ID}"
    return Backend("hub", cfg, hub)


def test_release_first_version_moves_canary_and_lists_it(backend, adapters):
    result = release(backend.cfg, adapters(0))
    assert (result.version, result.no_op, result.refs) == ("v0.1.0", False, ["v0.1.0", "canary"])
    assert len(result.commit) == 40 and result.url.endswith("@v0.1.0")
    [version] = backend.registry().versions()
    assert (version.version, version.commit, version.refs) == ("v0.1.0", result.commit, ["canary"])
    assert version.manifest["content_hash"] == result.content_hash
    assert backend.registry().resolve("canary").version == "v0.1.0"
    assert backend.registry().resolve(result.commit[:10]).version == "v0.1.0"
    assert backend.registry().resolve("stable") is None


def test_release_same_content_is_a_no_op(backend, adapters):
    first = release(backend.cfg, adapters(0))
    commits = len(backend.registry().commits())
    again = release(backend.cfg, adapters(0))
    assert (again.version, again.commit, again.no_op) == ("v0.1.0", first.commit, True)
    assert len(backend.registry().commits()) == commits


def test_release_bumps_and_writes_card_manifest_and_release_json(backend, adapters, tmp_path):
    release(backend.cfg, adapters(0))
    run_dir = tmp_path / "run"
    (run_dir / "eval").mkdir(parents=True)
    (run_dir / "eval" / "results.json").write_text(json.dumps({"suites": {"sentiment": {"metrics": {
        "base": {"accuracy": 0.5}, "champion": {"accuracy": 0.8}, "candidate": {"accuracy": 0.9, "n": 60},
        "weird": "x"}}}, "unknown_key": 1}))
    (run_dir / "gate.json").write_text(json.dumps({"verdict": "PASS", "rules": [{"rule": "a >= b", "outcome": "PASS"}]}))
    result = release(backend.cfg, adapters(1), run_dir=run_dir, bump="minor")
    assert result.version == "v0.2.0"
    assert json.loads((run_dir / "release.json").read_text())["version"] == "v0.2.0"
    reg = backend.registry()
    manifest = json.loads(reg.read_file(result.commit, "adapterci.json"))
    assert manifest["version"] == "v0.2.0" and manifest["gate_verdict"] == "PASS"
    assert manifest["metrics"] == {"sentiment": {"accuracy": 0.9, "n": 60.0}}
    assert manifest["data_fingerprint"] == "d" * 64 and manifest["train"]["backend"] is None
    assert set(manifest["files"]) == {"adapter_config.json", "adapter_model.safetensors"}
    card = reg.read_file(result.commit, "README.md").decode()
    front = card.split("---")[1]
    assert "library_name: peft" in front and "model-index:" in front and "value: 0.9" in front
    assert "| sentiment | accuracy | 0.500 | 0.800 | 0.900 |" in card and "Verdict: **PASS**" in card
    assert reg.read_file(result.commit, "adapterci-train.json") is not None
    assert release(backend.cfg, adapters(2), bump="major").version == "v1.0.0"


def test_promote_and_rollback_move_stable(backend, adapters):
    v1 = release(backend.cfg, adapters(0))
    moved = promote(backend.cfg)
    assert (moved.version, moved.previous, moved.no_op) == ("v0.1.0", None, False)
    assert promote(backend.cfg).no_op
    v2 = release(backend.cfg, adapters(1))
    assert backend.visible_refs()["stable"] == v1.commit
    promote(backend.cfg)
    v3 = release(backend.cfg, adapters(2))
    promote(backend.cfg, "v0.1.2")
    assert {v.version: v.refs for v in backend.registry().versions()} == {
        "v0.1.2": ["canary", "stable"], "v0.1.1": [], "v0.1.0": []}
    back = rollback(backend.cfg)
    assert (back.version, back.previous) == ("v0.1.1", "v0.1.2")
    assert backend.visible_refs()["stable"] == v2.commit
    assert rollback(backend.cfg).version == "v0.1.0"
    with pytest.raises(UsageError, match="no earlier stable version"):
        rollback(backend.cfg)
    assert backend.visible_refs()["stable"] == v1.commit and backend.visible_refs()["canary"] == v3.commit


def test_promote_unknown_version_fails_and_moves_nothing(backend, adapters):
    release(backend.cfg, adapters(0))
    before = backend.visible_refs()
    with pytest.raises(UsageError, match="unknown version v9.9.9"):
        promote(backend.cfg, "v9.9.9")
    with pytest.raises(UsageError, match="not a version"):
        promote(backend.cfg, "latest")
    assert backend.visible_refs() == before


@pytest.mark.parametrize("step", list(STEPS))
def test_release_failure_at_each_step_leaves_refs_and_rerun_finishes(backend, adapters, step):
    release(backend.cfg, adapters(0))
    promote(backend.cfg)
    before = backend.visible_refs()
    with pytest.raises(RegistryError) as failed:
        release(backend.cfg, adapters(1), registry=backend.failing(step))
    after_failure = backend.visible_refs()
    if step == "canary":  # uploaded, verified and tagged: the rerun only has to advance canary
        assert "canary" in str(failed.value) and set(after_failure["tags"]) - set(before["tags"]) == {"v0.1.1"}
        after_failure["tags"] = before["tags"]
    assert after_failure == before, f"refs moved after a failure at {step}: {failed.value}"
    uploaded = len(backend.registry().commits())
    backend.heal()
    done = release(backend.cfg, adapters(1))
    assert (done.version, done.no_op) == ("v0.1.1", False)
    after = backend.visible_refs()
    assert after["canary"] == done.commit and after["stable"] == before["stable"]
    assert set(after["tags"]) - set(before["tags"]) == {"v0.1.1"}
    if step in ("verify", "tag"):  # the upload had succeeded: the rerun reuses it
        assert done.finished and len(backend.registry().commits()) == uploaded
    if step == "canary":
        assert done.finished and not done.no_op and len(backend.registry().commits()) == uploaded


def test_release_concurrent_writers_mint_distinct_versions(backend, adapters, example_project):
    env = {**os.environ, "ADAPTERCI_REGISTRY": backend.cfg.registry}
    cmd = [sys.executable, "-m", "adapterci", "release", "--unverified", "--config", str(example_project / "adapterci.yaml"), "--json"]
    procs = [subprocess.Popen([*cmd, "--adapter", str(adapters(i))], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in (1, 2, 2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err for _, err in outs]
    results = [json.loads(out) for out, _ in outs]
    assert sorted({r["version"] for r in results}) == ["v0.1.0", "v0.1.1"]
    assert results[1]["version"] == results[2]["version"]  # the two identical adapters: one version
    assert results[1]["no_op"] or results[2]["no_op"] or results[1]["finished"] or results[2]["finished"], (results, [c.title for c in backend.registry().commits()], backend.visible_refs())
    refs = backend.visible_refs()
    assert set(refs["tags"]) == {"v0.1.0", "v0.1.1"}
    assert refs["canary"] == refs["tags"]["v0.1.1"]


def test_download_by_ref_loads_with_peft(backend, adapters, tiny_peft_adapter, tmp_path):
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    base_dir, source = tiny_peft_adapter
    release(backend.cfg, source)
    dest = backend.registry().download("canary", tmp_path / "champion")
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), dest)
    expected = load_file(source / "adapter_model.safetensors")
    loaded = {k: v for k, v in model.state_dict().items() if "lora_" in k}
    assert len(loaded) == len(expected) > 0
    for key, value in expected.items():
        match = [v for k, v in loaded.items() if k.replace(".default", "") == key]
        assert match and torch.equal(match[0], value), key
    with pytest.raises(RegistryError, match="not a released version"):
        backend.registry().download("v3.0.0", tmp_path / "nothing")


def test_release_skips_a_leftover_upload_that_does_not_verify(backend, adapters, tmp_path):
    """An earlier attempt left an untagged upload of this content whose weights are damaged: a rerun must not
    keep resuming (and failing on) it, but release the adapter under a fresh number."""
    from adapterci.adapterdir import content_digest

    release(backend.cfg, adapters(0))
    source = adapters(1)
    broken = shutil.copytree(source, tmp_path / "broken")
    (broken / "adapter_model.safetensors").write_bytes(b"truncated")
    (broken / "adapterci.json").write_text("{}")
    (broken / "README.md").write_text("# leftover\n")
    reg = backend.registry()
    content = content_digest(source)
    reg.upload(broken, "Release v0.1.1", f"adapterci-version: v0.1.1\nadapterci-content: {content}",
               parent=reg.commits()[0].id)
    done = release(backend.cfg, source)
    assert (done.version, done.finished, done.refs) == ("v0.1.2", False, ["v0.1.2", "canary"])
    assert release(backend.cfg, source).no_op
    assert set(backend.visible_refs()["tags"]) == {"v0.1.0", "v0.1.2"}


def test_release_rerun_never_undoes_a_canary_retraction(backend, adapters):
    from adapterci.release import retract_canary

    v1 = release(backend.cfg, adapters(0))
    promote(backend.cfg)
    v2 = release(backend.cfg, adapters(1))
    moved = retract_canary(backend.cfg, v2.commit)
    assert (moved.ref, moved.version, moved.previous) == ("canary", "v0.1.0", "v0.1.1")
    assert backend.visible_refs()["canary"] == v1.commit
    again = release(backend.cfg, adapters(1))  # a CI rerun of the retracted release
    assert (again.version, again.no_op, again.refs) == ("v0.1.1", True, ["v0.1.1"])
    assert backend.visible_refs()["canary"] == v1.commit
    assert release(backend.cfg, adapters(2)).refs == ["v0.1.2", "canary"]  # a newer release is the canary again
