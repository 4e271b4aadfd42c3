"""Loading the configured base model's tokenizer and weights (a local directory or a Hub id + revision)."""

from __future__ import annotations

from pathlib import Path
from typing import Any



def base_model_ref(cfg) -> str:
    """What `from_pretrained` gets: the resolved local directory, or the Hub id."""
    from adapterci.configbase import confine_tree

    local = cfg.base_model_path()
    if local is not None and not local.is_dir():
        raise cfg.error("base_model", f"directory not found: {local}")
    if local is None and Path(cfg.base_model).exists():
        # `from_pretrained` would quietly load this path relative to the working directory instead of the Hub
        raise cfg.error("base_model", f"directory not found: {cfg.base_dir / cfg.base_model} (paths are relative "
                                      "to the config file)")
    if local is not None:
        try:
            confine_tree(local, cfg.root, "base model")
        except ValueError as exc:
            raise cfg.error("base_model", str(exc)) from None
    return str(local) if local is not None else cfg.base_model


def load_tokenizer(cfg) -> Any:
    """The base model's tokenizer (pad token set)."""
    try:
        return load_tokenizer_from(base_model_ref(cfg), cfg.base_revision)
    except (OSError, ValueError) as exc:  # ValueError: a directory without usable tokenizer files
        raise cfg.error("base_model", f"cannot load a tokenizer from {base_model_ref(cfg)!r}: {exc}") from None


def load_tokenizer_from(ref: str, revision: str | None = None) -> Any:
    """The tokenizer of a model directory or Hub id, with a pad token (eos when it has none)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(ref, revision=revision)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_base_model(cfg, dtype: str = "float32", device: str = "cpu") -> Any:
    """The base model's weights as a `AutoModelForCausalLM` in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM

    ref = base_model_ref(cfg)
    try:
        model = AutoModelForCausalLM.from_pretrained(ref, revision=cfg.base_revision, dtype=getattr(torch, dtype))
    except OSError as exc:
        raise cfg.error("base_model", f"cannot load a model from {ref!r}: {exc}") from None
    return model.to(device).eval()


def base_model_identity(cfg) -> dict[str, Any]:
    """What pins the base model: the content hash of a local directory, or the Hub id and its resolved commit."""
    from adapterci.fingerprint import hash_tree

    local = cfg.base_model_path()
    if local is not None:
        return {"base_model": cfg.base_model, "content_hash": hash_tree(local)}
    return {"base_model": cfg.base_model, "revision": cfg.base_revision, "resolved_revision": _resolve_revision(cfg)}


def _resolve_revision(cfg) -> str | None:
    """The commit sha a Hub revision points to (None when the Hub cannot be asked, e.g. offline)."""
    rev = cfg.base_revision
    if rev and len(rev) == 40 and all(c in "0123456789abcdef" for c in rev):
        return rev
    try:
        from huggingface_hub import model_info

        return model_info(cfg.base_model, revision=rev).sha
    except Exception:  # offline, unknown repo, no network: the caller records what it has
        return None
