"""The GPU runners (docs/self-hosted-runner.md): the runner scale sets' Helm values against the chart's schema, the
pools the workflows name, install before any PR checkout, the runner image's digest pins, and the hash-locked
requirements, down to running the publishing commands with nothing importable but the publish lock's packages."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from jsonschema import Draft202012Validator
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from adapterci.canary.config import LogFields
from adapterci.canary.simulate import simulate, write_logs
from conftest import REPO
from test_workflows import LABELS

ARC = REPO / "deploy" / "arc"
POOLS = ("adapterci-pr", "adapterci-release")
SCHEMA = json.loads((ARC / "values.schema.json").read_text())
WORKFLOWS = {p.name: yaml.safe_load(p.read_text()) for p in sorted((REPO / ".github" / "workflows").glob("*.yml"))}
DOCKERFILE = REPO / "deploy" / "runner" / "Dockerfile"
LOCKS = REPO / "requirements"
PYPROJECT = REPO / "pyproject.toml"
SHA256 = re.compile(r"@sha256:[0-9a-f]{64}$")


def values(pool: str) -> dict:
    return yaml.safe_load((ARC / f"{pool}.values.yaml").read_text())


def schema_errors(doc: dict) -> list[str]:
    return sorted(f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
                  for e in Draft202012Validator(SCHEMA).iter_errors(doc))


def runner(doc: dict) -> dict:
    return next(c for c in doc["template"]["spec"]["containers"] if c["name"] == "runner")


# --- the scale sets' Helm values ---------------------------------------------------------------------------------

@pytest.mark.parametrize("pool", POOLS)
def test_runners_values_match_the_chart_schema(pool: str) -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert schema_errors(values(pool)) == []


def test_runners_schema_accepts_the_charts_own_defaults() -> None:
    """charts/gha-runner-scale-set/values.yaml (0.14.2) with its comments dropped, and its ci/ci-values.yaml:
    the schema is no stricter than the chart."""
    defaults = {"githubConfigUrl": "https://github.com/actions/actions-runner-controller",
                "scaleSetLabels": [], "githubConfigSecret": {"github_token": "test"}, "namespaceOverride": "",
                "template": {"spec": {"containers": [{"name": "runner", "image": "ghcr.io/actions/actions-runner:latest",
                                                      "command": ["/home/runner/run.sh"]}]}}}
    assert schema_errors(defaults) == []


@pytest.mark.parametrize(("break_it", "complaint"), [
    (lambda v: v.update(maxRunner=1), "'maxRunner' was unexpected"),
    (lambda v: v.update(maxRunners="1"), "maxRunners: '1' is not of type 'integer'"),
    (lambda v: v.update(minRunners=-1), "minRunners: -1 is less than the minimum of 0"),
    (lambda v: v.update(runnerScaleSetName="a" * 46), "is too long"),
    (lambda v: v.update(containerMode={"type": "docker"}), "containerMode.type: 'docker' is not one of"),
    (lambda v: v.update(githubConfigSecret={"github_tokn": "x"}), "githubConfigSecret"),
    (lambda v: runner(v).update(resource=runner(v).pop("resources")), "'resource' was unexpected"),
    (lambda v: runner(v)["resources"]["limits"].update({"nvidia.com/gpu": [1]}), "is not of type 'string', 'integer', 'number'"),
    (lambda v: v["template"]["spec"].update(runtimeClass="nvidia"), "'runtimeClass' was unexpected"),
], ids=["typo", "type", "negative", "long-name", "container-mode", "secret-key", "container-key", "quantity", "pod-key"])
def test_runners_schema_rejects_a_broken_copy(break_it, complaint: str) -> None:
    broken = copy.deepcopy(values("adapterci-pr"))
    break_it(broken)
    errors = schema_errors(broken)
    assert errors and any(complaint in e for e in errors), errors


@pytest.mark.parametrize("pool", POOLS)
def test_runners_pools_are_ephemeral_gpu_pods_without_shared_state(pool: str) -> None:
    doc = values(pool)
    spec = doc["template"]["spec"]
    assert doc["runnerScaleSetName"] == pool
    assert isinstance(doc["githubConfigSecret"], str), "credentials inline: name a Secret instead"
    assert "containerMode" not in doc  # no privileged dind sidecar; the steps run in the GPU container
    assert runner(doc)["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert runner(doc)["securityContext"]["allowPrivilegeEscalation"] is False
    assert spec["automountServiceAccountToken"] is False
    assert not any(key in v for v in spec.get("volumes", []) for key in ("hostPath", "persistentVolumeClaim")), \
        "a volume that outlives the pod is state one job leaves for the next"
    assert not {"hostNetwork", "hostPID", "hostIPC"} & set(spec)
    assert doc["minRunners"] == 0 and doc["maxRunners"] >= 1


def test_runners_both_pools_run_the_same_image_pinned_by_digest() -> None:
    images = {runner(values(pool))["image"] for pool in POOLS}
    assert len(images) == 1
    assert "@sha256:" in images.pop()


# --- which jobs run where ------------------------------------------------------------------------------------------

def jobs():
    for name, doc in WORKFLOWS.items():
        for job_name, job in doc["jobs"].items():
            yield name, job_name, job, doc


def triggers(doc: dict) -> set[str]:
    on = doc[True]  # PyYAML reads the key `on` as True
    return {on} if isinstance(on, str) else set(on)


def holds_write_token(job: dict) -> bool:
    return job.get("environment") == "hub-release" or "secrets.HF_TOKEN" in yaml.safe_dump(job)


def test_runners_workflows_name_exactly_the_hosted_runner_and_the_two_pools() -> None:
    used = {job["runs-on"] for _, _, job, _ in jobs()}
    assert used == {"ubuntu-latest", *POOLS} == set(LABELS)  # and act maps every one of them (test_workflows.py)


def test_runners_gpu_jobs_name_their_pools() -> None:
    assert WORKFLOWS["adapter-pr-gpu.yml"]["jobs"]["train-eval-gate"]["runs-on"] == "adapterci-pr"
    assert WORKFLOWS["adapter-release.yml"]["jobs"]["train-eval-gate"]["runs-on"] == "adapterci-release"
    on_pools = sorted((name, job_name) for name, job_name, job, _ in jobs() if job["runs-on"] in POOLS)
    assert on_pools == [("adapter-pr-gpu.yml", "train-eval-gate"), ("adapter-release.yml", "train-eval-gate")]


def test_runners_write_token_never_on_the_pr_pool_and_release_pool_only_for_main() -> None:
    for name, job_name, job, doc in jobs():
        if holds_write_token(job):
            assert job["runs-on"] != "adapterci-pr" and job["runs-on"] == "ubuntu-latest", (name, job_name)
        if job["runs-on"] == "adapterci-release":
            assert triggers(doc) == {"push"} and doc[True]["push"]["branches"] == ["main"], name
            assert "github.ref == 'refs/heads/main'" in job["if"], (name, job_name)
        if job["runs-on"] == "adapterci-pr":
            assert job.get("environment") == "hub-read", (name, job_name)


def install_problems(job: dict) -> list[str]:
    """What is wrong with how `job` installs adapterci: a checkout of other content (a `ref:`, the PR head) before
    the install, or a job with the write token that installs without the hash-locked publish requirements."""
    problems, installed = [], False
    for step in job.get("steps", []):
        uses, given = step.get("uses", ""), step.get("with", {})
        if uses.startswith("actions/checkout@") and "ref" in given and not installed:
            problems.append(f"checkout of {given['ref']} before the install")
        if uses == "./" and given.get("install", "true") != "false":
            installed = True
            if holds_write_token(job) and given.get("lock") != "publish":
                problems.append("installs without `lock: publish` beside the write token")
            if job["runs-on"] in POOLS and given.get("lock") != "gpu":
                problems.append("a GPU job installs without `lock: gpu`")
    return problems


def test_runners_every_job_installs_from_the_lock_before_any_pr_checkout() -> None:
    assert [(name, job_name, install_problems(job)) for name, job_name, job, _ in jobs() if install_problems(job)] == []


def test_runners_the_install_order_check_catches_the_old_order() -> None:
    """The GPU PR job as it was: the PR head checked out before the install."""
    job = copy.deepcopy(WORKFLOWS["adapter-pr-gpu.yml"]["jobs"]["train-eval-gate"])
    steps = job["steps"]
    install = next(i for i, s in enumerate(steps) if s.get("uses") == "./")
    head = next(i for i, s in enumerate(steps) if "ref" in s.get("with", {}))
    steps[install], steps[head] = steps[head], steps[install]
    assert install_problems(job) == ["checkout of ${{ needs.authorize.outputs.head-sha }} before the install"]
    release = copy.deepcopy(WORKFLOWS["adapter-release.yml"]["jobs"]["release"])
    next(s for s in release["steps"] if s.get("uses") == "./")["with"].pop("lock")
    assert install_problems(release) == ["installs without `lock: publish` beside the write token"]


# --- the runner image ----------------------------------------------------------------------------------------------

def from_lines() -> list[list[str]]:
    return [line.split()[1:] for line in DOCKERFILE.read_text().splitlines() if line.startswith("FROM ")]


def test_runners_image_bases_are_pinned_by_digest() -> None:
    stages = set()
    for words in from_lines():
        image = words[0]
        assert SHA256.search(image) and ":" in image.split("@")[0] and "$" not in image, image
        assert ":latest@" not in image
        if len(words) == 3 and words[1].upper() == "AS":
            stages.add(words[2])
    images = [words[0].split("@")[0] for words in from_lines()]
    assert images == ["ghcr.io/actions/actions-runner:2.337.0", "nvidia/cuda:13.0.3-base-ubuntu24.04"]
    copied = set(re.findall(r"COPY --from=(\S+)", DOCKERFILE.read_text()))
    assert copied <= stages, copied - stages  # COPY --from an image by name would be an unpinned pull


def test_runners_image_installs_only_the_hash_locked_requirements() -> None:
    text = DOCKERFILE.read_text()
    installs = re.findall(r"pip install ([^\n\\]*)", text)
    assert installs == ["--no-cache-dir --require-hashes --no-deps -r /opt/adapterci/gpu.txt "]
    assert "COPY requirements/gpu.txt /opt/adapterci/gpu.txt" in text
    assert "\nENV ADAPTERCI_RUNNER_VENV=/opt/adapterci/venv" in text  # action.yml installs into it (test below)


def test_runners_image_cuda_matches_the_locked_torch_build() -> None:
    """The container runtime checks the node's driver against the base image's CUDA: it must be the CUDA of the
    torch wheels in the lock."""
    cuda = re.search(r"nvidia/cuda:(\d+\.\d+)\.", DOCKERFILE.read_text())[1]
    assert pins(LOCKS / "gpu.txt")["cuda-toolkit"].startswith(cuda + ".")


def install_step(tmp_path: Path, lock: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run action.yml's install script as on the runner image (ADAPTERCI_RUNNER_VENV set), with a `python` in that
    virtualenv that records its arguments instead of reaching PyPI: (the run, the pip calls it made)."""
    steps = {s.get("name"): s for s in yaml.safe_load((REPO / "action.yml").read_text())["runs"]["steps"]}
    assert "!env.ADAPTERCI_RUNNER_VENV" in steps["Set up Python"]["if"]  # the image's Python, not setup-python's
    venv, calls = tmp_path / "venv", tmp_path / "calls"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text('#!/bin/sh\necho "$*" >>"$CALLS"\n')
    (venv / "bin" / "python").chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "LOCK": lock, "ADAPTERCI_RUNNER_VENV": str(venv), "GITHUB_ACTION_PATH": str(REPO),
           "RUNNER_TEMP": str(tmp_path), "CALLS": str(calls)}
    out = subprocess.run(["bash", "-c", steps["Install adapterci"]["run"]], env=env, capture_output=True, text=True)
    return out, calls.read_text().splitlines() if calls.exists() else []


@pytest.mark.parametrize("lock", ["publish", "gpu"])
def test_runners_action_installs_the_lock_with_hashes_then_adapterci(tmp_path: Path, lock: str) -> None:
    out, calls = install_step(tmp_path, lock)
    assert out.returncode == 0, out.stderr
    assert calls == [f"-m pip install --require-hashes --no-deps -r {REPO}/requirements/{lock}.txt",
                     f"-m pip install --no-deps --no-build-isolation {REPO}"]


def test_runners_action_refuses_an_unknown_lock(tmp_path: Path) -> None:
    out, calls = install_step(tmp_path, "../../tmp/evil")
    assert out.returncode == 2 and "unknown lock '../../tmp/evil'" in out.stdout and calls == []


# --- the hash-locked requirements --------------------------------------------------------------------------------

def pins(path: Path) -> dict[str, str]:
    """name -> version of a `uv pip compile --generate-hashes` file; every entry must carry a sha256."""
    found = {}
    for entry in re.split(r"\n(?=\S)", path.read_text()):
        if entry.startswith("#") or not entry.strip():
            continue
        head = entry.split("\\")[0].strip()
        name, version = re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)", head).groups()
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", entry), f"{path.name}: {name} has no hash"
        found[canonicalize_name(name)] = version
    return found


def declared() -> dict[str, Requirement]:
    """pyproject.toml's dependencies and its `gpu` extra."""
    import tomllib

    project = tomllib.loads(PYPROJECT.read_text())["project"]
    reqs = [Requirement(r) for r in [*project["dependencies"], *project["optional-dependencies"]["gpu"]]]
    return {canonicalize_name(r.name): r for r in reqs}


def in_file(path: Path) -> list[Requirement]:
    return [Requirement(line) for line in path.read_text().splitlines()
            if line.strip() and not line.startswith(("#", "-c"))]


@pytest.mark.parametrize("lock", ["publish", "gpu"])
def test_runners_locks_pin_every_package_with_hashes_within_pyprojects_ranges(lock: str) -> None:
    locked = pins(LOCKS / f"{lock}.txt")
    assert "adapterci-lora" not in locked  # adapterci comes from the checkout, never from the lock
    for name, req in declared().items():
        if name in locked:
            assert req.specifier.contains(locked[name], prereleases=True), (name, locked[name], str(req.specifier))
    for req in in_file(LOCKS / f"{lock}.in"):
        assert canonicalize_name(req.name) in locked or req.url, req


def test_runners_publish_lock_is_pyprojects_ranges_without_the_training_stack() -> None:
    spec = {canonicalize_name(r.name): str(r.specifier) for r in in_file(LOCKS / "publish.in")}
    pyproject = declared()
    assert {n: s for n, s in spec.items() if n != "setuptools"} == {n: str(pyproject[n].specifier) for n in spec
                                                                      if n != "setuptools"}
    locked = pins(LOCKS / "publish.txt")
    assert not {"torch", "transformers", "peft", "trl", "datasets", "accelerate", "great-expectations"} & set(locked)


def test_runners_gpu_lock_holds_every_dependency_and_the_constraints_torch() -> None:
    locked = pins(LOCKS / "gpu.txt")
    assert set(declared()) <= set(locked), set(declared()) - set(locked)
    constraints = {canonicalize_name(r.name): str(r.specifier) for r in in_file(REPO / "constraints.txt")}
    assert constraints["torch"] == "==" + locked["torch"]


BLOCKER = """
import importlib.abc, importlib.metadata, re, runpy, sys
allowed = set(sys.argv[1].split(","))
canon = lambda name: re.sub(r"[-_.]+", "-", name).lower()
blocked = {top for top, dists in importlib.metadata.packages_distributions().items()
           if not any(canon(d) in allowed for d in dists)}

class NotInTheLock(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r} (not in requirements/publish.txt)", name=name)
        return None

sys.meta_path.insert(0, NotInTheLock())
if sys.argv[2] == "--import":
    for module in sys.argv[3:]:
        __import__(module)
else:
    sys.argv = ["adapterci", *sys.argv[2:]]
    runpy.run_module("adapterci", run_name="__main__")
"""


def only_the_publish_lock(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`adapterci ARGS` (or `--import MODULES`) in a Python where only the publish lock's packages (and adapterci)
    can be imported: what the `hub-release` jobs have."""
    allowed = ",".join([*pins(LOCKS / "publish.txt"), "adapterci-lora"])
    return subprocess.run([sys.executable, "-c", BLOCKER, allowed, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_runners_the_blocker_refuses_what_the_lock_lacks(tmp_path: Path) -> None:
    out = only_the_publish_lock("--import", "yaml", "torch", cwd=tmp_path)
    assert out.returncode == 1 and "No module named 'torch' (not in requirements/publish.txt)" in out.stderr


def test_runners_publish_commands_need_only_the_publish_lock(example_project: Path, hub_emulator, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """release, promote, canary (JSONL and Parquet logs) and rollback against the Hub emulator, and every module
    of the release, gate, canary and registry packages, with nothing importable beyond requirements/publish.txt."""
    modules = [p.relative_to(REPO).with_suffix("").as_posix().replace("/", ".").removesuffix(".__init__")
               for pkg in ("release", "gate", "canary", "registry") for p in (REPO / "adapterci" / pkg).glob("*.py")]
    out = only_the_publish_lock("--import", *modules, "adapterci.provenance", "adapterci.cli", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    monkeypatch.setenv("ADAPTERCI_REGISTRY", "hf://tester/sentiment")
    config = ["--config", str(example_project / "adapterci.yaml")]
    for tag in ("a", "b"):
        adapter = tmp_path / f"adapter-{tag}"
        adapter.mkdir()
        (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "tag": tag}))
        (adapter / "adapter_model.safetensors").write_bytes(tag.encode() * 64)
    requests = simulate(np.random.default_rng(0), 2, 500, 0.2, "equal")
    logs = [str(write_logs(requests, example_project / "logs" / f"requests.{suffix}", {"canary": "v0.1.1", "stable": "v0.1.0"},
                           LogFields())) for suffix in ("jsonl", "parquet")]
    steps = [(["release", *config, "--unverified", "--adapter", str(tmp_path / "adapter-a")], {0}),
             (["promote", "v0.1.0", *config], {0}),
             (["release", *config, "--unverified", "--adapter", str(tmp_path / "adapter-b")], {0}),
             (["canary", *config, "--json", "--no-summary", "--logs", logs[0], "--logs", logs[1]], {0, 1, 3}),
             (["promote", "v0.1.1", *config], {0}),
             (["rollback", *config], {0})]
    outputs = {}
    for args, codes in steps:
        out = only_the_publish_lock(*args, cwd=example_project)
        assert out.returncode in codes and "not in requirements/publish.txt" not in out.stderr, (args, out.stderr)
        outputs[args[0]] = out.stdout
    assert "2000 row(s) outside the canary's window" in outputs["canary"]  # both files read (dated before v0.1.1)
    assert "`stable` -> v0.1.0 (was v0.1.1)" in outputs["rollback"]
