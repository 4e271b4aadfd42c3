"""The serving manifest (`serving.json`): which adapters to serve, pinned by commit, with the canary's traffic
share and ready-to-use snippets for vLLM (multi-LoRA) and for a weighted router. `release` writes it into the
run directory; `adapterci serving` prints it for the current refs or any one ref."""

from __future__ import annotations

import shlex
from typing import Any

from adapterci import __version__
from adapterci.errors import UsageError
from adapterci.registry import open_registry

SCHEMA_VERSION = 1


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
    adapters = [_adapter(cfg, reg, role, sha, tag_of.get(sha), weight) for role, sha, weight in slots]
    base = {"model": cfg.base_model, "revision": cfg.base_revision}
    return {"schema_version": SCHEMA_VERSION, "adapterci_version": __version__, "name": cfg.name,
            "registry": reg.url, "base_model": base, "adapters": adapters,
            "vllm": _vllm(base, adapters), "router": {"routes": [{"model": a["name"], "weight": a["weight"]} for a in adapters]}}


def _adapter(cfg, reg, role: str, sha: str, version: str | None, weight: float) -> dict[str, Any]:
    name = f"{cfg.name}-{role}"
    entry: dict[str, Any] = {"role": role, "name": name, "version": version, "commit": sha, "weight": weight}
    if reg.url.startswith("hf://"):
        repo_id = reg.url[len("hf://"):]
        entry["path"] = f"adapters/{name}"
        entry["download"] = f"hf download {repo_id} --revision {sha} --local-dir adapters/{name}"
    else:
        entry["path"] = str(reg.commit_dir(sha))
    return entry


def _vllm(base: dict[str, Any], adapters: list[dict[str, Any]]) -> dict[str, Any]:
    """`vllm serve` with every adapter as a LoRA module (adapters downloaded first, by commit)."""
    command = ["vllm", "serve", base["model"]]
    if base["revision"]:
        command += ["--revision", base["revision"]]
    command += ["--enable-lora", "--max-loras", str(len(adapters)), "--lora-modules",
                *(f"{a['name']}={a['path']}" for a in adapters)]
    return {"download": [a["download"] for a in adapters if "download" in a], "command": shlex.join(command)}


def vllm_script(manifest: dict[str, Any]) -> str:
    """The shell lines that download the adapters and start vLLM, with the router weights as a comment."""
    routes = ", ".join(f"{r['model']}={r['weight']:g}" for r in manifest["router"]["routes"])
    return "\n".join([*manifest["vllm"]["download"], manifest["vllm"]["command"], f"# route by weight: {routes}"]) + "\n"
