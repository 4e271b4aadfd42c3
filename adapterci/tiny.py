"""A deterministic tiny Llama-architecture base model for offline tests and the example project.

A byte-level BPE tokenizer is trained with `tokenizers` on the text of JSONL corpus files, and a randomly
initialised `LlamaForCausalLM` (seeded) is saved beside it with `save_pretrained` (safetensors). The same
corpus and settings give byte-identical files. The corpus text is saved with the model (`tokenizer-corpus.jsonl`),
so the model can be rebuilt exactly from its own directory even after the example data changed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Iterator

from adapterci.fingerprint import hash_json
from adapterci.fsio import staged_dir, write_json_atomic
from adapterci.prompting import ALPACA

BOS, EOS, PAD = "<s>", "</s>", "<pad>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
BUILD_INFO = "adapterci-tiny.json"
CORPUS = "tokenizer-corpus.jsonl"

# Role headers are single special tokens; the assistant's answer (and its eos) sits inside
# {% generation %} markers so TRL's assistant-only loss can find it.
CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m.role == 'assistant' %}<|assistant|>\n{% generation %}{{ m.content }}{{ eos_token }}{% endgeneration %}\n"
    "{% else %}<|{{ m.role }}|>\n{{ m.content }}\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def corpus_text(files: Iterable[Path]) -> Iterator[str]:
    """Every string value of every parseable JSONL row of `files` (in the order given)."""
    for path in files:
        for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            yield from _strings(row)


def _strings(value) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def build_tokenizer(texts: Iterable[str], vocab_size: int):
    """A byte-level BPE `PreTrainedTokenizerFast` with bos/eos/pad, a bos-prepending post-processor and a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = [PAD, BOS, EOS, *ROLE_TOKENS]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, tok.token_to_id(BOS))])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD,
        additional_special_tokens=list(ROLE_TOKENS), chat_template=CHAT_TEMPLATE, model_max_length=512,
        padding_side="right")


def build_tiny_model(out_dir: Path, corpus_files: Iterable[Path], *, hidden_size: int = 64, layers: int = 2,
                     heads: int = 4, vocab_size: int = 1024, seed: int = 0) -> Path:
    """Build the tiny model + tokenizer into `out_dir` (replaced) and return it."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    texts = list(corpus_text(Path(f) for f in corpus_files))
    if not texts:
        raise ValueError("the corpus has no text")
    tokenizer = build_tokenizer([ALPACA, *texts], vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=4 * hidden_size,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
        max_position_embeddings=512, tie_word_embeddings=False, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(torch.float32)
    out_dir = Path(out_dir)
    with staged_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / CORPUS).write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts),
                                  encoding="utf-8")
        write_json_atomic(tmp / BUILD_INFO, {
            "builder": "adapterci.tiny.build_tiny_model",
            "settings": {"hidden_size": hidden_size, "layers": layers, "heads": heads,
                         "vocab_size": vocab_size, "seed": seed},
            "corpus_sha256": hash_json(texts),
            "parameters": sum(p.numel() for p in model.parameters()),
        })
    return out_dir
