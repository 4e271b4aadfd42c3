"""The `hub_emulator` fixture: a Hub emulator on a free port of 127.0.0.1, with this process and its children
pointed at it (HF_ENDPOINT, HF_TOKEN, online mode, a private HF cache) and fast client retries.

`huggingface_hub` reads HF_ENDPOINT and HF_HUB_OFFLINE once at import, so the fixture imports it first (with the
test suite's offline settings) and then patches those constants for the test; monkeypatch restores them after.
Subprocesses inherit the environment variables and so talk to the emulator from their first import.
Faults: `hub.add_fault(path_regex, action=..., ...)` in-process, or POST /_emulator/faults from anywhere.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from adapterci.hub_emulator import HubEmulator

HUB_USER = "tester"


@pytest.fixture
def hub_emulator(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """A running HubEmulator (`.url`, `.token`, `.add_fault`, `.faults`, `.requests`, `.state`) that this test
    process and its subprocesses talk to through huggingface_hub."""
    import huggingface_hub.constants as hf_constants

    token = "hf_" + secrets.token_hex(16)
    cache = Path(tmp_path_factory.mktemp("hf-cache"))
    with HubEmulator(token=token, user=HUB_USER) as hub:
        for key, value in {"HF_ENDPOINT": hub.url, "HF_TOKEN": token, "HF_HUB_CACHE": str(cache),
                           "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1",
                           "ADAPTERCI_HUB_RETRY_S": "1", "ADAPTERCI_HUB_BACKOFF": "0.05", "ADAPTERCI_HUB_TIMEOUT": "2"}.items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setattr(hf_constants, "ENDPOINT", hub.url)
        monkeypatch.setattr(hf_constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(hf_constants, "HF_HUB_DISABLE_XET", True)  # LFS, not Xet (not emulated), in-process too
        monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
        yield hub


@pytest.fixture(scope="session")
def tiny_peft_adapter(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(base model dir, untrained LoRA adapter dir of it with a minimal adapterci-train.json).
    The base is the example project's `models/tiny-llama` when present, else a 2-layer Llama built here."""
    import json

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    root = Path(tmp_path_factory.mktemp("peft"))
    shipped = Path(__file__).resolve().parent.parent / "models" / "tiny-llama"
    if (shipped / "config.json").is_file():
        base_dir = shipped
        base = AutoModelForCausalLM.from_pretrained(base_dir)
    else:
        torch.manual_seed(0)
        base_dir = root / "base"
        base = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                            num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64))
        base.save_pretrained(base_dir)
    torch.manual_seed(1)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    adapter_dir = root / "adapter"
    get_peft_model(base, lora).save_pretrained(adapter_dir)
    (adapter_dir / "adapterci-train.json").write_text(json.dumps({
        "schema_version": 1, "adapterci_version": "0.1.0", "data_fingerprint": "d" * 64, "config_hash": "c" * 64,
        "prompt_template": "alpaca", "prompt_fingerprint": "p" * 64, "git_commit": None, "steps": 0}))
    return base_dir, adapter_dir


@pytest.fixture
def adapters(tiny_peft_adapter, tmp_path: Path):
    """adapters(i): a copy of the tiny adapter whose content differs for each i (lora_dropout = i/100)."""
    import json
    import shutil

    _, source = tiny_peft_adapter

    def make(i: int) -> Path:
        dest = tmp_path / f"adapter-{i}"
        if not dest.exists():
            shutil.copytree(source, dest)
            config = json.loads((dest / "adapter_config.json").read_text())
            config["lora_dropout"] = i / 100
            (dest / "adapter_config.json").write_text(json.dumps(config, indent=2))
        return dest

    return make
