"""Loading the configured base model's tokenizer and weights (a local directory or a Hub id + revision)."""

from __future__ import annotations

from typing import Any

from adapterci.errors import ConfigError


def base_model_ref(cfg) -> str:
    """What `from_pretrained` gets: the resolved local directory, or the Hub id."""
    local = cfg.base_model_path()
    if local is not None and not local.is_dir():
        raise ConfigError(f"`base_model`: directory not found: {local}", str(cfg.path))
    return str(local) if local is not None else cfg.base_model


def load_tokenizer(cfg) -> Any:
    """The base model's tokenizer (pad token set)."""
    from transformers import AutoTokenizer

    ref = base_model_ref(cfg)
    try:
        tok = AutoTokenizer.from_pretrained(ref, revision=cfg.base_revision)
    except OSError as exc:
        raise ConfigError(f"`base_model`: cannot load a tokenizer from {ref!r}: {exc}", str(cfg.path)) from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok
