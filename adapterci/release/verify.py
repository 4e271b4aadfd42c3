"""What `release` checks before and after it publishes.

Before: a trusted run's PASS verdict vouches for exactly these adapter files (their training record included),
judged under this config's policy (a local base pinned by content), the base model the adapter names is the one
it judged with, and the verdict recomputed from the eval results is still PASS (`verify_release`). In CI only a
`default-branch` verdict releases: a `local` one was written where nobody vouches for the machine. After: every
file of the uploaded commit hashes as the local file does (`verify_upload`); only then is a version tagged."""

from __future__ import annotations

from pathlib import Path

from adapterci import settings
from adapterci.adapterdir import TRAIN_JSON, digests, training_record
from adapterci.errors import RegistryError, ReleaseRefused
from adapterci.fsio import read_tolerant
from adapterci.gate.policy import decide
from adapterci.provenance import policy_hash, results_digest
from adapterci.registry import Registry
from adapterci.registry.base import MANIFEST, file_digest
from adapterci.runs import RunDir
from adapterci.trust import trusted


CI_DOMAINS = ("default-branch",)
"""The trust domains whose verdicts release in CI (`GITHUB_ACTIONS=true` or `CI`)."""
BASE_PINS = ("base_model", "content_hash", "hub_id", "revision", "gguf_file")
"""What pins a base model in its identity (modelio.base_model_identity); `resolved_revision` too when both know it."""


class VerificationFailed(RegistryError):
    """The files of an uploaded commit do not match the adapter."""


def verify_release(cfg, rd: RunDir | None, adapter_dir: Path) -> str:
    """Refuse (ReleaseRefused) unless `rd` holds a PASS verdict of a trusted run for exactly these adapter files,
    judged under this config's policy; the verdict is recomputed from the eval results. Returns the verdict."""
    if rd is None:
        raise ReleaseRefused(f"no gate verdict for {adapter_dir}: release the adapter of a run directory "
                             "(--run-dir) whose gate passed, or pass --unverified to release it without one")
    gate = read_tolerant(rd.gate_json)
    if not gate:
        raise ReleaseRefused(f"no gate verdict at {rd.gate_json}: run `adapterci gate` (or `adapterci run`) first")
    problems = _problems(cfg, gate, rd, adapter_dir)
    if problems:
        raise ReleaseRefused(f"the gate verdict in {rd.gate_json} does not vouch for {adapter_dir}: "
                             + "; ".join(problems))
    recomputed = decide(cfg, rd.eval_json, write=False).verdict
    if recomputed != "PASS":
        raise ReleaseRefused(f"the gate verdict recomputed from {rd.eval_json} with this config's rules is "
                             f"{recomputed}, not PASS")
    return recomputed


def _problems(cfg, gate: dict, rd: RunDir, adapter_dir: Path) -> list[str]:
    if gate.get("verdict") != "PASS":
        return [f"its verdict is {gate.get('verdict')}, not PASS"]
    prov = gate.get("provenance")
    if not isinstance(prov, dict):
        return ["it records no provenance (which adapter, eval results and policy it judged)"]
    problems = []
    domain = prov.get("trust_domain")
    if not trusted(domain):
        problems.append(f"it was written by a `{domain}` run, not a trusted one")
    elif settings.current().in_ci and domain not in CI_DOMAINS:
        problems.append(f"it was written by a `{domain}` run, and in CI only a `default-branch` run's verdict "
                        "releases (set ADAPTERCI_TRUST_DOMAIN=default-branch in the release workflow's GPU job)")
    if prov.get("adapter") != digests(adapter_dir):
        problems.append(f"the adapter files differ from the ones it judged ({TRAIN_JSON} included)")
    if not rd.eval_json.is_file() or prov.get("eval_results") != results_digest(rd.eval_json):
        problems.append("the eval results differ from the ones it judged")
    judged = prov.get("base") if isinstance(prov.get("base"), dict) else {}
    # a local base this machine has no copy of (a gitignored GGUF on a hosted runner) is taken as judged
    if prov.get("policy") != policy_hash(cfg, judged.get("content_hash")):
        problems.append("it was judged under another policy (gate rules, eval sets, or the base model or its content)")
    return problems + _base_problems(judged, adapter_dir)


def _base_problems(judged: dict, adapter_dir: Path) -> list[str]:
    """The base model the adapter's training record names (what a release publishes as its base) must be the one
    the verdict judged with, which the policy digest ties to the config (name, upstream, revision, content)."""
    if not judged:
        return ["it records no base model identity (written by an older adapterci: run the gate again)"]
    named = (training_record(adapter_dir) or {}).get("base_model")
    if isinstance(named, dict) and not _same_base(named, judged):
        return [f"its {TRAIN_JSON} names the base {_pinned(named)}, not the {_pinned(judged)} it was judged with"]
    return []


def _same_base(a: dict, b: dict) -> bool:
    """Whether two base identities pin the same model (a resolved Hub revision counts where both know it)."""
    resolved = a.get("resolved_revision"), b.get("resolved_revision")
    return all(a.get(k) == b.get(k) for k in BASE_PINS) and (None in resolved or resolved[0] == resolved[1])


def _pinned(identity: dict) -> str:
    """A base identity in words: its name, upstream Hub id and revision, content hash."""
    parts = [str(identity.get("base_model"))]
    parts += [f"{k} {str(identity[k])[:12] if k == 'content_hash' else identity[k]}"
              for k in ("hub_id", "revision", "content_hash") if identity.get(k)]
    return ", ".join(parts)


def verify_upload(reg: Registry, sha: str, files: dict[str, Path]) -> None:
    """Read the commit's file list back and compare every adapter file's hash with the local one."""
    remote = reg.tree(sha)
    problems = []
    for rel, path in files.items():
        digest = remote.get(rel)
        if digest is None:
            problems.append(f"{rel} is missing")
        elif digest != file_digest(path, digest.split(":")[0]):
            problems.append(f"{rel} differs")
    problems += [f"{name} is missing" for name in (MANIFEST, "README.md") if name not in remote]
    if problems:
        raise VerificationFailed(f"verification of the uploaded commit {sha[:12]} in {reg.url} failed: "
                                 f"{'; '.join(problems)}. No version was tagged; run `adapterci release` again")
