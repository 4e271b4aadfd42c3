"""`adapterci check` needs a base model's tokenizer, never its weights: a GGUF base's tokenizer comes from the file's
metadata (nothing converted into the cache), and when the file is absent (gitignored, a CI checkout) from
`base_tokenizer` or `base_upstream`, counting the same tokens."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from adapterci.cli import cli
from adapterci.config import load_config
from adapterci.data.checks.corpus import load_corpus
from adapterci.data.checks.token_length import check_token_length
from adapterci.errors import ConfigError
from adapterci.ggufbase import cache_root, converted, inspect
from adapterci.modelio import base_model_identity, load_tokenizer_from, resolve_base
from gguf_files import TINY, write_tiny_gguf

MAX_TOKENS = 24  # far below the rows' lengths: every row is tokenized and most fail, each with its count


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf")


def gguf_project(project: Path, gguf: Path | None, **keys) -> Path:
    """The tiny example project with a GGUF base (`models/tiny.gguf`, a copy of `gguf`; absent when None)."""
    path = project / "adapterci.yaml"
    config = yaml.safe_load(path.read_text())
    config.update(base_model="models/tiny.gguf", **keys)
    config["checks"]["max_tokens"] = MAX_TOKENS
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    if gguf is not None:
        shutil.copy(gguf, project / "models" / "tiny.gguf")
    return path


def check(cfg_path: Path):
    result = CliRunner().invoke(cli, ["check", "--config", str(cfg_path), "--json"])
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def token_failures(report: dict) -> list[dict]:
    return next(c["failures"] for c in report["checks"] if c["name"] == "token_length")


def full_tokenizer_failures(cfg, tokenizer_dir: Path) -> list[dict]:
    """The token_length failures with the tokenizer of a complete model directory (what training loads)."""
    result = check_token_length(load_corpus(cfg), cfg, load_tokenizer_from(str(tokenizer_dir)))
    return [f.as_dict() for f in sorted(result.failures, key=lambda f: (f.file, f.line))]


def cache_entries() -> list[str]:
    root = cache_root()
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def test_check_reads_a_gguf_tokenizer_without_converting_the_weights(example_project, tiny_gguf):
    cfg_path = gguf_project(example_project, tiny_gguf)
    report = check(cfg_path)
    assert cache_entries() == []  # no float32 conversion, not even a lock file
    failures = token_failures(report)
    assert len(failures) > 100 and all("tokens, longer than" in f["message"] for f in failures)
    cfg = load_config(cfg_path)
    full = converted(inspect(cfg.base_model_path()), lambda line: None)  # the dequantized model's own tokenizer
    assert failures == full_tokenizer_failures(cfg, full)  # every row, every count


def test_check_without_the_gguf_file_uses_base_tokenizer(example_project, tiny_gguf):
    cfg_path = gguf_project(example_project, None, base_tokenizer="models/tiny-llama")
    report = check(cfg_path)
    assert cache_entries() == []
    cfg = load_config(cfg_path)
    assert token_failures(report) == full_tokenizer_failures(cfg, TINY)
    # the stages that need the weights stop, naming the file and what still runs
    for needs_weights in (resolve_base, base_model_identity):
        with pytest.raises(ConfigError) as info:
            needs_weights(cfg)
        assert info.value.problems[0].startswith("line 2: `base_model`: GGUF file not found: models/tiny.gguf")
        assert "only `adapterci check` runs without it" in info.value.problems[0]
    shutil.copy(tiny_gguf, example_project / "models" / "tiny.gguf")  # the file, once there, is what counts
    assert token_failures(check(cfg_path)) == token_failures(report)


def test_check_logs_which_tokenizer_stands_in(example_project):
    logs: list[str] = []
    from adapterci.modelio import load_tokenizer

    cfg = load_config(gguf_project(example_project, None, base_tokenizer="models/tiny-llama"))
    load_tokenizer(cfg, weights_optional=True, log=logs.append)
    assert logs == [f"tokenizer: {example_project / 'models' / 'tiny-llama'} (`base_tokenizer`), as the GGUF file "
                    "models/tiny.gguf is not at hand"]


def test_check_without_the_gguf_file_fetches_base_upstream_tokenizer_only(example_project, tiny_gguf, hub_emulator):
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo("tester/tiny-llama")  # the "upstream": the tiny model with its weights
    api.upload_folder(folder_path=str(TINY), repo_id="tester/tiny-llama", allow_patterns=["*.json", "*.jinja",
                                                                                            "*.safetensors"])
    api.create_repo("tester/tiny-gguf")
    api.upload_file(path_or_fileobj=str(tiny_gguf), path_in_repo="tiny-f32.gguf", repo_id="tester/tiny-gguf")
    cfg_path = gguf_project(example_project, None, base_upstream="tester/tiny-llama")
    report = check(cfg_path)
    fetched = [r["path"] for r in hub_emulator.requests if r["method"] in ("GET", "HEAD")]
    assert any(p.endswith("/tokenizer.json") for p in fetched)
    assert not any(p.endswith(".safetensors") for p in fetched)  # no weights
    assert token_failures(report) == full_tokenizer_failures(load_config(cfg_path), TINY)
    assert cache_entries() == []

    # a Hub GGUF with a named upstream: the tokenizer comes from the upstream, the GGUF file is not downloaded
    hub_emulator.requests.clear()
    config = yaml.safe_load(cfg_path.read_text())
    config.update(base_model="tester/tiny-gguf", base_gguf_file="tiny-f32.gguf")
    cfg_path.write_text(yaml.safe_dump(config, sort_keys=False))
    assert token_failures(check(cfg_path)) == token_failures(report)
    assert not any(r["path"].endswith(".gguf") for r in hub_emulator.requests)


def test_absent_gguf_without_a_standin_says_how_to_check_without_it(example_project):
    cfg_path = gguf_project(example_project, None)
    result = CliRunner().invoke(cli, ["check", "--config", str(cfg_path)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    out = " ".join(result.output.split())
    assert "`base_model`: GGUF file not found: models/tiny.gguf" in out
    assert "`adapterci check` needs only the tokenizer: name the Hub model the file was converted from in " \
           "`base_upstream`, or a directory of tokenizer files committed in the repo in `base_tokenizer`" in out


def test_base_tokenizer_is_validated(example_project):
    def problem(**keys) -> str:
        path = example_project / "adapterci.yaml"
        config = yaml.safe_load(path.read_text())
        config.update(keys)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        with pytest.raises(ConfigError) as info:
            load_config(path)
        assert len(info.value.problems) == 1
        return re.sub(r"^line \d+: ", "", info.value.problems[0])

    assert problem(base_model="models/tiny.gguf", base_tokenizer="models/nope") == \
        "`base_tokenizer`: directory not found: models/nope (local paths are relative to the config file)"
    assert problem(base_model="models/tiny-llama", base_tokenizer="models/tiny-llama") == \
        "`base_tokenizer`: only applies to a GGUF base model (`base_model: FILE.gguf` or `base_gguf_file`): another " \
        "base's tokenizer loads without its weights"
