"""Where this adapterci comes from: its distribution name, its repository, and the commit it was installed from.

The name `adapterci` on PyPI belongs to an unrelated project (it sends scores to an outside API), so adapterci is
never installed from an index by that name: it is installed from its git repository, pinned by commit, under the
distribution name `adapterci-lora` (the import package and the command stay `adapterci`). pip records the commit
of such an install (PEP 610, `direct_url.json`); `adapterci init` writes it into the workflows and the README it
scaffolds."""

from __future__ import annotations

import json
import re
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

DISTRIBUTION = "adapterci-lora"  # pyproject.toml's [project] name
REPOSITORY = "adapterci/adapterci"  # on GitHub: the action and the package
UNPINNED = "FILL-IN-ADAPTERCI-COMMIT"  # no such ref exists: a pip install or a workflow using it fails
COMMIT = re.compile(r"[0-9a-f]{40}")
_GITHUB = re.compile(r"github\.com[/:](?P<repo>[\w.-]+/[\w.-]+?)(?:\.git)?/?$")


class Origin(NamedTuple):
    repository: str  # OWNER/NAME on GitHub
    commit: str


def installed_origin() -> Origin | None:
    """The GitHub repository and commit this adapterci was installed from, when pip recorded a commit (a
    non-editable install from a git URL) and the code running is that installation's. None otherwise: a source
    checkout, an editable or local-directory install. A git URL outside GitHub keeps the commit with
    REPOSITORY (a mirror holds the same commits)."""
    try:
        dist = metadata.distribution(DISTRIBUTION)
        info = json.loads(dist.read_text("direct_url.json") or "null")
    except (metadata.PackageNotFoundError, ValueError):
        return None
    vcs = info.get("vcs_info") if isinstance(info, dict) else None
    commit = vcs.get("commit_id") if isinstance(vcs, dict) else None
    if not isinstance(commit, str) or not COMMIT.fullmatch(commit):
        return None
    installed = Path(str(dist.locate_file("adapterci/__init__.py"))).resolve()
    if installed != Path(__file__).with_name("__init__.py").resolve():
        return None  # the code imported is not the one this distribution installed
    return Origin(github_repository(str(info.get("url", ""))) or REPOSITORY, commit)


def github_repository(url: str) -> str | None:
    """OWNER/NAME of a GitHub repository's clone URL (https or ssh); None for anything else."""
    found = _GITHUB.search(url)
    return found["repo"] if found else None


def requirement(repository: str, commit: str, extras: str = "") -> str:
    """The pip requirement that installs adapterci (with `extras`, e.g. `[gpu]`) from `repository` at `commit`."""
    return f"{DISTRIBUTION}{extras} @ git+https://github.com/{repository}@{commit}"
