"""The adapter directory: what `train` writes and `eval`, `release` and the caches read.

It holds PEFT's config and safetensors weights, the tokenizer files `save_pretrained` writes, and the training
record `adapterci-train.json` (data and config fingerprints, prompt format, base model identity). Anything else
there (pickles, notes, scratch) is not part of the adapter: never published, never hashed. One digest names
its content (`content_digest`): the cache keys, the provenance records and the release manifest all use it. The
digests cover the training record too: it names the base model a release publishes, so swapping it after the
gate (or planting an adapter whose record names another base) breaks the binding between adapter and verdict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adapterci.errors import UsageError
from adapterci.fingerprint import hash_file, hash_json
from adapterci.fsio import read_tolerant

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json", "added_tokens.json", "chat_template.jinja", "chat_template.json",
                 "tokenizer.model", "vocab.json", "merges.txt", "generation_config.json")
"""The files of an adapter (those present): what is released, hashed and compared."""
TRAIN_JSON = "adapterci-train.json"
"""The training record: hashed with the adapter (`digests`), published in its portable form (a local base named
by its directory name), so it is not one of ADAPTER_FILES."""
NOT_ADAPTER = ("training_args.bin", "README.md")
"""Written by Trainer.save_model / PEFT next to the weights but not part of the adapter (a pickle, a stub card)."""


def adapter_files(adapter_dir: Path) -> dict[str, Path]:
    """The files of a PEFT adapter directory: the names of ADAPTER_FILES that are present, each a regular file
    (not a symlink). UsageError if it is not an adapter directory with safetensors weights."""
    adapter_dir = Path(adapter_dir)
    if not adapter_dir.is_dir():
        raise UsageError(f"adapter directory not found: {adapter_dir}")
    if not (adapter_dir / "adapter_config.json").is_file():
        raise UsageError(f"{adapter_dir} is not a PEFT adapter: adapter_config.json is missing")
    if not (adapter_dir / "adapter_model.safetensors").exists():
        pickled = " (adapter_model.bin is a pickle and is never released: save the adapter with safetensors)" \
            if (adapter_dir / "adapter_model.bin").exists() else ""
        raise UsageError(f"{adapter_dir} has no adapter weights (adapter_model.safetensors){pickled}")
    files = {}
    for name in (*ADAPTER_FILES, TRAIN_JSON):
        path = adapter_dir / name
        if path.is_symlink() or (path.exists() and not path.is_file()):
            raise UsageError(f"{path} is {'a symlink' if path.is_symlink() else 'not a regular file'}: an adapter "
                             "directory holds regular files only")
        if path.is_file() and name != TRAIN_JSON:
            files[name] = path
    return files


def digests(adapter_dir: Path) -> dict[str, str]:
    """sha256 of every adapter file and of the training record when present (what provenance records and
    release compares)."""
    found = file_digests(adapter_files(adapter_dir))
    record = Path(adapter_dir) / TRAIN_JSON
    return {**found, TRAIN_JSON: hash_file(record)} if record.is_file() else found


def file_digests(files: dict[str, Path]) -> dict[str, str]:
    return {rel: hash_file(path) for rel, path in files.items()}


def content_digest(adapter_dir: Path) -> str:
    """The one digest of an adapter's content: cache keys, eval fingerprints and the release manifest's
    `content_hash`."""
    return hash_json(digests(adapter_dir))


def training_record(adapter_dir: Path) -> dict[str, Any] | None:
    """`adapterci-train.json`, or None when absent or unreadable."""
    return read_tolerant(Path(adapter_dir) / TRAIN_JSON)
