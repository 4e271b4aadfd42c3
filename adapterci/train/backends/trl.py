"""transformers + PEFT: the portable backend (CPU, CUDA, multi-process under accelerate)."""

from __future__ import annotations

from typing import Any

name = "trl"


def load(spec) -> tuple[Any, Any]:
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, set_seed

    from adapterci.modelio import load_tokenizer_from

    tokenizer = load_tokenizer_from(spec.ref, spec.revision)
    kwargs: dict[str, Any] = {"revision": spec.revision, "dtype": torch.float32}
    if spec.device == "cuda":
        kwargs["dtype"] = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if spec.quantization == "4bit":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=kwargs["dtype"])
    model = AutoModelForCausalLM.from_pretrained(spec.ref, **kwargs)
    if spec.quantization == "4bit":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=spec.gradient_checkpointing)
    set_seed(spec.seed)  # LoRA initialisation draws from the global RNG
    lora = spec.lora
    model = get_peft_model(model, LoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=lora.target_modules,
        modules_to_save=lora.modules_to_save, task_type="CAUSAL_LM"))
    return model, tokenizer
