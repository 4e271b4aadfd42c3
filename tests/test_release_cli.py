"""`adapterci release | promote | rollback | versions`: exit codes, output, and bad inputs that publish nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapterci.cli import cli
from adapterci.release import next_version

pytestmark = pytest.mark.xdist_group("registry")


@pytest.fixture
def project(example_project: Path, tiny_peft_adapter, tmp_path: Path):
    """(invoke(args...) -> Result, adapter dir, registry dir) for the example project with the local registry."""
    _, source = tiny_peft_adapter
    adapter = tmp_path / "adapter"
    shutil.copytree(source, adapter)
    config = ["--config", str(example_project / "adapterci.yaml")]

    def invoke(*args: str):
        return CliRunner().invoke(cli, [args[0], *config, *args[1:]])

    return invoke, adapter, example_project / ".adapterci" / "registry"


def bump_content(adapter: Path, value: float) -> None:
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["lora_dropout"] = value
    (adapter / "adapter_config.json").write_text(json.dumps(config))


def test_release_prints_the_version_and_is_idempotent(project):
    invoke, adapter, _ = project
    first = invoke("release", "--unverified", "--adapter", str(adapter))
    assert first.exit_code == 0, first.output
    assert first.output.startswith("Released v0.1.0 (commit ") and first.output.rstrip().endswith("refs: v0.1.0, canary.")
    again = invoke("release", "--unverified", "--adapter", str(adapter), "--json")
    assert again.exit_code == 0
    data = json.loads(again.output)
    assert (data["version"], data["no_op"], data["refs"]) == ("v0.1.0", True, ["v0.1.0", "canary"])


def test_release_bump_minor_and_versions_listing(project):
    invoke, adapter, _ = project
    assert invoke("release", "--unverified", "--adapter", str(adapter)).exit_code == 0
    bump_content(adapter, 0.2)
    assert json.loads(invoke("release", "--unverified", "--adapter", str(adapter), "--bump", "minor", "--json").output)["version"] == "v0.2.0"
    assert invoke("promote").exit_code == 0
    listing = invoke("versions")
    assert listing.exit_code == 0
    lines = listing.output.splitlines()
    assert lines[0].startswith("file://") and lines[1].startswith("v0.2.0") and "[canary, stable]" in lines[1]
    assert lines[2].startswith("v0.1.0") and "[" not in lines[2]
    data = json.loads(invoke("versions", "--json").output)
    assert [(v["version"], v["refs"]) for v in data["versions"]] == [("v0.2.0", ["canary", "stable"]), ("v0.1.0", [])]


def test_promote_and_rollback_output(project):
    invoke, adapter, _ = project
    invoke("release", "--unverified", "--adapter", str(adapter))
    result = invoke("promote")
    assert result.exit_code == 0 and "`stable` -> v0.1.0 (was unset)" in result.output
    assert "already points at v0.1.0" in invoke("promote", "v0.1.0").output
    bump_content(adapter, 0.3)
    invoke("release", "--unverified", "--adapter", str(adapter))
    moved = json.loads(invoke("promote", "--json").output)
    assert (moved["version"], moved["previous"], moved["no_op"]) == ("v0.1.1", "v0.1.0", False)
    back = invoke("rollback")
    assert back.exit_code == 0 and "`stable` -> v0.1.0 (was v0.1.1)" in back.output
    none_left = invoke("rollback")
    assert none_left.exit_code == 2 and "no earlier stable version to roll back to" in none_left.output


@pytest.mark.parametrize("case", ["missing_dir", "no_adapter_config", "no_weights", "bad_bump"])
def test_release_bad_input_exits_2_and_publishes_nothing(project, tmp_path, case):
    invoke, adapter, registry = project
    if case == "missing_dir":
        args, message = ["--adapter", str(tmp_path / "nope")], "adapter directory not found"
    elif case == "no_adapter_config":
        (adapter / "adapter_config.json").unlink()
        args, message = ["--adapter", str(adapter)], "adapter_config.json is missing"
    elif case == "no_weights":
        (adapter / "adapter_model.safetensors").unlink()
        args, message = ["--adapter", str(adapter)], "has no adapter weights"
    else:
        args, message = ["--adapter", str(adapter), "--bump", "huge"], "'huge' is not one of"
    result = invoke("release", "--unverified", *args)
    assert result.exit_code == 2 and message in result.output
    assert "Traceback" not in result.output
    assert not registry.exists()


def test_registry_commands_on_empty_registry(project):
    invoke, _, registry = project
    assert invoke("versions").output.startswith("No versions in file://")
    assert json.loads(invoke("versions", "--json").output)["versions"] == []
    promoted = invoke("promote")
    assert promoted.exit_code == 2 and "has no `canary` yet" in promoted.output
    unknown = invoke("promote", "v1.2.3")
    assert unknown.exit_code == 2 and "unknown version v1.2.3" in unknown.output
    assert invoke("promote", "stable").exit_code == 2
    assert invoke("rollback").exit_code == 2
    assert not (registry / "refs.json").exists()


def test_release_defaults_to_the_run_directory_adapter(project, tmp_path):
    invoke, adapter, _ = project
    run_dir = tmp_path / "run"
    shutil.copytree(adapter, run_dir / "adapter")
    (run_dir / "gate.json").write_text(json.dumps({"verdict": "PASS", "rules": []}))
    result = invoke("release", "--unverified", "--run-dir", str(run_dir), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads((run_dir / "release.json").read_text())["version"] == "v0.1.0"
    listing = json.loads(invoke("versions", "--json").output)["versions"]
    assert listing[0]["gate_verdict"] == "PASS"


def test_release_refuses_a_run_whose_gate_failed(project, tmp_path):
    invoke, adapter, registry = project
    run_dir = tmp_path / "run"
    shutil.copytree(adapter, run_dir / "adapter")
    (run_dir / "gate.json").write_text(json.dumps({"verdict": "FAIL", "rules": []}))
    result = invoke("release", "--run-dir", str(run_dir))
    assert result.exit_code == 1 and "gate verdict" in result.output and "is FAIL" in result.output
    assert not registry.exists() and not (run_dir / "release.json").exists()


@pytest.mark.parametrize("existing,bump,expected", [
    ([], "major", "v0.1.0"), (["v0.1.0"], "patch", "v0.1.1"), (["v0.1.9", "v0.1.10"], "patch", "v0.1.11"),
    (["v1.4.2", "stable-history-1"], "minor", "v1.5.0"), (["v1.4.2"], "major", "v2.0.0")])
def test_release_next_version(existing, bump, expected):
    assert next_version(existing, bump) == expected


def test_release_card_front_matter_for_a_hub_base_model():
    import yaml

    from adapterci.release.card import BaseRef, build_manifest, model_card

    base = BaseRef.from_identity({"base_model": "meta-llama/Llama-3.2-1B", "revision": "main",
                                  "resolved_revision": "abc123"})
    manifest = build_manifest(
        name="sentiment", version="v1.0.0", content_hash="h", files={"adapter_model.safetensors": "s"}, base=base,
        train={"data_fingerprint": "d", "config_hash": "c", "git_commit": "g", "surprise": 1}, results=None,
        gate={"verdict": "INCONCLUSIVE", "rules": "not a list"}, git_commit=None, released_at="2026-01-01T00:00:00Z")
    assert "surprise" not in json.dumps(manifest) and manifest["gate_rules"] is None
    card = model_card(manifest, "acme/sentiment")
    front = yaml.safe_load(card.split("---")[1])
    assert front == {"base_model": "meta-llama/Llama-3.2-1B", "library_name": "peft",
                     "tags": ["adapterci", "peft", "lora", "sentiment"]}
    assert "`meta-llama/Llama-3.2-1B@abc123`" in card and "Verdict: **INCONCLUSIVE**" in card
    assert "AutoPeftModelForCausalLM.from_pretrained('acme/sentiment', revision='v1.0.0')" in card
    assert "No eval results were recorded" in card


@pytest.mark.parametrize("identity,expected", [
    ({"base_model": "/runner/work/models/tiny", "content_hash": "f" * 64}, (None, None, "tiny")),
    ({"base_model": "models/smollm2.gguf", "content_hash": "e" * 64, "hub_id": "HuggingFaceTB/SmolLM2-135M-Instruct",
      "hub_revision": "12fd25f"}, ("HuggingFaceTB/SmolLM2-135M-Instruct", "12fd25f", "smollm2.gguf")),
    ({"base_model": "org/base", "revision": "v1", "resolved_revision": None}, ("org/base", "v1", "org/base"))])
def test_release_base_reference_never_names_a_local_path(identity, expected):
    import yaml

    from adapterci.release.card import BaseRef, build_manifest, model_card, portable_adapter_config

    base = BaseRef.from_identity(identity)
    assert (base.hub_id, base.revision, base.name) == expected
    config = portable_adapter_config({"base_model_name_or_path": identity["base_model"], "r": 4}, base)
    assert (config["base_model_name_or_path"], config["revision"], config["r"]) == (*expected[:2], 4)
    manifest = build_manifest(name="s", version="v0.1.0", content_hash="h", files={}, base=base,
                              train={"base_model": identity},
                              results=None, gate=None, git_commit=None, released_at="2026-01-01T00:00:00Z")
    card = model_card(manifest, "acme/s")
    assert "/runner/" not in card and "/runner/" not in json.dumps(manifest)
    front = yaml.safe_load(card.split("---")[1])
    assert front.get("base_model") == expected[0]
    if expected[0] is None:
        assert manifest["base_model_content_hash"] == identity["content_hash"] and identity["content_hash"] in card


def test_promote_canary_refuses_once_canary_moved_on(project, monkeypatch):
    """The canary analyzed (or approved) is v0.1.0; v0.1.1 was released meanwhile: nothing is promoted."""
    invoke, adapter, _ = project
    invoke("release", "--unverified", "--adapter", str(adapter))
    analyzed = json.loads(invoke("versions", "--json").output)["versions"][0]["commit"]
    bump_content(adapter, 0.3)
    invoke("release", "--unverified", "--adapter", str(adapter))
    for expected in ("v0.1.0", analyzed[:7]):
        moved = invoke("promote", "--canary", expected)
        assert moved.exit_code == 1, moved.output
        assert f"points at v0.1.1, not at the analyzed {expected}: nothing promoted" in moved.output
    data = json.loads(invoke("versions", "--json").output)
    assert [(v["version"], v["refs"]) for v in data["versions"]] == [("v0.1.1", ["canary"]), ("v0.1.0", [])]
    done = json.loads(invoke("promote", "--canary", "v0.1.1", "--json").output)
    assert (done["version"], done["no_op"]) == ("v0.1.1", False)
    # in CI, a bare promote (whatever the canary is when the approved job runs) is refused
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    bare = invoke("promote")
    assert bare.exit_code == 2 and "in CI, name what you promote" in bare.output
