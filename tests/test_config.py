"""Config loading: typed sections, errors that name key and line, paths kept inside the repository."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from adapterci.cli import cli
from adapterci.config import load_config
from adapterci.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
MINIMAL = ("name: demo\nbase_model: models/tiny-llama\n"
           "eval: {suites: [{name: qa, path: evalsets/qa.jsonl, kind: task}]}\n"
           "gate: {rules: ['qa.exact_match >= base']}\n"
           "data:\n  train: data/train.jsonl\n")


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / ".git").mkdir(exist_ok=True)
    path = tmp_path / "adapterci.yaml"
    path.write_text(text)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems


def test_every_shipped_config_validates():
    """Every config in the repository (the `init` template is rendered and checked in test_init)."""
    skip = {".venv", ".adapterci", "templates"}
    shipped = [p for p in REPO.rglob("adapterci.yaml") if not skip & set(p.parts)]
    assert REPO / "adapterci.yaml" in shipped
    for path in shipped:
        load_config(path)


def test_load_minimal_applies_defaults(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL))
    assert cfg.name == "demo"
    assert cfg.train.backend == "auto"
    assert cfg.checks.max_tokens == cfg.train.max_length == 2048
    assert cfg.registry_location() == f"file://{(tmp_path / '.adapterci/registry').resolve()}"
    assert cfg.root == tmp_path.resolve()


def test_unknown_keys_and_bad_values_name_key_and_line(tmp_path):
    text = MINIMAL + "train:\n  lora: {r: 0, bogus: 1}\n  epochs: -1\n  backend: gpu\nregistry: s3://bucket\n"
    found = problems(write(tmp_path, text))
    assert "line 8: `train.lora.r`: Input should be greater than or equal to 1" in found
    assert "line 8: `train.lora.bogus`: unknown key" in found
    assert "line 9: `train.epochs`: Input should be greater than 0" in found
    assert any(p.startswith("line 10: `train.backend`: Input should be 'auto', 'unsloth' or 'trl'") for p in found)
    assert "line 11: `registry`: must be `file://PATH` or `hf://OWNER/NAME`" in found
    assert len(found) == 5


def test_lora_layers_to_transform_are_checked_indices(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL + "train:\n  lora: {layers_to_transform: [29, 27, 28]}\n"))
    assert cfg.train.lora.layers_to_transform == [27, 28, 29]
    assert load_config(write(tmp_path, MINIMAL)).train.lora.layers_to_transform is None
    for value, why in (("[-1]", "layer indices must be >= 0"), ("[3, 3]", "layer indices must be unique"),
                       ("[]", "List should have at least 1 item")):
        found = problems(write(tmp_path, MINIMAL + f"train:\n  lora:\n    layers_to_transform: {value}\n"))
        assert found[0].startswith(f"line 9: `train.lora.layers_to_transform`: {why}"), found


def test_missing_required_key(tmp_path):
    found = problems(write(tmp_path, "name: demo\nbase_model: org/model\n"))
    assert found == ["line 1: `data`: Field required",
                     "`gate`: the `gate:` section is missing: a release policy needs at least one rule in `gate.rules` "
                     "(docs/gate.md); without rules every adapter would pass"]


def test_paths_may_not_escape_repository(tmp_path):
    text = MINIMAL.replace("data/train.jsonl", "../../etc/passwd")
    found = problems(write(tmp_path, text))
    assert len(found) == 1 and found[0].startswith("line 6: `data.train`: path '../../etc/passwd' escapes")


def test_registry_may_point_anywhere(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL + "registry: file:///shared/registry\n"))
    assert cfg.registry_location() == "file:///shared/registry"
    cfg = load_config(write(tmp_path, MINIMAL + "registry: hf://acme/sentiment\n"))
    assert cfg.registry_location() == "hf://acme/sentiment"


def test_hub_id_base_model(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL.replace("models/tiny-llama", "meta-llama/Llama-3.2-1B")))
    assert cfg.base_model_path() is None
    assert problems(write(tmp_path, MINIMAL.replace("models/tiny-llama", "not a model!")))[0].startswith(
        "line 2: `base_model`: neither a local directory nor a Hub id")


def test_yaml_syntax_and_duplicate_keys(tmp_path):
    assert problems(write(tmp_path, MINIMAL + "train: [unclosed\n"))[0].startswith("line ")
    assert problems(write(tmp_path, MINIMAL + "name: again\n")) == ["line 7: YAML syntax error: duplicate key 'name'"]


def test_validation_sources_are_exclusive(tmp_path):
    text = MINIMAL + "  validation: data/valid.jsonl\n  validation_split: 0.1\n"
    assert problems(write(tmp_path, text)) == [
        "line 5: `data`: `validation` and `validation_split` cannot both be set"]


def test_validate_command_exit_codes(tmp_path):
    good = write(tmp_path, MINIMAL)
    result = CliRunner().invoke(cli, ["validate", str(good)])
    assert result.exit_code == 0 and result.output == f"{good.resolve()}: valid\n"
    bad = write(tmp_path, MINIMAL + "bogus: 1\n")
    result = CliRunner().invoke(cli, ["validate", str(bad)])
    assert result.exit_code == 2
    assert "line 7: `bogus`: unknown key" in result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(cli, ["validate", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2 and "config file not found" in result.output
    result = CliRunner().invoke(cli, ["validate", "--config", str(bad)])  # like every other command
    assert result.exit_code == 2 and "line 7: `bogus`: unknown key" in result.output
    (tmp_path / "good").mkdir()
    good = write(tmp_path / "good", MINIMAL)
    result = CliRunner().invoke(cli, ["validate", "--config", str(good)])
    assert result.exit_code == 0 and result.output == f"{good.resolve()}: valid\n"
    result = CliRunner().invoke(cli, ["validate", str(good), "--config", str(bad)])
    assert result.exit_code == 2 and "two config files given" in result.output
