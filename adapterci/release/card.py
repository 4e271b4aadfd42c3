"""What a release commit says about itself: the release manifest (`adapterci.json`) and the model card
(`README.md` with Hub YAML front matter). Built from the adapter's `adapterci-train.json` and, when present,
the run's `eval/results.json` and `gate.json`; all three are read tolerantly (unknown keys dropped, missing
keys -> null), since earlier adapterci versions or other tools may have written them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from adapterci import __version__

_SOURCE_REVISION = re.compile(r"^https?://(?:www\.)?huggingface\.co/([\w.-]+/[\w.-]+)/(?:tree|commit|blob|resolve)/"
                              r"([0-9a-f]{40})(?:/.*)?$")
TRAIN_KEYS = ("base_model", "prompt_template", "prompt_fingerprint", "data_fingerprint", "config_hash",
              "git_commit", "backend", "steps", "epochs", "best_valid_loss", "adapterci_version")


def eval_metrics(results: dict | None) -> dict[str, dict[str, dict[str, float]]]:
    """suite -> role (base/champion/candidate) -> metric -> value, numbers only."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    suites = (results or {}).get("suites")
    for suite, info in (suites.items() if isinstance(suites, dict) else []):
        metrics = info.get("metrics") if isinstance(info, dict) else None
        if not isinstance(metrics, dict):
            continue
        roles = {role: values for role, values in metrics.items() if isinstance(values, dict)}
        out[suite] = {role: {k: float(v) for k, v in values.items() if _number(v)} for role, values in roles.items()}
    return out


@dataclass(frozen=True)
class BaseRef:
    """The base model as anyone can fetch it: its Hub id and revision, or (a local base without a known upstream)
    only its name and content hash. Never a runner-local path."""

    name: str
    hub_id: str | None
    revision: str | None
    content_hash: str | None

    @classmethod
    def from_identity(cls, identity: dict[str, Any]) -> "BaseRef":
        """From the `base_model` identity that train records in `adapterci-train.json`: `{base_model, revision,
        resolved_revision}` for a Hub id, `{base_model, content_hash}` for a local directory; a local base converted
        from a Hub model (e.g. a GGUF file) names its upstream in `hub_id` and `hub_revision`."""
        name = str(identity.get("base_model") or "")
        local = identity.get("content_hash") is not None
        hub_id = identity.get("hub_id") or (None if local else name or None)
        revision = (identity.get("hub_revision") or _source_revision(identity, hub_id) if local else
                    identity.get("resolved_revision") or identity.get("revision"))
        return cls(name=Path(name).name if local else name, hub_id=hub_id, revision=revision,
                   content_hash=identity.get("content_hash"))

    def pinned(self) -> str:
        """`id@revision`, or the name and content hash of a local base."""
        if self.hub_id:
            return self.hub_id + (f"@{self.revision}" if self.revision else "")
        return f"{self.name} (local, content sha256 {self.content_hash})"


def _source_revision(identity: dict[str, Any], hub_id: str | None) -> str | None:
    """The commit of `hub_id` a GGUF file says it was converted from (`general.source.url` naming a commit)."""
    gguf = identity.get("gguf") if isinstance(identity.get("gguf"), dict) else {}
    metadata = gguf.get("metadata") if isinstance(gguf.get("metadata"), dict) else {}
    match = _SOURCE_REVISION.match(str(metadata.get("general.source.url") or ""))
    return match.group(2) if match and hub_id and match.group(1) == hub_id else None


def judged_base(identity: dict[str, Any]) -> dict[str, Any] | None:
    """The base the gate judged when it is not the model a release names as its base: a GGUF file (its name,
    quantization, content sha256 and, when it came from the Hub, the revision it was fetched at), whose weights
    were dequantized to float32. None for a full-precision base (Hub id or local directory): judged as named."""
    gguf = identity.get("gguf")
    if not isinstance(gguf, dict):
        return None
    return {"format": "gguf", "file": identity.get("gguf_file"), "quantization": gguf.get("quantization"),
            "sha256": gguf.get("sha256") or identity.get("content_hash"), "revision": identity.get("revision"),
            "weights": "dequantized to float32"}


def portable_provenance(train: dict[str, Any], base: BaseRef) -> dict[str, Any]:
    """`adapterci-train.json` as published: a local base is named by its directory name, not its path."""
    identity = train.get("base_model")
    if not isinstance(identity, dict) or base.hub_id == identity.get("base_model"):
        return train
    return {**train, "base_model": {**identity, "base_model": base.name}}


def portable_adapter_config(config: dict[str, Any], base: BaseRef) -> dict[str, Any]:
    """`adapter_config.json` as published: the base is its Hub id and revision (null when only a local copy is
    known: the manifest has its content hash), so `AutoPeftModelForCausalLM` works anywhere."""
    return {**config, "base_model_name_or_path": base.hub_id, "revision": base.revision}


def build_manifest(*, name: str, version: str, content_hash: str, files: dict[str, str], base: BaseRef,
                   train: dict | None, results: dict | None, gate: dict | None,
                   git_commit: str | None, released_at: str) -> dict[str, Any]:
    """The release manifest, `adapterci.json`. `content_hash`: the adapter as trained (before its config was
    made portable); `files`: sha256 of every published adapter file."""
    train = {k: portable_provenance(train or {}, base).get(k) for k in TRAIN_KEYS}
    identity = train["base_model"] if isinstance(train["base_model"], dict) else {}
    metrics = eval_metrics(results)
    rules = (gate or {}).get("rules")
    return {
        "schema_version": 1,
        "adapterci_version": __version__,
        "name": name,
        "version": version,
        "released_at": released_at,
        "content_hash": content_hash,
        "files": files,
        "base_model": base.hub_id or base.name,
        "base_revision": base.revision,
        "base_model_local": base.hub_id is None,
        "base_model_content_hash": base.content_hash,
        "base_model_identity": identity or None,
        "base_judged": judged_base(identity),  # what the gate judged, when it is not `base_model` itself
        "data_fingerprint": train["data_fingerprint"],
        "config_hash": train["config_hash"],
        "prompt_template": train["prompt_template"],
        "prompt_fingerprint": train["prompt_fingerprint"],
        "train": {k: train[k] for k in ("backend", "steps", "epochs", "best_valid_loss", "adapterci_version")},
        "git_commit": train["git_commit"] or git_commit,
        "metrics": {suite: roles.get("candidate", {}) for suite, roles in metrics.items()},
        "eval": metrics or None,
        "gate_verdict": (gate or {}).get("verdict"),
        "gate_provenance": (gate or {}).get("provenance"),  # trust domain and digests the verdict judged
        "gate_rules": [{"rule": r.get("rule"), "outcome": r.get("outcome")} for r in rules
                       if isinstance(r, dict)] if isinstance(rules, list) else None,
    }


def model_card(manifest: dict[str, Any], repo_id: str | None) -> str:
    """README.md: Hub YAML front matter (base_model, library_name: peft, tags, model-index) and a body with the
    eval results, gate verdict, data fingerprint and provenance. `repo_id`: the Hub repo (for the usage snippet)."""
    name, version = manifest["name"], manifest["version"]
    front: dict[str, Any] = {}
    if not manifest["base_model_local"]:  # the Hub validates `base_model` as a model id
        front["base_model"] = manifest["base_model"]
    front.update({"library_name": "peft", "tags": ["adapterci", "peft", "lora", name]})
    results = [{"task": {"type": "text-generation"}, "dataset": {"name": suite, "type": suite},
                "metrics": [{"type": metric, "name": f"{suite} {metric}", "value": value}
                            for metric, value in sorted(values.items())]}
               for suite, values in sorted(manifest["metrics"].items()) if values]
    if results:
        front["model-index"] = [{"name": name, "results": results}]
    lines = ["---", yaml.safe_dump(front, sort_keys=False).rstrip(), "---", "",
             f"# {name} {version}", "",
             f"A LoRA adapter of `{manifest['base_model']}` released by adapterci {manifest['adapterci_version']}.", ""]
    lines += _eval_section(manifest.get("eval") or {})
    lines += ["## Gate", "", f"Verdict: **{manifest['gate_verdict'] or 'not recorded'}**", ""]
    for rule in manifest.get("gate_rules") or []:
        lines.append(f"- `{rule['rule']}`: {rule['outcome']}")
    if manifest.get("gate_rules"):
        lines.append("")
    base = BaseRef(manifest["base_model"], None if manifest["base_model_local"] else manifest["base_model"],
                   manifest["base_revision"], manifest.get("base_model_content_hash")).pinned()
    lines += _judged_section(manifest)
    lines += ["## Provenance", "", "| | |", "|---|---|",
              f"| base model | `{base}` |",
              *_gguf_rows(manifest.get("base_model_identity") or {}),
              f"| data fingerprint | `{manifest['data_fingerprint'] or 'not recorded'}` |",
              f"| train config hash | `{manifest['config_hash'] or 'not recorded'}` |",
              f"| prompt template | `{manifest['prompt_template'] or 'not recorded'}` |",
              f"| git commit | `{manifest['git_commit'] or 'not recorded'}` |",
              f"| adapter content hash | `{manifest['content_hash']}` |", ""]
    if repo_id and not manifest["base_model_local"]:
        lines += ["## Usage", "", "```python",
                  "from peft import AutoPeftModelForCausalLM", "",
                  f"model = AutoPeftModelForCausalLM.from_pretrained({repo_id!r}, revision={version!r})",
                  "```", ""]
    elif repo_id:
        lines += ["## Usage", "", "```python",
                  "from peft import PeftModel",
                  "from transformers import AutoModelForCausalLM", "",
                  "base = AutoModelForCausalLM.from_pretrained(BASE)  # the base model whose content hash is above",
                  f"model = PeftModel.from_pretrained(base, {repo_id!r}, revision={version!r})",
                  "```", "",
                  "Serving with vLLM (`adapterci serving` prints the commit-pinned manifest of stable and canary):", "",
                  "```sh", f"hf download {repo_id} --revision {version} --local-dir adapters/{name}-{version}",
                  f"vllm serve {manifest['base_model']} --enable-lora --lora-modules {name}=adapters/{name}-{version}",
                  "```", ""]
    return "\n".join(lines)


def main_readme(name: str, repo_id: str | None) -> str:
    """README.md of `main` before the first promote: `main` serves what `stable` serves, and nothing is stable yet
    (an unpinned download gets this README, never an unpromoted adapter)."""
    pinned = (f"`PeftModel.from_pretrained(base, {repo_id!r}, revision=\"v0.1.0\")`" if repo_id
              else "a version tag (`v0.1.0`)")
    front = yaml.safe_dump({"library_name": "peft", "tags": ["adapterci", name]}, sort_keys=False).rstrip()
    why = ("No version of this adapter has been promoted to `stable` yet, so `main` holds only this README and no "
           "weights. adapterci keeps `main` equal to `stable`: once a version is promoted, loading this repo without "
           "a revision gets it.")
    where = ("Released versions are tags (`v0.1.0`, ...); the newest release is on the `canary` branch. Load one by "
             f"its tag: {pinned}.")
    return "\n".join(["---", front, "---", "", f"# {name}", "", why, "", where, ""])


def _gguf_rows(identity: dict[str, Any]) -> list[str]:
    """Provenance rows of a GGUF base: the file, its quantization and sha256, and the model it was converted from."""
    gguf = identity.get("gguf")
    if not isinstance(gguf, dict):
        return []
    rows = [f"| base GGUF | `{identity.get('gguf_file')}` ({gguf.get('quantization')}, sha256 `{gguf.get('sha256')}`) |"]
    if identity.get("hub_id"):
        rows.append(f"| GGUF converted from | `{identity['hub_id']}` |")
    return rows


def _judged_section(manifest: dict[str, Any]) -> list[str]:
    """What the gate judged against what the adapter names as its base, when they differ (a GGUF base)."""
    judged = manifest.get("base_judged")
    if not isinstance(judged, dict):
        return []
    if manifest["base_model_local"]:
        named = "no Hub model (the GGUF names none): load it on the GGUF file above, dequantized"
    else:
        pin = (f"pinned at revision `{manifest['base_revision']}`" if manifest["base_revision"] else
               "not pinned to a revision: the GGUF file does not record which commit it was converted from")
        named = (f"`{manifest['base_model']}`, the full-precision model the GGUF file was converted from ({pin}). "
                 "Its weights differ from the dequantized ones the gate judged, so answers can differ from the "
                 "evaluated ones")
    fetched = f", fetched at revision `{judged['revision']}`" if judged.get("revision") else ""
    return ["## Base model judged", "",
            f"The gate judged this adapter on `{judged.get('file')}` ({judged.get('quantization') or 'GGUF'} weights "
            f"{judged.get('weights')}; sha256 `{judged.get('sha256')}`{fetched}). `adapter_config.json` names "
            f"{named}.", ""]


def _eval_section(evals: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    if not evals:
        return ["## Eval results", "", "No eval results were recorded for this release.", ""]
    lines = ["## Eval results", "", "| suite | metric | base | champion | candidate |", "|---|---|---|---|---|"]
    for suite, roles in sorted(evals.items()):
        for metric in sorted(roles.get("candidate", {})):
            cells = [_fmt(roles.get(role, {}).get(metric)) for role in ("base", "champion", "candidate")]
            lines.append(f"| {suite} | {metric} | " + " | ".join(cells) + " |")
    return lines + [""]


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
