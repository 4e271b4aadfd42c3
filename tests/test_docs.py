"""Generated docs are current: docs/config.md (from the config schema) and docs/cli.md (from every --help)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GENERATED = ["docs/config.md", "docs/cli.md"]


@pytest.mark.parametrize("doc", GENERATED)
def test_docs_generated_pages_are_current(doc: str) -> None:
    cog = Path(sys.executable).parent / "cog"
    out = subprocess.run([str(cog), "--check", "-I", "docs/tools", doc], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, f"{doc} is stale: run `cog -r -I docs/tools {doc}`\n{out.stdout}{out.stderr}"


def test_docs_config_reference_covers_every_field() -> None:
    """Every field of every config section appears in the reference, under its dotted section."""
    from pydantic import BaseModel

    from adapterci.config import Config

    text = (REPO / "docs" / "config.md").read_text()

    def walk(model: type[BaseModel]):
        for name, field in model.model_fields.items():
            yield model, name
            for arg in (field.annotation, *getattr(field.annotation, "__args__", ())):
                for sub in (arg, *getattr(arg, "__args__", ())):
                    if isinstance(sub, type) and issubclass(sub, BaseModel):
                        yield from walk(sub)

    for model, name in walk(Config):
        assert f"| `{name}` |" in text, f"{model.__name__}.{name} is missing from docs/config.md"
