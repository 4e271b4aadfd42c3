"""pyproject.toml declares what the code imports: every third-party module that adapterci/ (or a test) imports
maps to a declared distribution, and every declared requirement has a lower and an upper bound."""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
import tomllib
from functools import cache
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from conftest import REPO

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
# Modules imported only where an extra is installed: module -> the extra that declares it.
EXTRA_ONLY = {"unsloth": "gpu"}


def requirements(group: str) -> dict[str, Requirement]:
    """The requirements of [project.dependencies] ("") or of an extra, by canonical distribution name."""
    reqs = PROJECT["dependencies"] if group == "" else PROJECT["optional-dependencies"][group]
    parsed = [Requirement(r) for r in reqs]
    return {canonicalize_name(r.name): r for r in parsed}


def imported_modules(root: Path, local: set[str]) -> dict[str, str]:
    """Top-level third-party modules imported by the .py files under `root` -> one file that imports it."""
    found: dict[str, str] = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for top in {name.split(".")[0] for name in names} - (sys.stdlib_module_names | local):
                found.setdefault(top, str(path.relative_to(REPO)))
    return found


@cache
def distributions_of(module: str) -> list[str]:
    """The installed distributions that provide `module`; the module's own name when none is installed."""
    return [canonicalize_name(d) for d in md.packages_distributions().get(module, [module])]


def test_dependencies_the_scan_sees_the_package() -> None:
    modules = imported_modules(REPO / "adapterci", {"adapterci"})
    assert {"torch", "transformers", "click", "scipy", "unsloth"} <= set(modules)  # the scan is not vacuous


def test_dependencies_cover_every_third_party_import_of_adapterci() -> None:
    declared = requirements("")
    missing = {}
    for module, where in imported_modules(REPO / "adapterci", {"adapterci"}).items():
        group = EXTRA_ONLY.get(module, "")
        reqs = declared if group == "" else requirements(group)
        if not any(dist in reqs for dist in distributions_of(module)):
            missing[module] = (where, distributions_of(module), group or "dependencies")
    assert missing == {}


def test_dependencies_cover_every_third_party_import_of_the_tests() -> None:
    tests = REPO / "tests"
    local = {"adapterci"} | {p.stem for p in tests.rglob("*.py")}
    declared = requirements("") | requirements("dev")
    missing = {m: (where, distributions_of(m)) for m, where in imported_modules(tests, local).items()
               if not any(dist in declared for dist in distributions_of(m))}
    assert missing == {}


@pytest.mark.parametrize("group", ["", *PROJECT["optional-dependencies"]], ids=lambda g: g or "dependencies")
def test_dependencies_have_lower_and_upper_bounds(group: str) -> None:
    unbounded = [str(r) for r in requirements(group).values()
                 if not ({s.operator for s in r.specifier} >= {">="} and {s.operator for s in r.specifier} & {"<", "<="})]
    assert unbounded == []


@pytest.mark.parametrize("group", ["", *PROJECT["optional-dependencies"]], ids=lambda g: g or "dependencies")
def test_dependencies_admit_the_installed_versions(group: str) -> None:
    """The environment the tests run in (installed from pyproject with constraints.txt) lies inside the ranges."""
    outside = {}
    for name, req in requirements(group).items():
        try:
            installed = md.version(name)
        except md.PackageNotFoundError:
            continue  # an extra not installed here (gpu)
        if not req.specifier.contains(Version(installed), prereleases=True):
            outside[name] = (installed, str(req.specifier))
    assert outside == {}


def test_dependencies_constraints_pins_lie_inside_the_ranges() -> None:
    declared = requirements("")
    for extra in PROJECT["optional-dependencies"]:
        declared |= requirements(extra)
    lines = [line.split("#")[0].strip() for line in (REPO / "constraints.txt").read_text().splitlines()]
    pins = [Requirement(line) for line in lines if line]
    assert pins and all(str(s.operator) == "==" for pin in pins for s in pin.specifier)
    outside = [str(pin) for pin in pins if canonicalize_name(pin.name) in declared
               and not declared[canonicalize_name(pin.name)].specifier.contains(next(iter(pin.specifier)).version)]
    assert outside == []
