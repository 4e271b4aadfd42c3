"""Loading the configured base model's tokenizer and weights: a local directory, a Hub id + revision, or a GGUF
file (local, or in a Hub repo) whose weights are served from its converted copy in the cache and whose tokenizer
is read from the file's metadata (see `adapterci.ggufbase`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from adapterci.configbase import confine, confine_tree
from adapterci.console import log_line
from adapterci.fingerprint import hash_tree
from adapterci.ggufbase import GgufError, converted, inspect, missing
from adapterci.ggufbase import load_tokenizer as gguf_tokenizer
from adapterci.reuse import policy


@dataclass(frozen=True)
class BaseModel:
    """The configured base model, resolved to what `from_pretrained` loads."""

    ref: str  # a local directory or a Hub id
    revision: str | None
    gguf: Any = None  # ggufbase.GgufInfo of a GGUF base
    upstream_hub_id: str | None = None  # a GGUF base's original model: what releases name as their base


def resolve_base(cfg, log: Callable[[str], None] = log_line) -> BaseModel:
    """The base model to load; a GGUF file is converted into the cache on first use (ConfigError naming the key
    and its line when it cannot be)."""
    if cfg.is_gguf():
        info = gguf_info(cfg)
        try:
            directory = converted(info, log, policy(cfg))
        except GgufError as exc:
            raise cfg.error(_gguf_key(cfg), str(exc)) from None
        return BaseModel(str(directory), None, info, cfg.base_upstream or info.upstream_hub_id)

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
        for weights in sorted(local.rglob("*.safetensors")):  # before torch sees them: a file named, no traceback
            if why := safetensors_problem(weights):
                raise cfg.error("base_model", f"{weights} is not a readable safetensors file ({why})")
    return BaseModel(str(local) if local is not None else cfg.base_model, cfg.base_revision)


def safetensors_problem(path: Path) -> str | None:
    """Why `path` is not a whole safetensors file (None when it is): an 8-byte little-endian header length, a
    JSON header naming each tensor's byte range, then exactly those bytes. Reads the header only."""
    try:
        size = Path(path).stat().st_size
        with open(path, "rb") as f:
            length = int.from_bytes(f.read(8), "little")
            if size < 8 or size < 8 + length:
                return f"the header is cut short or garbage ({size} bytes in all)"
            header = json.loads(f.read(length))
        ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        return f"unreadable header ({type(exc).__name__})"
    expected = 8 + length + max(ends, default=0)
    if size != expected:
        return f"truncated or padded: {size} bytes, the header promises {expected}"
    return None


def gguf_info(cfg) -> Any:
    """The header of the configured GGUF file (downloaded from the Hub for `base_gguf_file`), without converting."""
    key = _gguf_key(cfg)
    if cfg.base_gguf_file is None:
        if not cfg.base_model_path().exists():
            raise cfg.error(key, missing(cfg.base_model, bool(cfg.base_tokenizer or cfg.base_upstream)))
        try:
            path = confine(cfg.base_model_path(), cfg.root, "the GGUF file")
        except ValueError as exc:
            raise cfg.error(key, str(exc)) from None
    else:
        from huggingface_hub import hf_hub_download

        try:
            path = Path(hf_hub_download(cfg.base_model, cfg.base_gguf_file, revision=cfg.base_revision))
        except Exception as exc:  # offline without a cached copy, unknown repo or file, network errors
            raise cfg.error(key, f"cannot download {cfg.base_gguf_file!r} from {cfg.base_model!r}: {exc}") from None
    try:
        return inspect(path)
    except (GgufError, OSError) as exc:
        raise cfg.error(key, str(exc)) from None


def _gguf_key(cfg) -> str:
    return "base_gguf_file" if cfg.base_gguf_file else "base_model"


def base_model_ref(cfg) -> str:
    """What `from_pretrained` gets: the resolved local directory, or the Hub id."""
    return resolve_base(cfg).ref


def load_tokenizer(cfg, weights_optional: bool = False, log: Callable[[str], None] = log_line) -> Any:
    """The base model's tokenizer (pad token set), without loading or converting any weights: a GGUF base's is
    read from the file's metadata. `weights_optional` (`check`, which counts tokens only): a GGUF base whose file
    is not at hand (a local file absent from the checkout, or a Hub file not downloaded for this) is stood in for
    by `base_tokenizer`, else by `base_upstream`'s tokenizer from the Hub, when the config names one."""
    info, revision = None, None
    if not cfg.is_gguf():
        base = resolve_base(cfg)
        ref, key, revision = base.ref, "base_model", base.revision
    elif weights_optional and (standin := _standin(cfg)) is not None:
        ref, key = standin
        log(f"tokenizer: {ref} (`{key}`), as the GGUF file {cfg.base_gguf_file or cfg.base_model} is not at hand")
    else:
        info = gguf_info(cfg)
        ref, key = str(info.path), _gguf_key(cfg)
    try:
        tokenizer = (_with_pad(gguf_tokenizer(info, policy(cfg))) if info is not None
                     else load_tokenizer_from(ref, revision))
    except GgufError as exc:
        raise cfg.error(key, str(exc)) from None
    except (OSError, ValueError) as exc:  # ValueError: a directory without usable tokenizer files
        raise cfg.error(key, f"cannot load a tokenizer from {ref!r}: {exc}") from None
    check_chat_template(cfg, tokenizer)
    return tokenizer


def _standin(cfg) -> tuple[str, str] | None:
    """(tokenizer, config key) standing in for a GGUF base's own when its file is not at hand, or None."""
    if cfg.base_gguf_file is None and cfg.base_model_path().is_file():
        return None
    if cfg.base_tokenizer:
        return str(cfg.resolve(cfg.base_tokenizer)), "base_tokenizer"
    return (cfg.base_upstream, "base_upstream") if cfg.base_upstream else None


def check_chat_template(cfg, tokenizer) -> None:
    """`prompt_template: chat` needs the base model's tokenizer to have a chat template: a ConfigError naming
    `prompt_template` and its line otherwise (found where the tokenizer is loaded, before any work)."""
    if cfg.prompt_template == "chat" and not getattr(tokenizer, "chat_template", None):
        raise cfg.error("prompt_template", f"`chat` uses the tokenizer's chat template, and the tokenizer of "
                                           f"{cfg.base_model!r} has none: use `alpaca` or a Jinja template")


def load_tokenizer_from(ref: str, revision: str | None = None) -> Any:
    """The tokenizer of a model directory or Hub id, with a pad token (eos when it has none)."""
    from transformers import AutoTokenizer

    return _with_pad(AutoTokenizer.from_pretrained(ref, revision=revision))


def _with_pad(tok: Any) -> Any:
    """`tok` with a pad token (its eos when it has none)."""
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_base_model(cfg, dtype: str = "float32", device: str = "cpu") -> Any:
    """The base model's weights as a `AutoModelForCausalLM` in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM

    base = resolve_base(cfg)
    try:
        model = AutoModelForCausalLM.from_pretrained(base.ref, revision=base.revision, dtype=getattr(torch, dtype))
    except OSError as exc:
        raise cfg.error("base_model", f"cannot load a model from {base.ref!r}: {exc}") from None
    return model.to(device).eval()


def base_model_identity(cfg) -> dict[str, Any]:
    """What pins the base model: the content hash of a local directory, the sha256 of a GGUF file (with its
    quantization, metadata and upstream Hub id `hub_id`), or the Hub id and its resolved commit."""
    if cfg.is_gguf():  # pinned by the file's sha256; `hub_id` is the upstream model releases name as their base
        info = gguf_info(cfg)
        identity = {"base_model": cfg.base_model, "content_hash": info.sha256,
                    "gguf_file": cfg.base_gguf_file or Path(cfg.base_model).name, "gguf": info.describe(),
                    "hub_id": cfg.base_upstream or info.upstream_hub_id, "hub_revision": None}
        if cfg.base_gguf_file:
            identity["revision"] = cfg.base_revision
        return identity
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
