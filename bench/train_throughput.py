"""Training throughput: `adapterci.train.run.train` against a plain TRL + PEFT script (same model, data and
hyperparameters, same precision), both in this run, plus what packing (padding-free) gains.

    python bench/train_throughput.py [--epochs 1] [--max-steps N]   # the example project (SmolLM2-135M-Instruct)
    python bench/train_throughput.py --tiny                         # the tiny test project
    python bench/train_throughput.py --dpo [--tiny]                 # DPO on the preference example's pairs

Prints tokens/s of each and the ratio adapterci / reference (target >= 1.0), with wall and CPU seconds (the
machine may be shared). Tokens are the non-padding tokens of the training rows times the epochs trained, over the
trainer's own `train_runtime`. Both train the same weights: a GGUF base is converted once (before timing).

`--dpo`: `train.method: dpo` on docs/examples/preferences/data/prefs.jsonl against a plain TRL DPOTrainer with a
`peft_config` (reference: the adapter disabled). Tokens are prompt + chosen plus prompt + rejected per pair."""

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
LLAMA_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def project(tmp: Path, source: Path, **train) -> Path:
    """A copy of the project at `source` (model files hard-linked) with `train` overrides (None removes a key)."""
    dest = tmp / f"p{len(list(tmp.iterdir()))}"
    dest.mkdir()
    for name in ("data", "evalsets"):
        shutil.copytree(source / name, dest / name)
    shutil.copytree(source / "models", dest / "models", copy_function=_link_or_copy)
    cfg = yaml.safe_load((source / "adapterci.yaml").read_text())
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
    from adapterci.train.run import train

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

    from adapterci.train.backends import training_precision

    cfg = yaml.safe_load(config.read_text())
    loaded = load_config(config)
    t, base = cfg["train"], resolve_base(loaded).ref  # a GGUF base: its converted copy
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
    targets = lora["target_modules"]
    if lora.get("layers_to_transform") and targets == "all-linear":  # PEFT wants module names with layer indices
        targets = LLAMA_LINEAR
    args = SFTConfig(
        output_dir=str(config.parent / "reference"), use_cpu=True, activation_checkpointing=False,
        bf16=training_precision(loaded) == "bf16",  # the same arithmetic adapterci chooses here
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
                               target_modules=targets, modules_to_save=lora.get("modules_to_save"),
                               layers_to_transform=lora.get("layers_to_transform"), task_type="CAUSAL_LM"))
    out = trainer.train()
    tokens = sum(len(ids) for ids in trainer.train_dataset["input_ids"]) * trainer.state.epoch
    runtime = out.metrics["train_runtime"]
    return {"tokens_per_s": round(tokens / runtime, 1), "train_runtime_s": round(runtime, 3),
            "steps": trainer.state.global_step}


PREFS = REPO / "docs" / "examples" / "preferences" / "data" / "prefs.jsonl"


def dpo_project(config: Path) -> Path:
    """`config`'s project switched to `train.method: dpo` on the preference example's pairs."""
    shutil.copy2(PREFS, config.parent / "data" / "prefs.jsonl")
    cfg = yaml.safe_load(config.read_text())
    cfg["data"] = {"train": "data/prefs.jsonl"}
    cfg["checks"].pop("labels", None)
    cfg["train"]["method"] = "dpo"
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return config


def run_reference_dpo(config: Path) -> dict:
    """The usual DPO recipe against TRL: prompt/chosen/rejected text, LoraConfig, DPOTrainer."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from adapterci.config import load_config
    from adapterci.modelio import resolve_base
    from adapterci.train.backends import training_precision

    cfg = yaml.safe_load(config.read_text())
    loaded = load_config(config)
    t, base = cfg["train"], resolve_base(loaded).ref
    rows = [json.loads(line) for line in (config.parent / "data" / "prefs.jsonl").read_text().splitlines()]
    if cfg.get("prompt_template") == "chat":  # conversational rows: TRL applies the chat template
        rows = [{"prompt": [{"role": "user", "content": r["prompt"]}],
                 "chosen": [{"role": "assistant", "content": r["chosen"]}],
                 "rejected": [{"role": "assistant", "content": r["rejected"]}]} for r in rows]
    else:
        rows = [{**r, "prompt": f"### Instruction:\n{r['prompt']}\n\n### Response:\n"} for r in rows]
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    lora = t["lora"]
    targets = lora["target_modules"]
    if lora.get("layers_to_transform") and targets == "all-linear":
        targets = LLAMA_LINEAR
    args = DPOConfig(
        output_dir=str(config.parent / "reference"), use_cpu=True, activation_checkpointing=False,
        bf16=training_precision(loaded) == "bf16", num_train_epochs=t["epochs"], max_steps=t.get("max_steps") or -1,
        learning_rate=t["learning_rate"], warmup_steps=t.get("warmup", 0), per_device_train_batch_size=t["batch_size"],
        max_length=t["max_length"], seed=t["seed"], save_strategy="no", logging_steps=10, report_to="none",
        disable_tqdm=True, beta=0.1)
    trainer = DPOTrainer(
        model=model, args=args, processing_class=tokenizer, train_dataset=Dataset.from_list(rows),
        peft_config=LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
                               target_modules=targets, modules_to_save=lora.get("modules_to_save"),
                               layers_to_transform=lora.get("layers_to_transform"), task_type="CAUSAL_LM"))
    out = trainer.train()
    data = trainer.train_dataset
    per_epoch = sum(2 * len(p) + len(c) + len(r) for p, c, r in zip(data["prompt_ids"], data["chosen_ids"],
                                                                       data["rejected_ids"]))
    runtime = out.metrics["train_runtime"]
    return {"tokens_per_s": round(per_epoch * trainer.state.epoch / runtime, 1), "train_runtime_s": round(runtime, 3),
            "steps": trainer.state.global_step}


def main_dpo(source: Path, train: dict, tmp: Path) -> None:
    from adapterci.config import load_config
    from adapterci.modelio import resolve_base

    resolve_base(load_config(dpo_project(project(tmp, source, **train))))
    run_reference_dpo(dpo_project(project(tmp, source, **{**train, "max_steps": 2})))  # warm-up, not timed: the
    # first training in a process pays one-time costs (kernel selection, allocator growth) the second does not
    results = {"reference TRL DPO": measured(run_reference_dpo, dpo_project(project(tmp, source, **train))),
               "adapterci dpo": measured(run_adapterci, dpo_project(project(tmp, source, **train)))}
    print(f"DPO, project {source.relative_to(REPO) if source != REPO else 'example'}, train overrides {train}")
    for name, r in results.items():
        print(f"{name:22} {r['tokens_per_s']:9.1f} tokens/s  {r['train_runtime_s']:7.2f} s train  "
              f"{r['cpu_s']:8.1f} cpu s (incl. load)  {r['steps']} steps")
    ref, ours = (r["tokens_per_s"] for r in results.values())
    print(f"ratio adapterci / reference (DPO): {ours / ref:.2f} (target >= 1.0)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many optimizer steps")
    parser.add_argument("--tiny", action="store_true", help="the tiny test project instead of the example")
    parser.add_argument("--dpo", action="store_true", help="DPO on the preference example's pairs")
    opts = parser.parse_args()
    source = TINY if opts.tiny else REPO
    train = {k: v for k, v in {"epochs": opts.epochs, "max_steps": opts.max_steps}.items() if v is not None}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if opts.dpo:
            return main_dpo(source, train, tmp)
        from adapterci.config import load_config
        from adapterci.modelio import resolve_base

        resolve_base(load_config(project(tmp, source, **train)))  # a GGUF base: converted once, before timing
        results = {
            "reference (TRL+PEFT)": measured(run_reference, project(tmp, source, **train)),
            "adapterci": measured(run_adapterci, project(tmp, source, **train)),
            "adapterci packing": measured(run_adapterci, project(tmp, source, **train, packing=True)),
        }
    print(f"project {source.relative_to(REPO) if source != REPO else 'example'}, train overrides {train}")
    for name, r in results.items():
        print(f"{name:22} {r['tokens_per_s']:9.1f} tokens/s  {r['train_runtime_s']:7.2f} s train  "
              f"{r['cpu_s']:8.1f} cpu s (incl. load)  {r['steps']} steps")
    ref, ours, packed = (r["tokens_per_s"] for r in results.values())
    print(f"ratio adapterci / reference: {ours / ref:.2f} (target >= 1.0)")
    print(f"packing (padding-free) vs no packing: {packed / ours:.2f}x tokens/s, "
          f"{results['adapterci packing']['train_runtime_s'] / results['adapterci']['train_runtime_s']:.2f}x time")


if __name__ == "__main__":
    main()
