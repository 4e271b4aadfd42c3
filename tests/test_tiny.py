"""The committed tiny base model is exactly what the builder makes from its recorded corpus and settings."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from adapterci.cli import cli

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "models" / "tiny-llama"


def test_build_tiny_model_reproduces_committed_model(tmp_path, monkeypatch):
    from safetensors.torch import load_file

    s = json.loads((MODEL / "adapterci-tiny.json").read_text())["settings"]
    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(cli, [
        "build-tiny-model", "--out", str(tmp_path / "m"), "--corpus", "models/tiny-llama/tokenizer-corpus.jsonl",
        "--hidden-size", str(s["hidden_size"]), "--layers", str(s["layers"]), "--vocab-size", str(s["vocab_size"]),
        "--seed", str(s["seed"])])
    assert result.exit_code == 0, result.output
    built = tmp_path / "m"
    assert sorted(p.name for p in built.iterdir()) == sorted(p.name for p in MODEL.iterdir())
    for path in MODEL.iterdir():
        if path.name in ("config.json", "generation_config.json"):  # stamped with the transformers release that wrote it
            stamp = "transformers_version"
            assert {k: v for k, v in json.loads((built / path.name).read_text()).items() if k != stamp} == \
                {k: v for k, v in json.loads(path.read_text()).items() if k != stamp}
        elif path.name != "model.safetensors":
            assert (built / path.name).read_bytes() == path.read_bytes(), path.name
    a, b = load_file(str(built / "model.safetensors")), load_file(str(MODEL / "model.safetensors"))
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)


def test_tiny_model_tokenizer_and_chat_template():
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(MODEL))
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<s>", "</s>", "<pad>")
    assert tok("positive")["input_ids"][0] == tok.bos_token_id
    chat = [{"role": "user", "content": "Is this good?"}, {"role": "assistant", "content": "positive"}]
    out = tok.apply_chat_template(chat, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    answer = [t for t, m in zip(out["input_ids"], out["assistant_masks"]) if m]
    assert tok.decode(answer) == "positive</s>"
    assert (MODEL / "model.safetensors").stat().st_size < 3_000_000


def test_build_tiny_model_without_corpus_is_usage_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["build-tiny-model", "--out", "m", "--corpus", "nothing/*.jsonl"])
    assert result.exit_code == 2 and "no corpus file matches nothing/*.jsonl" in result.output
