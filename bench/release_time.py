"""How long a release of an example-sized adapter takes: local registry vs the Hub emulator (real client).

    .venv/bin/python bench/release_time.py [--runs 3]

The adapter is an untrained LoRA of models/tiny-llama with the example config's settings (r=16, all-linear).
Baseline, measured in the same run: copying the adapter directory (the least any release must do). Each
release uses fresh content, so every run uploads, verifies, tags and moves `canary`.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from adapterci.hub_emulator import HubEmulator  # noqa: E402  (does not import huggingface_hub)


def build_adapter(dest: Path) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(REPO / "models" / "tiny-llama")
    lora = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", init_lora_weights=False)
    get_peft_model(base, lora).save_pretrained(dest)
    (dest / "adapterci-train.json").write_text(json.dumps({"data_fingerprint": "bench"}))
    return dest


def variant(source: Path, root: Path, i: int) -> Path:
    """A copy of the adapter with different content (so the release is not a no-op)."""
    dest = root / f"adapter-{i}"
    shutil.copytree(source, dest)
    config = json.loads((dest / "adapter_config.json").read_text())
    config["lora_dropout"] = i / 1000
    (dest / "adapter_config.json").write_text(json.dumps(config))
    return dest


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="adapterci-bench-"))
    token = "hf_" + secrets.token_hex(16)
    with HubEmulator(token=token) as hub:
        os.environ.update(HF_ENDPOINT=hub.url, HF_TOKEN=token, HF_HOME=str(root / "hf"), HF_HUB_DISABLE_TELEMETRY="1")
        os.environ.pop("HF_HUB_OFFLINE", None)  # set before anything imports huggingface_hub
        from adapterci.config import load_config
        from adapterci.release import release

        source = build_adapter(root / "adapter")
        size = sum(p.stat().st_size for p in source.iterdir())
        cfg = load_config(REPO / "tests" / "projects" / "tiny" / "adapterci.yaml")
        times: dict[str, list[float]] = {"copy (baseline)": [], "local": [], "hub emulator": []}
        for i in range(args.runs):
            adapter = variant(source, root, i)
            times["copy (baseline)"].append(timed(lambda: shutil.copytree(adapter, root / f"copy-{i}")))
            cfg.registry = f"file://{root / 'registry'}"
            times["local"].append(timed(lambda: release(cfg, adapter)))
            cfg.registry = "hf://tester/bench"
            times["hub emulator"].append(timed(lambda: release(cfg, adapter)))
        requests = len(hub.requests) / args.runs
    base = statistics.median(times["copy (baseline)"])
    print(f"adapter: {size / 1e6:.2f} MB in {len(list(source.iterdir()))} files; {args.runs} releases each")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"{name:<16} median {med * 1000:8.1f} ms   x{med / base:7.1f} baseline")
    print(f"HTTP requests per Hub release: {requests:.0f}")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
