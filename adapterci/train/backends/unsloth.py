"""Unsloth: FastLanguageModel with its fused kernels and gradient checkpointing (CUDA only).

Imported only after `choose_backend` picked it, i.e. on a machine with CUDA where unsloth imports."""

from __future__ import annotations

from typing import Any

from adapterci.train.backends import SettingError, check_module_names, lora_key

name = "unsloth"
# Unsloth wants explicit module names; these are the linear layers of Llama-style decoders.
ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def load(spec) -> tuple[Any, Any]:
    import unsloth  # noqa: F401  (must be imported before transformers/peft to patch them)
    from unsloth import FastLanguageModel

    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=spec.ref, revision=spec.revision, max_seq_length=spec.max_length, dtype=None,
        load_in_4bit=spec.quantization == "4bit")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    lora = spec.lora
    check_module_names(model, lora)
    try:
        model = FastLanguageModel.get_peft_model(
            model, r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
            target_modules=ALL_LINEAR if lora.target_modules == "all-linear" else lora.target_modules,
            modules_to_save=lora.modules_to_save, layers_to_transform=lora.layers_to_transform, bias="none",
            use_gradient_checkpointing="unsloth" if spec.gradient_checkpointing else False,
            random_state=spec.seed, max_seq_length=spec.max_length)
    except ValueError as exc:  # a LoRA setting the model cannot take, not the base model
        raise SettingError(lora_key(str(exc)), str(exc)) from None
    return model, tokenizer
