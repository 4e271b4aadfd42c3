"""The serving manifest (`serving.json`): which adapters to serve, pinned by commit, with the canary's traffic
share and ready-to-use snippets for vLLM (multi-LoRA) and for a weighted router. `release` writes it into the
run directory; `adapterci serving` prints it for the current refs or any one ref.

The base model to serve is the one the released adapters were trained on, as their release manifests record it:
a Hub id (with its pinned revision), or for a GGUF base the Hub model the file was converted from. vLLM documents
LoRA only on full-precision weights, so a GGUF-judged adapter is served on that upstream model, and the manifest
says in `judged_vs_served` that what the gate judged (dequantized GGUF weights) is not what is served."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from adapterci import __version__
from adapterci.errors import UsageError
from adapterci.registry import open_registry
from adapterci.registry.base import MANIFEST

SCHEMA_VERSION = 1
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
"""The values vLLM accepts for `--max-lora-rank` (its LoRAConfig.max_lora_rank; default 16)."""


def serving_manifest(cfg, ref: str | None = None, registry=None) -> dict[str, Any]:
    """`stable` and `canary` (weights 1 - canary.traffic and canary.traffic; one of them at weight 1 when
    they are the same commit or only one exists), or only `ref` (weight 1). UsageError if there is nothing."""
    reg = registry or open_registry(cfg)
    refs = reg.refs()
    tag_of = {sha: tag for tag, sha in refs.versions().items()}
    if ref is not None:
        version = reg.resolve(ref)
        if version is None:
            raise UsageError(f"{ref!r} is not released in {reg.url} (see `adapterci versions`)")
        slots = [(ref, version.commit, 1.0)]
    else:
        stable, canary = refs.target("stable"), refs.target("canary")
        share = cfg.canary.traffic
        if stable and canary and stable != canary:
            slots = [("stable", stable, round(1 - share, 6)), ("canary", canary, share)]
        elif stable or canary:
            slots = [("stable" if stable else "canary", stable or canary, 1.0)]
        else:
            raise UsageError(f"nothing released in {reg.url} yet: run `adapterci release`")
    released = {sha: _released(reg, sha) for _, sha, _ in slots}
    adapters = [_adapter(cfg, reg, role, sha, tag_of.get(sha), weight, released[sha][1])
                for role, sha, weight in slots]
    bases = [_base(cfg, released[a["commit"]][0]) for a in adapters]
    base = bases[0]
    warnings = [f"`{a['name']}` saves whole modules ({', '.join(a['modules_to_save'])}: `train.lora.modules_to_save`), "
                "which vLLM's LoRA loader refuses" for a in adapters if a["modules_to_save"]]
    if any(b["model"] != base["model"] or b["revision"] != base["revision"] for b in bases):
        warnings.append("the adapters were trained on different base models ("
                        + ", ".join(f"`{a['name']}`: `{b['model']}`" for a, b in zip(adapters, bases))
                        + "): one vLLM server serves one base; the command serves the first")
    if base["local"] and base["judged"]:
        warnings.append("the base model is a GGUF file with no known Hub model: name the Hub model it was converted "
                        "from in `base_upstream` to serve that (vLLM documents LoRA only on full-precision weights)")
    return {"schema_version": SCHEMA_VERSION, "adapterci_version": __version__, "name": cfg.name,
            "registry": reg.url, "base_model": {k: base[k] for k in ("model", "revision", "tokenizer", "judged")},
            "adapters": adapters, "judged_vs_served": _judged_vs_served(base), "warnings": warnings,
            "vllm": _vllm(base, adapters), "router": {"routes": [{"model": a["name"], "weight": a["weight"]} for a in adapters]}}


def _released(reg, sha: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A release commit's manifest (`adapterci.json`) and `adapter_config.json` ({} for what is unreadable)."""
    def read(path: str) -> dict[str, Any]:
        try:
            data = json.loads(reg.read_file(sha, path) or b"{}")
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    return read(MANIFEST), read("adapter_config.json")


def _base(cfg, manifest: dict[str, Any]) -> dict[str, Any]:
    """The base to serve an adapter on, from its release manifest (the config for what it does not record):
    `model` and `revision`, `tokenizer` (a GGUF-judged base's upstream), `judged` (the GGUF the gate judged it on,
    None when that is the served model itself) and `local` (no Hub model known: served from the config's path)."""
    identity = manifest.get("base_model_identity") if isinstance(manifest.get("base_model_identity"), dict) else {}
    gguf = identity.get("gguf") if isinstance(identity.get("gguf"), dict) else None
    if gguf is None and not identity and cfg.is_gguf():  # an adapter released without a training record
        gguf = {}
    judged = None if gguf is None else {"file": identity.get("gguf_file") or Path(cfg.base_gguf_file or cfg.base_model).name,
                                        "quantization": gguf.get("quantization"), "sha256": gguf.get("sha256")}
    hub_id = manifest.get("base_model") if manifest and not manifest.get("base_model_local") else None
    if not manifest:
        hub_id = cfg.base_upstream if cfg.is_gguf() else (None if cfg.base_model_path() else cfg.base_model)
    revision = manifest.get("base_revision") if manifest else (None if cfg.is_gguf() else cfg.base_revision)
    if hub_id is None:  # only a local copy is known: where the config has it
        return {"model": cfg.base_model, "revision": None, "tokenizer": None, "judged": judged, "local": True}
    return {"model": hub_id, "revision": revision, "tokenizer": hub_id if judged else None, "judged": judged,
            "local": False}


def _judged_vs_served(base: dict[str, Any]) -> str | None:
    """What the gate judged against what is served, when they differ (a GGUF base served as its upstream)."""
    judged = base["judged"]
    if judged is None or base["local"]:
        return None
    sha = f", sha256 {judged['sha256'][:12]}…" if judged.get("sha256") else ""
    return (f"the gate judged these adapters on `{judged['file']}` ({judged.get('quantization') or 'GGUF'} weights "
            f"dequantized to float32{sha}); vLLM serves them on `{base['model']}`, the full-precision model it was "
            "converted from. The weights differ, so served answers can differ from the evaluated ones: to judge "
            f"what is served, evaluate with `base_model: {base['model']}`.")


def _adapter(cfg, reg, role: str, sha: str, version: str | None, weight: float,
             config: dict[str, Any]) -> dict[str, Any]:
    name = f"{cfg.name}-{role}"
    entry: dict[str, Any] = {"role": role, "name": name, "version": version, "commit": sha, "weight": weight,
                             "rank": _rank(config), "modules_to_save": _modules_to_save(config)}
    if reg.url.startswith("hf://"):
        repo_id = reg.url[len("hf://"):]
        entry["path"] = f"adapters/{name}"
        entry["download"] = f"hf download {repo_id} --revision {sha} --local-dir adapters/{name}"
    else:
        entry["path"] = str(reg.commit_dir(sha))
    return entry


def _modules_to_save(config: dict[str, Any]) -> list[str]:
    """The whole modules an adapter saves beside its LoRA matrices (PEFT's `modules_to_save`: a name or a list)."""
    modules = config.get("modules_to_save")
    return [modules] if isinstance(modules, str) else [str(m) for m in modules] if isinstance(modules, list) else []


def _rank(config: dict[str, Any]) -> int | None:
    """The largest LoRA rank of an adapter config: `r`, or a larger one in `rank_pattern` (None when unrecorded)."""
    ranks = [config.get("r"), *((config.get("rank_pattern") or {}).values()
                                if isinstance(config.get("rank_pattern"), dict) else ())]
    ranks = [r for r in ranks if isinstance(r, int) and not isinstance(r, bool) and r > 0]
    return max(ranks) if ranks else None


def _vllm(base: dict[str, Any], adapters: list[dict[str, Any]]) -> dict[str, Any]:
    """`vllm serve` with every adapter as a LoRA module (adapters downloaded first, by commit): the base pinned by
    revision, its tokenizer named where the gate judged another file, and `--max-lora-rank` fitting every adapter
    (vLLM refuses a larger rank than it was started with; its default is 16)."""
    command = ["vllm", "serve", base["model"]]
    if base["revision"]:
        command += ["--revision", base["revision"]]
    if base["tokenizer"]:
        command += ["--tokenizer", base["tokenizer"]]
        if base["revision"]:
            command += ["--tokenizer-revision", base["revision"]]
    command += ["--enable-lora", "--max-loras", str(len(adapters))]
    ranks = [a["rank"] for a in adapters if a["rank"]]
    if ranks:
        command += ["--max-lora-rank", str(next((r for r in VLLM_LORA_RANKS if r >= max(ranks)), max(ranks)))]
    command += ["--lora-modules", *(f"{a['name']}={a['path']}" for a in adapters)]
    return {"download": [a["download"] for a in adapters if "download" in a], "command": shlex.join(command)}


def vllm_script(manifest: dict[str, Any]) -> str:
    """The shell lines that download the adapters and start vLLM, with what the gate judged against what is served
    and any warning as comments above, and the router weights as a comment below."""
    notes = [f"# judged vs served: {manifest['judged_vs_served']}"] if manifest.get("judged_vs_served") else []
    notes += [f"# warning: {w}" for w in manifest.get("warnings") or []]
    routes = ", ".join(f"{r['model']}={r['weight']:g}" for r in manifest["router"]["routes"])
    return "\n".join([*notes, *manifest["vllm"]["download"], manifest["vllm"]["command"],
                      f"# route by weight: {routes}"]) + "\n"
