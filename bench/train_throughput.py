"""Training throughput: `adapterci.train.train` against a plain TRL + PEFT script (same model, data and
hyperparameters), both in this run, plus what packing (padding-free) gains.

    python bench/train_throughput.py [--epochs 1]                     # the example project's config
    python bench/train_throughput.py --base models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf \
        --prompt-template chat --max-steps 4 --lr 2e-4 --no-modules-to-save   # the real model, a few steps

Prints tokens/s of each and the ratio adapterci / reference (target >= 1.0), with wall and CPU seconds (the
machine may be shared). Tokens are the non-padding tokens of the training rows times the epochs trained, over the
trainer's own `train_runtime`. Both train the same weights: a GGUF base is converted once (before timing)."""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "tests" / "projects" / "tiny"  # the tiny-model example (its models/ links to the repository's)


def project(tmp: Path, top: dict, **train) -> Path:
    """A copy of the tiny example project with top-level and `train` overrides (None values remove a key)."""
    dest = tmp / f"p{len(list(tmp.iterdir()))}"
    dest.mkdir()
    for name in ("data", "evalsets", "models"):
        shutil.copytree(TINY / name, dest / name)
    cfg = yaml.safe_load((TINY / "adapterci.yaml").read_text())
    base = top.get("base_model")
    if base and (REPO / base).is_file():  # a GGUF base from the repository (`make setup` puts SmolLM2 there)
        (dest / base).parent.mkdir(parents=True, exist_ok=True)
        _link_or_copy(str(REPO / base), str(dest / base))
    cfg.update(top)
    cfg["train"].update(train)
    cfg["train"] = {k: v for k, v in cfg["train"].items() if v is not None}
    (dest / "adapterci.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    subprocess.run(["git", "init", "-q", str(dest)], check=True)
    return dest / "adapterci.yaml"


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measured(run, config: Path) -> dict:
    """`run(config)` with the process's CPU seconds spent in it."""
    cpu = cpu_seconds()
    result = run(config)
    return {**result, "cpu_s": round(cpu_seconds() - cpu, 1)}


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

    from adapterci.config import load_config
    from adapterci.modelio import resolve_base

    cfg = yaml.safe_load(config.read_text())
    t, base = cfg["train"], resolve_base(load_config(config)).ref  # a GGUF base: its converted copy
    chat = cfg.get("prompt_template") == "chat"

    def rows(path: Path) -> list[dict]:
        out = []
        for line in path.read_text().splitlines():
            r = json.loads(line)
            if "messages" in r:
                *prompt, answer = r["messages"]
                user, completion = "\n\n".join(m["content"] for m in prompt), answer["content"]
            elif "prompt" in r:
                user, completion = r["prompt"], r["completion"]
            else:
                user = r["instruction"] + (f"\n\n{r['input']}" if r.get("input") else "")
                completion = r["output"]
            if chat:  # TRL renders conversational rows with the tokenizer's chat template
                out.append({"prompt": [{"role": "user", "content": user}],
                            "completion": [{"role": "assistant", "content": completion}]})
            else:
                out.append({"prompt": f"### Instruction:\n{user}\n\n### Response:\n", "completion": completion})
        return out

    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    lora = t["lora"]
    args = SFTConfig(
        output_dir=str(config.parent / "reference"), use_cpu=True, bf16=False, activation_checkpointing=False,
        num_train_epochs=t["epochs"], max_steps=t.get("max_steps") or -1, learning_rate=t["learning_rate"],
        warmup_steps=t.get("warmup", 0),
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
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many optimizer steps")
    parser.add_argument("--base", default=None, help="base_model override (e.g. a .gguf file in the repo)")
    parser.add_argument("--prompt-template", default=None)
    parser.add_argument("--lr", type=float, default=None, help="learning_rate override")
    parser.add_argument("--no-modules-to-save", action="store_true", help="LoRA only (a real model)")
    opts = parser.parse_args()
    top = {k: v for k, v in {"base_model": opts.base, "prompt_template": opts.prompt_template}.items() if v}
    train = {"epochs": opts.epochs, "max_steps": opts.max_steps, "learning_rate": opts.lr}
    train = {k: v for k, v in train.items() if v is not None}
    if opts.no_modules_to_save:
        lora = yaml.safe_load((TINY / "adapterci.yaml").read_text())["train"]["lora"]
        train["lora"] = {k: v for k, v in lora.items() if k != "modules_to_save"}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if opts.base and opts.base.endswith(".gguf"):  # convert once, outside the timed runs
            from adapterci.config import load_config
            from adapterci.modelio import resolve_base

            resolve_base(load_config(project(tmp, top, **train)))
        results = {
            "reference (TRL+PEFT)": measured(run_reference, project(tmp, top, **train)),
            "adapterci": measured(run_adapterci, project(tmp, top, **train)),
            "adapterci packing": measured(run_adapterci, project(tmp, top, **train, packing=True)),
        }
    print(f"base {opts.base or 'example config'}, train overrides {train}")
    for name, r in results.items():
        print(f"{name:22} {r['tokens_per_s']:9.1f} tokens/s  {r['train_runtime_s']:7.2f} s train  "
              f"{r['cpu_s']:8.1f} cpu s (incl. load)  {r['steps']} steps")
    ref, ours, packed = (r["tokens_per_s"] for r in results.values())
    print(f"ratio adapterci / reference: {ours / ref:.2f} (target >= 1.0)")
    print(f"packing (padding-free) vs no packing: {packed / ours:.2f}x tokens/s, "
          f"{results['adapterci packing']['train_runtime_s'] / results['adapterci']['train_runtime_s']:.2f}x time")


if __name__ == "__main__":
    main()
