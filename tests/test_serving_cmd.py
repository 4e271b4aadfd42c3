"""The printed `vllm serve` command starts what the adapters were trained against: the Hub model (a GGUF base's
upstream, with its tokenizer), pinned by revision, with a `--max-lora-rank` that fits every served adapter; and
the manifest says when the weights the gate judged (a dequantized GGUF) are not the weights served."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from adapterci.cli import cli
from adapterci.config import load_config
from adapterci.modelio import base_model_identity
from adapterci.release.publish import release
from adapterci.release.refs import promote
from adapterci.release.serving import serving_manifest, vllm_script
from adapterci.report import render
from adapterci.runs import RunDir
from gguf_files import TINY, write_tiny_gguf

UPSTREAM = "acme/tiny-llama"
PINNED = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf",
                           metadata={"general.source.url": f"https://huggingface.co/{UPSTREAM}"})


def set_base(project: Path, **keys) -> object:
    path = project / "adapterci.yaml"
    config = yaml.safe_load(path.read_text())
    config.update(keys)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return load_config(path)


def lora_adapter(dest: Path, identity: dict, r: int, **lora) -> Path:
    """A real PEFT LoRA adapter of the tiny model with rank `r`, and the training record `train` writes beside it
    (the base model's identity; the rest as a first release has it)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(TINY)
    get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, target_modules=["q_proj", "v_proj"], **lora)) \
        .save_pretrained(dest)
    (dest / "adapterci-train.json").write_text(json.dumps({
        "schema_version": 1, "base_model": identity, "data_fingerprint": "d" * 64, "config_hash": "c" * 64,
        "prompt_template": "alpaca", "prompt_fingerprint": "p" * 64, "git_commit": None, "steps": 0}))
    return dest


def argv(manifest: dict) -> list[str]:
    return shlex.split(manifest["vllm"]["command"])


def flag(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def test_gguf_release_serves_the_upstream_model_and_says_judged_differs(example_project, tmp_path, tiny_gguf):
    shutil.copy(tiny_gguf, example_project / "models" / "tiny.gguf")
    cfg = set_base(example_project, base_model="models/tiny.gguf")
    identity = base_model_identity(cfg)
    rd = RunDir(tmp_path / "run")
    rd.path.mkdir()
    release(cfg, lora_adapter(tmp_path / "a", identity, r=16))
    promote(cfg)  # stable: v0.1.0 (r 16); canary: v0.1.1 (r 32)
    release(cfg, lora_adapter(tmp_path / "b", identity, r=32), run_dir=rd)

    manifest = serving_manifest(cfg)
    args = argv(manifest)
    assert args[:3] == ["vllm", "serve", UPSTREAM]  # the Hub model, never the repo's GGUF path
    assert flag(args, "--tokenizer") == UPSTREAM
    assert flag(args, "--max-lora-rank") == "32" and [a["rank"] for a in manifest["adapters"]] == [16, 32]
    assert "--revision" not in args  # nothing pins the upstream
    assert not any(a.startswith("models/") or ".gguf" in a for a in args)
    assert manifest["base_model"]["model"] == UPSTREAM
    assert manifest["base_model"]["judged"] == {"file": "tiny.gguf", "quantization": "F32",
                                                "sha256": identity["gguf"]["sha256"]}
    note = manifest["judged_vs_served"]
    assert note.startswith("the gate judged these adapters on `tiny.gguf` (F32 weights dequantized to float32")
    assert f"vLLM serves them on `{UPSTREAM}`, the full-precision model it was converted from" in note
    assert manifest["warnings"] == []

    printed = CliRunner().invoke(cli, ["serving", "--config", str(cfg.path), "--format", "vllm"])
    assert printed.exit_code == 0, printed.output
    lines = printed.output.splitlines()
    assert lines[0] == f"# judged vs served: {note}" and lines[1] == manifest["vllm"]["command"]
    report = render(rd.path)
    assert "Judged vs served:" in report and f"vllm serve {UPSTREAM} --tokenizer {UPSTREAM}" in report


def test_hub_base_is_served_pinned_with_no_note(example_project, tmp_path):
    cfg = set_base(example_project, base_model=UPSTREAM, base_revision="main")
    identity = {"base_model": UPSTREAM, "revision": "main", "resolved_revision": PINNED}
    release(cfg, lora_adapter(tmp_path / "a", identity, r=12))  # r 12: vLLM takes 16, the next rank it accepts

    manifest = serving_manifest(cfg)
    args = argv(manifest)
    assert args[:3] == ["vllm", "serve", UPSTREAM] and flag(args, "--revision") == PINNED
    assert flag(args, "--max-lora-rank") == "16" and "--tokenizer" not in args
    assert manifest["judged_vs_served"] is None and manifest["base_model"]["judged"] is None
    assert "# judged vs served" not in vllm_script(manifest)


def test_adapter_vllm_refuses_is_warned_about(example_project, tmp_path):
    cfg = set_base(example_project, base_model=UPSTREAM)
    identity = {"base_model": UPSTREAM, "revision": None, "resolved_revision": PINNED}
    release(cfg, lora_adapter(tmp_path / "a", identity, r=8, modules_to_save=["lm_head"]))
    manifest = serving_manifest(cfg)
    assert manifest["warnings"] == ["`sentiment-canary` saves whole modules (lm_head: `train.lora.modules_to_save`), "
                                    "which vLLM's LoRA loader refuses"]
    assert vllm_script(manifest).splitlines()[0] == f"# warning: {manifest['warnings'][0]}"
