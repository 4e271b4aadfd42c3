"""`adapterci init`: a scaffold that passes `adapterci check` offline, refuses to clobber, lints clean."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapterci.cli import cli

PINNED_ACTION = "acme/adapterci@0123456789abcdef0123456789abcdef01234567 # v0.1.0"


@pytest.fixture(scope="module")
def scaffolded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    target = tmp_path_factory.mktemp("init") / "Movie Reviews"
    result = CliRunner().invoke(cli, ["init", str(target), "--action", PINNED_ACTION], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    subprocess.run(["git", "init", "-q", "-b", "main", str(target)], check=True)
    return target, result.output


@pytest.mark.slow
def test_init_scaffold_passes_check_offline(scaffolded) -> None:
    target, output = scaffolded
    assert "built   models/tiny-llama" in output
    result = CliRunner().invoke(cli, ["check", "--config", str(target / "adapterci.yaml"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["passed"] is True


@pytest.mark.slow
def test_init_writes_config_workflows_and_readme(scaffolded) -> None:
    target, _ = scaffolded
    config = (target / "adapterci.yaml").read_text()
    assert "name: movie-reviews\n" in config and "base_model: models/tiny-llama\n" in config
    workflows = sorted(p.name for p in (target / ".github" / "workflows").iterdir())
    assert workflows == ["adapter-canary.yml", "adapter-pr-gpu.yml", "adapter-pr.yml", "adapter-registry.yml",
                         "adapter-release.yml"]
    assert (target / ".github" / "scripts" / "sticky-comment.js").is_file()
    assert f"uses: {PINNED_ACTION}\n" in (target / ".github" / "workflows" / "adapter-pr.yml").read_text()
    readme = (target / "README.md").read_text()
    assert readme.startswith("# Movie Reviews\n") and "## Adapter CI" in readme and "`movie-reviews`" in readme
    assert (target / ".gitignore").read_text().strip().endswith(".adapterci/")
    assert oct((target / "adapterci.yaml").stat().st_mode & 0o777) == "0o644"


@pytest.mark.slow
def test_init_workflows_pass_zizmor(scaffolded) -> None:
    target, _ = scaffolded
    out = subprocess.run([str(Path(sys.executable).parent / "zizmor"), "--offline", "--format", "json",
                          str(target / ".github" / "workflows")], capture_output=True, text=True, cwd=target)
    assert out.returncode != 14, out.stdout  # 14: a high-severity finding
    assert [f["ident"] for f in json.loads(out.stdout)
            if f["determinations"]["severity"] == "High"] == []


@pytest.mark.slow
def test_init_refuses_to_overwrite_and_keeps_the_readme_section_single(scaffolded) -> None:
    target, _ = scaffolded
    before = (target / "adapterci.yaml").read_text()
    (target / "adapterci.yaml").write_text(before + "# my edit\n")
    result = CliRunner().invoke(cli, ["init", str(target), "--base-model", "acme/base"])
    assert result.exit_code == 2
    assert "already has" in result.output and "--force" in result.output
    assert (target / "adapterci.yaml").read_text().endswith("# my edit\n")

    forced = CliRunner().invoke(cli, ["init", str(target), "--base-model", "acme/base", "--force"])
    assert forced.exit_code == 0, forced.output
    assert "base_model: acme/base\n" in (target / "adapterci.yaml").read_text()
    assert (target / "README.md").read_text().count("## Adapter CI") == 1


def test_init_rejects_an_invalid_name(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["init", str(tmp_path / "x"), "--name", "Bad Name!", "--base-model", "a/b"])
    assert result.exit_code == 2
    assert "invalid adapter name 'Bad Name!'" in result.output
    assert not (tmp_path / "x").exists()
