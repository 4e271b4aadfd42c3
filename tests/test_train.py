"""Real LoRA training of the tiny model on CPU: the adapter, its provenance, determinism, resume, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from adapterci.cli import cli
from adapterci.config import load_config
from adapterci.errors import ConfigError
from adapterci.train.backends import choose_backend, choose_precision

SHORT = {"max_steps": 6, "save_steps": 2, "logging_steps": 2, "batch_size": 8}


def edit_config(project: Path, **train) -> Path:
    path = project / "adapterci.yaml"
    data = yaml.safe_load(path.read_text())
    data["train"].update(train)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def label_accuracy(cfg, adapter: Path) -> tuple[float, float]:
    """Held-out accuracy on the sentiment suite by label log-likelihood, and the majority-class rate."""
    import torch
    from peft import PeftModel

    from adapterci.data.dataset import load_suite
    from adapterci.modelio import load_base_model, load_tokenizer
    from adapterci.prompting import PromptFormat

    suite = next(s for s in cfg.eval.suites if s.name == "sentiment")
    items = load_suite(cfg, suite).examples
    tok = load_tokenizer(cfg)
    model = PeftModel.from_pretrained(load_base_model(cfg), str(adapter)).eval()
    fmt = PromptFormat(cfg.prompt_template, tok)

    def score(prompt: str, label: str) -> float:
        start = len(tok(prompt)["input_ids"])
        ids = tok(prompt + label + tok.eos_token)["input_ids"]
        with torch.no_grad():
            logp = model(torch.tensor([ids])).logits[0, :-1].log_softmax(-1)
        return logp.gather(1, torch.tensor(ids[1:])[:, None])[start - 1:, 0].sum().item()

    correct = sum(max(suite.choices, key=lambda c: score(fmt.render(ex.messages), c)) == ex.completion for ex in items)
    majority = max(sum(ex.completion == c for ex in items) for c in suite.choices) / len(items)
    return correct / len(items), majority


def adapter_tensors(adapter: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(adapter / "adapter_model.safetensors"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The example project trained once with its own config (shared by the tests of this module)."""
    from conftest import copy_example_project

    from adapterci.train.run import train

    project = copy_example_project(tmp_path_factory.mktemp("trained"))
    cfg = load_config(project / "adapterci.yaml")
    lines: list[str] = []
    result = train(cfg, log=lines.append)
    return cfg, result, lines


@pytest.mark.slow
@pytest.mark.xdist_group("train")
def test_train_example_adapter_loads_and_beats_majority(trained):
    cfg, result, _ = trained
    acc, majority = label_accuracy(cfg, result.adapter_dir)
    assert acc >= majority + 0.08, (acc, majority)


@pytest.mark.slow
@pytest.mark.xdist_group("train")
def test_train_writes_peft_adapter_provenance_and_plot(trained):
    cfg, result, lines = trained
    files = {p.name for p in result.adapter_dir.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "adapterci-train.json", "tokenizer.json"} <= files
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".pkl"))]
    assert result.adapter_dir == cfg.workdir / "run" / "adapter"
    assert (cfg.workdir / "run" / "train" / "loss.png").read_bytes()[:4] == b"\x89PNG"
    meta = json.loads((result.adapter_dir / "adapterci-train.json").read_text())
    assert meta == result.metrics
    from adapterci.prompting import PromptFormat
    from adapterci.train.provenance import inputs_fingerprint

    assert meta["prompt_template"] == "alpaca" and meta["prompt_fingerprint"] == PromptFormat("alpaca").fingerprint
    assert meta["inputs_fingerprint"] == inputs_fingerprint(cfg)
    assert meta["backend"] == "trl" and meta["device"] == "cpu" and meta["world_size"] == 1
    assert len(meta["base_model"]["content_hash"]) == 64 and len(meta["data_fingerprint"]) == 64
    assert meta["rows"] == {"train": 360, "valid": 60, "dropped": 0, "truncated": 0, "pairs": 0,
                            "valid_pairs": 0}  # an SFT run: no preference pairs
    history = meta["loss_history"]
    assert history["train"][-1][1] < history["train"][0][1] and len(history["valid"]) == int(cfg.train.epochs)
    assert meta["tokens_per_s"] > 0 and meta["peak_memory_bytes"] > 0 and meta["packages"]["trl"]
    assert meta["wall_time_s"] >= meta["train_runtime_s"] > 0
    assert any(line.startswith("train: backend trl (auto), device cpu") for line in lines)
    assert any(line.startswith("train: step ") for line in lines)
    assert not list(result.adapter_dir.parent.glob(".adapter*")) and not (cfg.workdir / "run" / "adapter.checkpoints").exists()


@pytest.fixture(scope="module")
def short_runs(tmp_path_factory):
    """Two identical short runs, and a third interrupted at step 3 then resumed from its step-2 checkpoint."""
    from conftest import copy_example_project
    from transformers import TrainerCallback

    from adapterci.train.run import train

    project = copy_example_project(tmp_path_factory.mktemp("short"))
    cfg = load_config(edit_config(project, **SHORT))
    a = train(cfg, output=project / "a", log=lambda _: None)
    b = train(cfg, output=project / "b", log=lambda _: None)

    class Crash(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, output=project / "c", log=lambda _: None, callbacks=[Crash()])
    crashed = {"adapter": (project / "c").exists(), "checkpoints": sorted(p.name for p in (project / "c.checkpoints").glob("checkpoint-*"))}
    lines: list[str] = []
    c = train(cfg, output=project / "c", resume=True, log=lines.append)
    return a, b, c, crashed, lines


@pytest.mark.slow
@pytest.mark.xdist_group("train")
def test_train_same_seed_gives_identical_weights(short_runs):
    import torch

    a, b, *_ = short_runs
    ta, tb = adapter_tensors(a.adapter_dir), adapter_tensors(b.adapter_dir)
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)
    assert a.metrics["data_fingerprint"] == b.metrics["data_fingerprint"]


@pytest.mark.slow
@pytest.mark.xdist_group("train")
def test_train_resume_continues_from_checkpoint(short_runs):
    import torch

    a, _, c, crashed, lines = short_runs
    assert crashed == {"adapter": False, "checkpoints": ["checkpoint-2"]}
    assert any("resuming from" in line and line.endswith("checkpoint-2") for line in lines)
    assert c.metrics["resumed_from_step"] == 2 and c.metrics["steps"] == SHORT["max_steps"]
    assert [s for s, _ in c.metrics["loss_history"]["train"]] == [2, 4, 6]  # step 2 from the checkpoint's state
    ta, tc = adapter_tensors(a.adapter_dir), adapter_tensors(c.adapter_dir)
    assert all(torch.allclose(ta[k], tc[k], atol=1e-5) for k in ta)  # same as the uninterrupted run


@pytest.mark.parametrize("requested, quant, cuda, importable, expected", [
    ("auto", "none", False, False, "trl"),
    ("auto", "none", True, False, "trl"),
    ("auto", "none", True, True, "unsloth"),
    ("auto", "4bit", True, True, "unsloth"),
    ("trl", "none", True, True, "trl"),
    ("trl", "4bit", True, False, "trl"),
    ("unsloth", "none", True, True, "unsloth"),
])
def test_train_backend_choice(requested, quant, cuda, importable, expected):
    assert choose_backend(requested, quant, cuda, importable) == expected


@pytest.mark.parametrize("requested, quant, cuda, importable, key", [
    ("unsloth", "none", False, True, "`train.backend`"),
    ("unsloth", "none", True, False, "`train.backend`"),
    ("auto", "4bit", False, False, "`train.quantization`"),
    ("trl", "4bit", False, False, "`train.quantization`"),
])
def test_train_backend_choice_errors(requested, quant, cuda, importable, key):
    with pytest.raises(ConfigError, match=key):
        choose_backend(requested, quant, cuda, importable)


@pytest.mark.parametrize("requested, cuda, cuda_bf16, cpu_bf16, expected", [
    ("auto", False, False, False, "fp32"),
    ("auto", False, False, True, "bf16"),
    ("auto", True, True, False, "bf16"),
    ("auto", True, False, False, "fp16"),
    ("fp32", True, True, True, "fp32"),
    ("bf16", False, False, False, "bf16"),  # emulated on such a CPU: slow, but what was asked
])
def test_train_precision_choice(requested, cuda, cuda_bf16, cpu_bf16, expected):
    assert choose_precision(requested, cuda, cuda_bf16, cpu_bf16) == expected


@pytest.mark.parametrize("requested, cuda, cuda_bf16", [("fp16", False, False), ("bf16", True, False)])
def test_train_precision_choice_errors(requested, cuda, cuda_bf16):
    with pytest.raises(ConfigError, match="`train.precision`"):
        choose_precision(requested, cuda, cuda_bf16, False)


def test_scored_positions_loss_equals_the_models_own_loss(example_project):
    """Logits only where a label is scored give the same loss and LoRA gradients as the full forward."""
    import torch
    from peft import LoraConfig, get_peft_model

    from adapterci.modelio import load_base_model
    from adapterci.train.loss import scored_positions_loss

    torch.manual_seed(0)
    cfg = load_config(example_project / "adapterci.yaml")
    model = get_peft_model(load_base_model(cfg), LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
    ids = torch.randint(3, 500, (3, 12))
    labels = ids.clone()
    labels[0, :9], labels[1, :4], labels[2, :11] = -100, -100, -100  # prompts of different lengths
    mask = torch.ones_like(ids)
    mask[1, 10:], labels[1, 10:] = 0, -100  # right padding

    def grads(loss):
        model.zero_grad()
        loss.backward()
        return [p.grad.clone() for p in model.parameters() if p.requires_grad]

    ours = scored_positions_loss(model, {"input_ids": ids, "attention_mask": mask, "labels": labels})
    ours_grads = grads(ours)
    theirs = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    assert torch.allclose(ours, theirs, atol=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(ours_grads, grads(theirs)))


@pytest.mark.parametrize("train_cfg, key", [
    ({"backend": "unsloth"}, "`train.backend`: unsloth needs a CUDA GPU"),
    ({"quantization": "4bit"}, "`train.quantization`: 4bit"),
])
def test_train_cuda_only_choices_fail_on_cpu(example_project, train_cfg, key):
    import torch

    if torch.cuda.is_available():
        pytest.skip("checks the CPU-only error")
    result = CliRunner().invoke(cli, ["train", "--config", str(edit_config(example_project, **train_cfg))])
    assert result.exit_code == 2, result.output
    assert key in result.output and "Traceback" not in result.output
    assert not (example_project / ".adapterci" / "run" / "adapter").exists()


def test_train_missing_base_model_is_config_error(example_project):
    import shutil

    shutil.rmtree(example_project / "models" / "tiny-llama")
    result = CliRunner().invoke(cli, ["train", "--config", str(example_project / "adapterci.yaml")])
    assert result.exit_code == 2, result.output
    assert "`base_model`" in result.output and "tiny-llama" in result.output


def test_train_layer_beyond_the_model_is_config_error(example_project):
    data = yaml.safe_load((example_project / "adapterci.yaml").read_text())
    cfg = edit_config(example_project, lora={**data["train"]["lora"], "layers_to_transform": [1, 2]})
    result = CliRunner().invoke(cli, ["train", "--config", str(cfg)])
    assert result.exit_code == 2, result.output
    line = next(i for i, text in enumerate(cfg.read_text().splitlines(), 1) if "layers_to_transform" in text)
    assert (f"line {line}: `train.lora.layers_to_transform`: layer 2 does not exist; the base model has 2 layers "
            "(0-1)" in result.output) and "Traceback" not in result.output
    assert not (example_project / ".adapterci" / "run" / "adapter").exists()


@pytest.mark.slow
def test_train_layers_to_transform_adapts_only_those_layers(example_project):
    from adapterci.train.run import train

    lora = {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"], "layers_to_transform": [1]}
    cfg = load_config(edit_config(example_project, lora=lora, max_steps=2, batch_size=8))
    result = train(cfg, log=lambda _: None)
    names = set(adapter_tensors(result.adapter_dir))
    assert names and all(".layers.1." in n for n in names), sorted(names)
    assert json.loads((result.adapter_dir / "adapter_config.json").read_text())["layers_to_transform"] == [1]


def test_train_bad_data_names_file_and_line(example_project):
    with (example_project / "data" / "train.jsonl").open("a") as f:
        f.write('{"instruction": "Classify", "output": 3}\n{not json\n')
    result = CliRunner().invoke(cli, ["train", "--config", str(example_project / "adapterci.yaml")])
    assert result.exit_code == 1, result.output
    assert "data/train.jsonl:361" in result.output and "data/train.jsonl:362" in result.output
    assert not (example_project / ".adapterci" / "run" / "adapter").exists()


def test_train_unreadable_dataset(example_project):
    (example_project / "data" / "train.jsonl").unlink()
    result = CliRunner().invoke(cli, ["train", "--config", str(example_project / "adapterci.yaml")])
    assert result.exit_code == 1, result.output
    assert "data/train.jsonl" in result.output and "Traceback" not in result.output


def test_train_overlength_error_names_row(example_project):
    cfg = edit_config(example_project, max_length=24, overlength="error")
    result = CliRunner().invoke(cli, ["train", "--config", str(cfg)])
    assert result.exit_code == 1, result.output
    assert "data/train.jsonl:1: row is" in result.output and "`train.max_length` (24)" in result.output
    assert not (example_project / ".adapterci" / "run" / "adapter").exists()


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.skipif("not __import__('torch').cuda.is_available()", reason="needs CUDA (unsloth, bitsandbytes 4-bit)")
@pytest.mark.parametrize("backend, quantization", [("unsloth", "4bit"), ("trl", "4bit"), ("auto", "none")])
def test_train_gpu_backends(example_project, backend, quantization):
    from peft import PeftModel

    from adapterci.modelio import load_base_model
    from adapterci.train.run import train

    cfg = load_config(edit_config(example_project, backend=backend, quantization=quantization, max_steps=4))
    result = train(cfg, log=lambda _: None)
    assert result.metrics["device"] == "cuda" and result.metrics["backend"] in ("unsloth", "trl")
    PeftModel.from_pretrained(load_base_model(cfg), str(result.adapter_dir))


@pytest.mark.slow
@pytest.mark.xdist_group("train")
def test_train_two_process_accelerate_run_writes_one_adapter(example_project):
    """DDP on CPU (gloo): two processes train, only the main one writes the adapter."""
    import os
    import subprocess
    import sys

    config = edit_config(example_project, max_steps=2, batch_size=8, logging_steps=1)
    env = {**os.environ, "ADAPTERCI_RAISE_ERRORS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
         "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
         "-m", "adapterci", "train", "--config", str(config), "--output", "adapter", "--json"],
        cwd=example_project, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = json.loads(proc.stdout)  # exactly one JSON document: the other rank prints nothing
    assert meta["world_size"] == 2 and meta["steps"] == 2
    assert proc.stderr.count("train: backend trl (auto)") == 2 and proc.stderr.count("train: wrote") == 1
    assert sorted(p.name for p in example_project.iterdir() if p.name.startswith("adapter")) == [
        "adapter", "adapter.loss.png", "adapterci.yaml"]
    cached = list((example_project / ".adapterci").glob("**/adapters/*/adapter"))
    assert len(cached) == 1, cached  # rank 0 alone stores it in the stage cache, for `run` to reuse
    assert (example_project / "adapter" / "adapter_model.safetensors").exists()
