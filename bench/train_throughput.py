"""Training throughput: `adapterci.train.train` against a plain TRL + PEFT script (same model, data and
hyperparameters), both in this run, plus what packing (padding-free) gains.

    python bench/train_throughput.py [--epochs 1]

Prints tokens/s of each and the ratio adapterci / reference (target >= 1.0). Tokens are the non-padding tokens of
the training rows times the epochs trained, over the trainer's own `train_runtime`."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "tests" / "projects" / "tiny"  # the tiny-model example (its models/ links to the repository's)


def project(tmp: Path, epochs: float, **train) -> Path:
    """A copy of the example project with `train` overrides."""
    dest = tmp / f"p{len(list(tmp.iterdir()))}"
    dest.mkdir()
    for name in ("data", "evalsets", "models"):
        shutil.copytree(TINY / name, dest / name)
    cfg = yaml.safe_load((TINY / "adapterci.yaml").read_text())
    cfg["train"].update(epochs=epochs, **train)
    (dest / "adapterci.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    subprocess.run(["git", "init", "-q", str(dest)], check=True)
    return dest / "adapterci.yaml"


def run_adapterci(config: Path) -> dict:
    from adapterci.config import load_config
    from adapterci.train import train

    m = train(load_config(config), output=config.parent / "adapter", log=lambda _: None).metrics
    return {"tokens_per_s": m["tokens_per_s"], "train_runtime_s": m["train_runtime_s"], "steps": m["steps"]}


def run_reference(config: Path) -> dict:
    """The usual recipe, written directly against TRL: prompt/completion text, LoraConfig, SFTTrainer."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    cfg = yaml.safe_load(config.read_text())
    t, base = cfg["train"], str(config.parent / cfg["base_model"])

    def rows(path: Path) -> list[dict]:
        out = []
        for line in path.read_text().splitlines():
            r = json.loads(line)
            if "messages" in r:
                *prompt, answer = r["messages"]
                user, completion = "\n\n".join(m["content"] for m in prompt), answer["content"]
            else:
                user = r["instruction"] + (f"\n\n{r['input']}" if r.get("input") else "")
                completion = r["output"]
            out.append({"prompt": f"### Instruction:\n{user}\n\n### Response:\n", "completion": completion})
        return out

    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    lora = t["lora"]
    args = SFTConfig(
        output_dir=str(config.parent / "reference"), use_cpu=True, bf16=False, activation_checkpointing=False,
        num_train_epochs=t["epochs"], learning_rate=t["learning_rate"], warmup_steps=t.get("warmup", 0),
        per_device_train_batch_size=t["batch_size"], per_device_eval_batch_size=t["batch_size"],
        max_length=t["max_length"], packing=False, completion_only_loss=True, seed=t["seed"],
        eval_strategy="epoch", save_strategy="no", logging_steps=10, report_to="none", disable_tqdm=True)
    trainer = SFTTrainer(
        model=model, args=args, processing_class=tokenizer,
        train_dataset=Dataset.from_list(rows(config.parent / "data/train.jsonl")),
        eval_dataset=Dataset.from_list(rows(config.parent / "data/valid.jsonl")),
        peft_config=LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
                               target_modules=lora["target_modules"], modules_to_save=lora.get("modules_to_save"),
                               task_type="CAUSAL_LM"))
    out = trainer.train()
    tokens = sum(len(ids) for ids in trainer.train_dataset["input_ids"]) * trainer.state.epoch
    runtime = out.metrics["train_runtime"]
    return {"tokens_per_s": round(tokens / runtime, 1), "train_runtime_s": round(runtime, 3),
            "steps": trainer.state.global_step}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=float, default=1.0)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        results = {
            "reference (TRL+PEFT)": run_reference(project(tmp, opts.epochs)),
            "adapterci": run_adapterci(project(tmp, opts.epochs)),
            "adapterci packing": run_adapterci(project(tmp, opts.epochs, packing=True)),
        }
    for name, r in results.items():
        print(f"{name:22} {r['tokens_per_s']:9.1f} tokens/s  {r['train_runtime_s']:7.2f} s  {r['steps']} steps")
    ref, ours, packed = (r["tokens_per_s"] for r in results.values())
    print(f"ratio adapterci / reference: {ours / ref:.2f} (target >= 1.0)")
    print(f"packing (padding-free) vs no packing: {packed / ours:.2f}x tokens/s, "
          f"{results['adapterci packing']['train_runtime_s'] / results['adapterci']['train_runtime_s']:.2f}x time")


if __name__ == "__main__":
    main()
