"""README.md metadata as the Hub reads it: the YAML front matter is validated (`/api/validate-yaml` and every
commit that adds a README) and served in `model_info` as `cardData`, `library_name` and `tags`."""

from __future__ import annotations

import re
from typing import Any

from adapterci.hub_emulator.state import HubError
from adapterci.yamlmarks import YamlSyntaxError, load_with_lines

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def front_matter(readme: str) -> dict[str, Any]:
    """The metadata block of a model card ({} when it has none); ValueError with the reason when it is invalid."""
    if not readme.startswith("---"):
        return {}
    end = readme.find("\n---", 3)
    if end < 0:
        raise ValueError("the metadata block opened by `---` is never closed")
    try:
        data, _ = load_with_lines(readme[3:end])  # within a budget: an alias bomb would stall the server
    except YamlSyntaxError as exc:
        raise ValueError(f"metadata is not valid YAML{f' (line {exc.line})' if exc.line else ''}: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError("metadata must be a YAML mapping")
    problems = []
    bases = data.get("base_model")
    for base in ([bases] if isinstance(bases, str) else bases if isinstance(bases, list) else [None]
                 if "base_model" in data else []):
        if not isinstance(base, str) or not _REPO_ID.match(base):
            problems.append(f'"base_model" must be a model id (OWNER/NAME), not {base!r}')
    if "library_name" in data and not isinstance(data["library_name"], str):
        problems.append('"library_name" must be a string')
    tags = data.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        problems.append('"tags" must be a list of strings')
    if problems:
        raise ValueError("; ".join(problems))
    return data


def validated(readme: bytes) -> dict[str, Any]:
    """front_matter() of a committed README, as the Hub's 400 when it is invalid."""
    try:
        return front_matter(readme.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise HubError(400, f"Invalid metadata in README.md: {exc}") from None


def model_info_fields(readme: bytes | None) -> dict[str, Any]:
    """`cardData`, `library_name` and `tags` of `model_info`, derived from the README like the Hub does."""
    data = front_matter(readme.decode("utf-8")) if readme else {}
    library = data.get("library_name")
    bases = data.get("base_model")
    tags = ([library] if library else []) + list(data.get("tags", []))
    tags += [f"base_model:{b}" for b in ([bases] if isinstance(bases, str) else bases or [])]
    out: dict[str, Any] = {"tags": list(dict.fromkeys(tags))}
    if data:
        out["cardData"] = data
    if library:
        out["library_name"] = library
    return out
