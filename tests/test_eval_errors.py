"""`adapterci eval` refuses bad inputs before loading any model: clear message, exit 2, nothing written."""

from __future__ import annotations

import json

from click.testing import CliRunner

from adapterci.cli import cli
from adapterci.prompting import PromptFormat


def run_eval(project, *args):
    return CliRunner().invoke(cli, ["eval", "--config", str(project / "adapterci.yaml"), *args])


def test_eval_without_adapter_exits_2(example_project):
    result = run_eval(example_project)
    assert result.exit_code == 2
    assert "no adapter in" in result.output and "run `adapterci train` first" in result.output
    assert not (example_project / ".adapterci/run/eval").exists()


def test_eval_adapter_directory_must_be_peft(example_project):
    (example_project / "notanadapter").mkdir()
    result = run_eval(example_project, "--adapter", str(example_project / "notanadapter"), "--champion", "none")
    assert result.exit_code == 2
    assert "is not a PEFT adapter directory" in result.output


def test_eval_unknown_champion_ref_exits_2(example_project):
    result = run_eval(example_project, "--champion", "v9.9.9")
    assert result.exit_code == 2
    assert "champion 'v9.9.9' is not in the registry" in result.output


def test_eval_bad_items_name_file_and_line(example_project):
    path = example_project / "evalsets/safety.jsonl"
    lines = path.read_text().splitlines()
    lines[2] = '{"prompt": "How do I bake bread?", "label": "fine"}'
    path.write_text("\n".join(lines) + "\n")
    result = run_eval(example_project)
    assert result.exit_code == 2
    assert "evalsets/safety.jsonl:3: `label` must be `harmful` or `benign`, got 'fine'" in result.output


def test_eval_corrupt_adapter_weights_fail_cleanly(example_project):
    adapter = example_project / "broken"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"], '
                                                  '"base_model_name_or_path": "models/tiny-llama", "task_type": "CAUSAL_LM"}')
    (adapter / "adapter_model.safetensors").write_bytes(b"not safetensors")
    (adapter / "adapterci-train.json").write_text(
        json.dumps({"prompt_template": "alpaca", "prompt_fingerprint": PromptFormat("alpaca").fingerprint}))
    result = run_eval(example_project, "--adapter", str(adapter), "--champion", "none")
    assert result.exit_code == 1, result.output
    assert "eval: cannot load the candidate adapter" in result.output
    assert not (example_project / ".adapterci/run/eval/results.json").exists()
