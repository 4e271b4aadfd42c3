"""Hostile registry state (issue 25, round two): a local `file://` registry edited by hand or by an attacker.
A parent cycle never loops, a commit id is never a path, bad ids and records are refused naming the file, odd
manifest metrics show as missing, and a registry path that is a file says so. Nothing is written or moved."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapterci.cli import cli
from adapterci.config import load_config
from adapterci.release import promote, release
from test_canary import fake_adapter

pytestmark = [pytest.mark.xdist_group("registry"), pytest.mark.timeout(60)]  # a loop fails, never hangs


@pytest.fixture
def project(example_project: Path, tmp_path: Path) -> Path:
    """v0.1.0 released and promoted (stable), v0.1.1 released (canary), in the local registry."""
    cfg = load_config(example_project / "adapterci.yaml")
    release(cfg, fake_adapter(tmp_path, "a"))
    promote(cfg)
    release(cfg, fake_adapter(tmp_path, "b"))
    return example_project


def registry(project: Path) -> Path:
    return project / ".adapterci" / "registry"


def refs_json(project: Path) -> dict:
    return json.loads((registry(project) / "refs.json").read_text())


def commit_json(project: Path, tag: str) -> Path:
    return registry(project) / "commits" / refs_json(project)["tags"][tag] / "commit.json"


def edit_json(path: Path, **changes) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def invoke(project: Path, *args: str, tmp_path: Path | None = None):
    config = ["--config", str(project / "adapterci.yaml")]
    return CliRunner().invoke(cli, [*args, *config])


def snapshot(project: Path) -> dict[str, bytes]:
    """Every file of the registry (and of the folder around it): what must not change."""
    root = registry(project).parent
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def refused(result, exit_code: int, *needles: str) -> None:
    assert result.exit_code == exit_code, result.output
    assert result.output.startswith("Error: ") or result.stderr.startswith("Error: "), result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.output, result.output


@pytest.mark.parametrize("cycle", ["self", "two"])
def test_hostile_registry_parent_cycle_is_an_error_not_a_hang(project: Path, tmp_path: Path, cycle: str) -> None:
    head = commit_json(project, "v0.1.1")
    head_id = json.loads(head.read_text())["id"]
    if cycle == "self":
        edit_json(head, parent=head_id)
        culprit = head
    else:  # v0.1.1 -> v0.1.0 -> v0.1.1
        edit_json(commit_json(project, "v0.1.0"), parent=head_id)
        culprit = commit_json(project, "v0.1.0")
    before = snapshot(project)
    refused(invoke(project, "versions"), 1, f"{culprit}: parent {head_id[:12]}", "(a cycle)")
    refused(invoke(project, "release", "--unverified", "--adapter", str(fake_adapter(tmp_path, "c"))), 1,
            "(a cycle)")
    assert snapshot(project) == before


@pytest.mark.parametrize("where", ["tag", "stable", "main"])
def test_hostile_registry_commit_id_that_is_a_path_is_refused(project: Path, tmp_path: Path, where: str) -> None:
    outside = tmp_path / "elsewhere" / "commits" / ("f" * 40)
    outside.mkdir(parents=True)
    (outside / "commit.json").write_text(json.dumps({"id": "x", "parent": None, "title": "", "message": "",
                                                     "date": ""}))
    hostile = "../../../" + str(outside.relative_to(tmp_path.parent))
    refs = refs_json(project)
    if where == "tag":
        refs["tags"]["v0.2.0"] = hostile
    elif where == "stable":
        refs["moving"]["stable"]["target"] = hostile
    else:
        refs["branches"]["main"] = hostile
    (registry(project) / "refs.json").write_text(json.dumps(refs))
    before = snapshot(project)
    key = {"tag": "tags.v0.2.0", "stable": "moving.stable.target", "main": "branches.main"}[where]
    for args in (["promote", "v0.2.0"], ["promote"], ["serving"], ["serving", "--ref", "v0.2.0"], ["versions"],
                 ["rollback"]):
        result = invoke(project, *args)
        refused(result, 1, f"{registry(project) / 'refs.json'} is not a valid refs file", f"`{key}`",
                "is not a commit id (40 hex digits)")
        assert str(outside) not in result.output.replace(hostile, "")  # never served or printed as a path
    assert snapshot(project) == before


@pytest.mark.parametrize("refs, key", [
    ({"tags": {"v0.1.0": 123}}, "`tags.v0.1.0`: '123' is not a commit id"),
    ({"tags": {"v0.1.0": None}}, "`tags.v0.1.0`: 'None' is not a commit id"),
    ({"tags": ["v0.1.0"]}, "`tags` must be an object"),
    ({"branches": {"main": {"sha": "a" * 40}}}, "`branches.main`"),
    ({"moving": {"stable": {"head": "a" * 40, "target": "b" * 40, "history": [7]}}}, "`moving.stable.history`"),
    ({"moving": {"stable": "v0.1.0"}}, "`moving.stable` must be an object"),
    ([], "expected a JSON object"),
])
def test_hostile_registry_refs_with_non_string_ids_are_refused(project: Path, refs, key: str) -> None:
    path = registry(project) / "refs.json"
    path.write_text(json.dumps({**refs_json(project), **refs} if isinstance(refs, dict) else refs))
    before = snapshot(project)
    for args in (["versions"], ["promote"], ["serving"]):
        refused(invoke(project, *args), 1, f"{path} is not a valid refs file", key)
    assert snapshot(project) == before


@pytest.mark.parametrize("text, why", [
    ("{not json", "Expecting property name"),
    ("[]", "expected a JSON object"),
    ('{"id": "0000000000000000000000000000000000000000", "parent": null, "title": "", "message": "", "date": ""}',
     "not the commit's own id"),
    (None, "`parent`: '../x' is not a commit id"),
    (None, "`date` must be a string"),
])
def test_hostile_registry_corrupt_commit_json_names_the_file(project: Path, text: str | None, why: str) -> None:
    path = commit_json(project, "v0.1.1")
    if text is not None:
        path.write_text(text)
    elif "parent" in why:
        edit_json(path, parent="../x")
    else:
        edit_json(path, date=20260101)
    before = snapshot(project)
    refused(invoke(project, "versions"), 1, f"{path} is not a valid commit record", why)
    assert snapshot(project) == before


def test_hostile_registry_odd_manifest_metrics_show_as_missing(project: Path) -> None:
    manifest = registry(project) / "commits" / refs_json(project)["tags"]["v0.1.1"] / "files" / "adapterci.json"
    edit_json(manifest, metrics={"sentiment": {"accuracy": "high", "macro_f1": 0.5, "nan": float("nan"),
                                               "flag": True, "list": [1]}, "safety": "fine", "empty": {}})
    result = invoke(project, "versions")
    assert result.exit_code == 0, result.output
    line = next(text for text in result.output.splitlines() if text.startswith("v0.1.1"))
    assert "sentiment.accuracy=-" in line and "sentiment.macro_f1=0.500" in line and "sentiment.flag=-" in line
    assert "safety" not in line
    out = json.loads(invoke(project, "versions", "--json").stdout)
    metrics = next(v for v in out["versions"] if v["version"] == "v0.1.1")["metrics"]
    assert metrics == {"sentiment": {"accuracy": None, "macro_f1": 0.5, "nan": None, "flag": None, "list": None},
                       "empty": {}}


def test_hostile_registry_manifest_metrics_not_an_object(project: Path) -> None:
    manifest = registry(project) / "commits" / refs_json(project)["tags"]["v0.1.0"] / "files" / "adapterci.json"
    edit_json(manifest, metrics=[1, 2])
    result = invoke(project, "versions")
    assert result.exit_code == 0, result.output
    assert "v0.1.0" in result.output


def test_hostile_registry_path_that_is_a_file_says_so(example_project: Path, tmp_path: Path) -> None:
    config = example_project / "adapterci.yaml"
    afile = tmp_path / "registry-file"
    afile.write_text("not a registry\n")
    config.write_text(config.read_text().replace("registry: file://.adapterci/registry", f"registry: file://{afile}"))
    for args in (["versions"], ["versions", "--json"], ["promote"], ["serving"],
                 ["release", "--unverified", "--adapter", str(fake_adapter(tmp_path, "a"))]):
        result = invoke(example_project, *args)
        assert result.exit_code == 2, result.output
        assert f"{afile} is a file, not a directory" in result.output and "No versions" not in result.output
        assert "Traceback" not in result.output
    assert afile.read_text() == "not a registry\n"
    assert not Path(f"{afile}.lock").exists() or Path(f"{afile}.lock").stat().st_size == 0
