"""conftest.py's isolation: a developer's ADAPTERCI_* settings never reach a test or a fixture, at any scope."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

DEVELOPER = {"ADAPTERCI_REGISTRY": "hf://developer/private", "ADAPTERCI_CACHE_DIR": "/developer/cache",
             "ADAPTERCI_TRUST_DOMAIN": "default-branch", "ADAPTERCI_HOME": "/developer/home",
             "ADAPTERCI_RAISE_ERRORS": "1", "ADAPTERCI_SOMETHING_NEW": "x"}
INNER = f"{Path(__file__).name}::test_no_adapterci_setting_from_outside_is_visible"


def _adapterci_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith("ADAPTERCI_")}


@pytest.fixture(scope="module")
def env_at_module_setup() -> dict[str, str]:
    return _adapterci_env()


def test_no_adapterci_setting_from_outside_is_visible(env_at_module_setup, tmp_path_factory) -> None:
    """Sets nothing itself: run below with DEVELOPER exported, it sees none of it."""
    assert env_at_module_setup == {}  # module-scoped fixtures run before the function-scoped autouse fixture
    env = _adapterci_env()
    assert set(env) == {"ADAPTERCI_HOME"}, env
    assert Path(env["ADAPTERCI_HOME"]).is_relative_to(tmp_path_factory.getbasetemp())


@pytest.mark.parametrize("conftest", [True, False], ids=["with-conftest", "without-conftest"])
def test_developer_adapterci_settings_do_not_leak_into_tests(conftest: bool, tmp_path: Path) -> None:
    """The test above in a pytest run under the developer's settings: it passes, and fails without conftest.py
    (so it does look at them)."""
    env = {**os.environ, **DEVELOPER}
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
            f"--basetemp={tmp_path / 'inner'}", INNER]
    out = subprocess.run([*args, *([] if conftest else ["--noconftest"])], capture_output=True, text=True,
                         cwd=Path(__file__).parent, env=env, timeout=120)
    if conftest:
        assert out.returncode == 0, out.stdout + out.stderr
    else:
        assert out.returncode == 1 and "ADAPTERCI_REGISTRY" in out.stdout, out.stdout + out.stderr
