"""GGUF base models: a `.gguf` file dequantized once into a content-addressed cache that every stage loads.

The cache lives in `$ADAPTERCI_HOME/cache/gguf/<sha256 of the file>/` (default home `~/.cache/adapterci`): a
float32 safetensors model with its tokenizer (chat template included) and `adapterci-gguf.json` (what the file
is). A conversion is built in a temp sibling under a file lock and renamed into place, so a second process waits
for the first and a killed one leaves no half-written entry (its temp folder is removed by the next converter).
The tokenizer alone (all `check` needs) is read from the file's metadata, without converting it.

A run that may not reuse what is on disk (`adapterci.reuse`: a trusted CI run on a shared runner, or a cached
conversion without a valid seal under ADAPTERCI_CACHE_KEY) converts the file again into a folder of its own,
once per process, removed when it exits: a converted copy is not checked against its file by anything else."""

from __future__ import annotations

import atexit
import re
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from adapterci import settings
from adapterci.console import is_terminal, log_line
from adapterci.fingerprint import hash_file
from adapterci.fsio import staged_dir, write_json_atomic
from adapterci.reuse import Reuse

INFO_JSON = "adapterci-gguf.json"
# general.* metadata worth recording: what the file says it is and where it came from
METADATA_KEYS = re.compile(r"^general\.(name|organization|basename|finetune|size_label|license|source\..*|"
                           r"base_model\..*)$")
_HUB_URL = re.compile(r"^https?://(?:www\.)?huggingface\.co/([\w.-]+/[\w.-]+?)(?:/.*)?$")


class GgufError(ValueError):
    """The file is not a GGUF model transformers can load (corrupt, truncated, unsupported architecture)."""


@dataclass(frozen=True)
class GgufInfo:
    """What a GGUF file is: its content hash, quantization, architecture and the upstream model it names."""

    path: Path
    sha256: str
    quantization: str  # from general.file_type, e.g. Q4_1, F16
    architecture: str
    metadata: dict[str, Any] = field(default_factory=dict)  # general.name, general.source.url, ...

    @property
    def upstream_hub_id(self) -> str | None:
        """The Hub id of the model the file was converted from, when its metadata names one."""
        repo = self.metadata.get("general.source.huggingface.repository")
        if isinstance(repo, str) and re.fullmatch(r"[\w.-]+/[\w.-]+", repo):
            return repo
        match = _HUB_URL.match(str(self.metadata.get("general.source.url", "")))
        return match.group(1) if match else None

    def describe(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "quantization": self.quantization, "architecture": self.architecture,
                "metadata": self.metadata}


def cache_root() -> Path:
    """Where converted GGUF models are kept: `$ADAPTERCI_HOME/cache/gguf` (default `~/.cache/adapterci`)."""
    return settings.current().home / "cache" / "gguf"


_MEMO: dict[tuple[str, int, int], GgufInfo] = {}
_OWN: dict[str, Path] = {}  # sha256 -> this process's own conversion (when the shared one may not be reused)
ANYTHING = Reuse(True)


def inspect(path: Path) -> GgufInfo:
    """Read the header of a GGUF file (once per process while the file is unchanged: every stage asks);
    GgufError when it is not a complete, readable GGUF file."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _MEMO:
        _MEMO[key] = _read(path)
    return _MEMO[key]


def _read(path: Path) -> GgufInfo:
    from gguf import GGUFReader, LlamaFileType

    try:
        reader = GGUFReader(path)
    except (ValueError, OSError, IndexError, KeyError) as exc:  # bad magic, short header, truncated tensor data
        raise GgufError(f"{path.name} is not a readable GGUF file ({exc})") from None
    size = path.stat().st_size
    end = max((t.data_offset + int(t.n_bytes) for t in reader.tensors), default=0)
    if not reader.tensors or end > size:
        raise GgufError(f"{path.name} is truncated: its tensors need {end} bytes, the file has {size}")
    fields = {name: _value(f) for name, f in reader.fields.items()}
    file_type = fields.get("general.file_type")
    try:
        quant = LlamaFileType(int(file_type)).name.removeprefix("MOSTLY_").removeprefix("ALL_")
    except (TypeError, ValueError):
        quant = "unknown"
    return GgufInfo(path=path, sha256=hash_file(path), quantization=quant,
                    architecture=str(fields.get("general.architecture", "unknown")),
                    metadata={k: v for k, v in sorted(fields.items()) if METADATA_KEYS.match(k)})


def _value(field_: Any) -> Any:
    try:
        return field_.contents()
    except (ValueError, IndexError, TypeError):
        return None


def missing(path_text: str, standin: bool) -> str:
    """Why a local GGUF base that is absent stops a command: every stage but `check` needs its weights, and `check`
    only its tokenizer (`standin`: the config names one, `base_tokenizer` or `base_upstream`)."""
    why = f"GGUF file not found: {path_text} (local paths are relative to the config file; a gitignored model file " \
          "is not in a fresh checkout, e.g. on a CI runner)"
    if standin:
        return why + ": only `adapterci check` runs without it (on the tokenizer of `base_tokenizer` or `base_upstream`)"
    return why + ". `adapterci check` needs only the tokenizer: name the Hub model the file was converted from in " \
                 "`base_upstream`, or a directory of tokenizer files committed in the repo in `base_tokenizer`"


def load_tokenizer(info: GgufInfo, reuse: Reuse = ANYTHING) -> Any:
    """The tokenizer a GGUF file's metadata describes (chat template included), read without any tensor data and
    without converting anything: from the file (about 10 s for a 49k-token vocabulary), or from its converted copy
    when one is cached already (the same tokenizer, saved; under a second). GgufError when transformers cannot
    read it. `reuse`: whether the shared converted copy may be read (this process's own always may)."""
    from transformers import AutoTokenizer

    shared = cache_root() / info.sha256
    cached = _OWN.get(info.sha256) or (shared if reuse.reusable_dir("gguf", info.sha256, shared) else None)
    if cached is not None:
        return AutoTokenizer.from_pretrained(str(cached))
    with _quiet_progress():
        try:
            return AutoTokenizer.from_pretrained(str(info.path.parent), gguf_file=info.path.name)
        except (ValueError, KeyError, NotImplementedError, RuntimeError, OSError) as exc:
            raise GgufError(f"transformers cannot load {info.path.name}: {exc}") from None


def converted(info: GgufInfo, log: Callable[[str], None] = log_line, reuse: Reuse = ANYTHING) -> Path:
    """The directory holding `info`'s model as float32 safetensors: the shared cache's (converting it on first
    use, sealed when `reuse` holds a key), or this process's own when `reuse` forbids the shared one."""
    final = cache_root() / info.sha256
    if info.sha256 in _OWN:
        return _OWN[info.sha256]
    if reuse.reusable_dir("gguf", info.sha256, final):
        return final
    if not reuse.allowed or final.is_dir():  # nothing may be reused here, or the shared copy is not sealed
        return _own_conversion(info, log, reuse.reason or "the cached conversion has no valid seal")
    from filelock import FileLock

    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(final.parent / f"{info.sha256}.lock")):
        if final.is_dir():  # another process converted it while we waited
            return final if reuse.reusable_dir("gguf", info.sha256, final) else \
                _own_conversion(info, log, "the cached conversion has no valid seal")
        for stale in final.parent.glob(f".{info.sha256}.tmp-*"):  # left by a killed converter
            shutil.rmtree(stale, ignore_errors=True)
        log(f"base model: converting {info.path.name} ({info.architecture}, {info.quantization}) to float32 "
            f"safetensors in {final} (once)")
        with staged_dir(final) as tmp:
            _convert(info, tmp)
            write_json_atomic(tmp / INFO_JSON, {"source_file": info.path.name, **info.describe()})
            reuse.seal_dir("gguf", info.sha256, tmp)
    return final


def _own_conversion(info: GgufInfo, log: Callable[[str], None], why: str) -> Path:
    """Convert `info` into a temporary folder of this process (removed at exit), once per process."""
    own = Path(tempfile.mkdtemp(prefix=f"adapterci-gguf-{info.sha256[:12]}-"))
    atexit.register(shutil.rmtree, own, ignore_errors=True)
    log(f"base model: converting {info.path.name} ({info.architecture}, {info.quantization}) to float32 "
        f"safetensors in {own} for this run only: {why}")
    _convert(info, own)
    write_json_atomic(own / INFO_JSON, {"source_file": info.path.name, **info.describe()})
    _OWN[info.sha256] = own
    return own


def _convert(info: GgufInfo, out: Path) -> None:
    """Dequantize with transformers, then rebuild from the config: `save_pretrained` refuses GGUF-loaded models."""
    import torch
    from transformers import AutoModelForCausalLM

    path = info.path
    tokenizer = load_tokenizer(info, Reuse(False))  # from the file itself, never from a converted copy
    with _quiet_progress():
        try:
            loaded = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
        except (ValueError, KeyError, NotImplementedError, RuntimeError) as exc:  # e.g. unsupported architecture
            raise GgufError(f"transformers cannot load {path.name}: {exc}") from None
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(loaded.state_dict())
        model.generation_config = loaded.generation_config
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)


@contextmanager
def _quiet_progress() -> Iterator[None]:
    """No progress bars in CI logs: transformers' own (loading, writing shards) and the per-tensor one it draws
    with tqdm regardless of its settings."""
    import transformers.modeling_gguf_pytorch_utils as gguf_utils
    from transformers.utils import logging as hf_logging

    if is_terminal():
        yield
        return
    original, was_enabled = gguf_utils.tqdm, hf_logging.is_progress_bar_enabled()
    gguf_utils.tqdm = lambda iterable, **kwargs: iterable
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        gguf_utils.tqdm = original
        if was_enabled:
            hf_logging.enable_progress_bar()
