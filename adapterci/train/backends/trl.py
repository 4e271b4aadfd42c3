"""transformers + PEFT: the portable backend (CPU, CUDA, multi-process under accelerate)."""

from __future__ import annotations

from typing import Any

from adapterci.modelio import load_tokenizer_from
from adapterci.train.backends import SettingError, check_module_names, lora_key

name = "trl"


def load(spec) -> tuple[Any, Any]:
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, set_seed

    tokenizer = load_tokenizer_from(spec.ref, spec.revision)
    kwargs: dict[str, Any] = {"revision": spec.revision, "dtype": torch.float32}
    if spec.device == "cuda" and spec.precision != "fp32":  # on CPU the weights stay fp32 under bf16 autocast
        kwargs["dtype"] = torch.bfloat16 if spec.precision == "bf16" else torch.float16
    if spec.quantization == "4bit":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=kwargs["dtype"])
    model = AutoModelForCausalLM.from_pretrained(spec.ref, **kwargs)
    if spec.quantization == "4bit":
        try:
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=spec.gradient_checkpointing)
        except ValueError as exc:
            raise SettingError("train.quantization", str(exc)) from None
    set_seed(spec.seed)  # LoRA initialisation draws from the global RNG
    lora = spec.lora
    check_module_names(model, lora)
    targets = lora.target_modules
    if lora.layers_to_transform and targets == "all-linear":  # PEFT takes layer indices only with module names
        targets = linear_module_names(model)
    try:
        model = get_peft_model(model, LoraConfig(
            r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets,
            modules_to_save=lora.modules_to_save, layers_to_transform=lora.layers_to_transform, task_type="CAUSAL_LM"))
    except ValueError as exc:  # a LoRA setting the model cannot take, not the base model
        raise SettingError(lora_key(str(exc)), str(exc)) from None
    return model, tokenizer


def linear_module_names(model) -> list[str]:
    """The names of the model's linear layers except the output head: what PEFT's `all-linear` adapts."""
    import torch

    head = model.get_output_embeddings()
    return sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                   if isinstance(module, torch.nn.Linear) and module is not head})
