"""Take a pull request's data into the trusted checkout of the default branch, and nothing else.

The allow-list (relative to the directory of adapterci.yaml):
  data/**          taken from the PR head: the training and validation data
  evalsets/**      may change, but the gate keeps the default branch's eval sets (shown as a policy change)
  adapterci.yaml   only the keys in PR_CONFIG_KEYS are taken (`data` must stay in data/); every other key is
                   policy (gate rules, eval suites, checks, base model, prompt, registry, name): the default
                   branch's value is used and a PR's change is shown in the report's "Policy change" section
A PR that changes any other path (code, workflows, the action, scripts, install files) or adds a symlink or a
submodule is refused: none of it reaches the GPU runner. Files are read from git objects, never from the PR's
work tree, so no file of the PR is executed, followed or trusted. A path git itself would not check out (a
component `..`, `.`, empty or naming `.git`, as hand-made tree objects can hold: `data/../.github/...`) is
refused before anything is written (exit 2), and every file is written only where its resolved path stays in
`data/`."""

from __future__ import annotations

import os
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from adapterci.config import find_repo_root, load_config
from adapterci.errors import AdapterCIError, ConfigError
from adapterci.fsio import write_json_atomic
from adapterci.report import write_report
from adapterci.runs import run_dir_for
from adapterci.yamlmarks import MAX_BYTES, YamlSyntaxError, load_with_lines

DATA_DIR = "data/"
POLICY_DIRS = ("evalsets/",)
PR_CONFIG_KEYS = ("data", "train")
REGULAR_MODES = ("100644", "100755")
MAX_LISTED = 20


class Refused(AdapterCIError):
    """The pull request changes more than data. Exit 1."""

    exit_code = 1


class UnsafePath(AdapterCIError):
    """The pull request head holds a path no checkout would write (`..`, `.git`, ...): hand-made, hostile. Exit 2."""

    exit_code = 2


@dataclass
class Materialized:
    """What was taken from the PR head (`taken`), what was shown but not used (`policy`), what refused it."""

    head_sha: str
    base_sha: str
    changed: list[str] = field(default_factory=list)
    taken: list[str] = field(default_factory=list)
    refused: list[dict[str, str]] = field(default_factory=list)  # {"path", "reason"}
    policy: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def refusal(self) -> str:
        shown = "; ".join(f"{r['path']} ({r['reason']})" for r in self.refused[:MAX_LISTED])
        shown += " ..." if len(self.refused) > MAX_LISTED else ""
        return (f"pull request head {self.head_sha[:12]} changes more than data, so it does not run on the GPU "
                f"runner: {shown}. A PR may change only data/**, evalsets/** and the `{'`, `'.join(PR_CONFIG_KEYS)}` "
                "keys of adapterci.yaml (see docs/self-hosted-runner.md)")


def materialize(config: Path, head_repo: Path, head_sha: str, base_sha: str) -> Materialized:
    """Diff the PR (merge base of `base_sha` and `head_sha`, in the git repository `head_repo`) against the
    allow-list; unless refused, write its data files and allowed config keys into the checkout of `config`."""
    config = Path(config).resolve()
    root = find_repo_root(config.parent)
    prefix = "" if config.parent == root else config.parent.relative_to(root).as_posix() + "/"
    git = _Git(Path(head_repo), head_sha)
    result = Materialized(head_sha, base_sha)
    merge_base = git.run("merge-base", base_sha, head_sha).strip()
    entries = git.run("diff", "--name-status", "--no-renames", "-z", merge_base, head_sha).split("\0")
    changes = list(zip(entries[0::2], entries[1::2]))
    if unsafe := [f"{path!r} ({why})" for _, path in changes if (why := unsafe_path(path))]:
        raise UnsafePath(f"pull request head {head_sha[:12]} holds {len(unsafe)} path(s) that git would not check out "
                         f"and that could write outside data/: {'; '.join(unsafe[:MAX_LISTED])}"
                         f"{' ...' if len(unsafe) > MAX_LISTED else ''}. Nothing was written")
    data, config_changed = [], False
    for status, path in changes:
        result.changed.append(path)
        rel = path[len(prefix):] if path.startswith(prefix) else None
        if rel is None or not (rel.startswith(DATA_DIR) or rel.startswith(POLICY_DIRS) or rel == config.name):
            result.refused.append({"path": path, "reason": "not data"})
        elif status != "D" and (mode := git.mode(path)) not in REGULAR_MODES:
            result.refused.append({"path": path, "reason": f"not a regular file (git mode {mode})"})
        elif rel == config.name:
            config_changed = True
        elif rel.startswith(DATA_DIR):
            data.append((status, path))
    base_doc = _yaml(_text(config.read_bytes(), str(config)), str(config))
    where = f"{prefix}{config.name} at {head_sha[:12]}"
    head_doc = base_doc
    if config_changed:
        if (size := git.size(f"{prefix}{config.name}")) > MAX_BYTES:  # refused before git hands it over
            raise ConfigError(f"the file is {size:,} bytes, more than a config may have ({MAX_BYTES:,})", where)
        head_doc = _yaml(_text(git.show(f"{prefix}{config.name}"), where), where)
    merged = _merge(base_doc, head_doc)
    result.refused += [{"path": f"{prefix}{config.name}", "reason": f"`data` reads {p!r}, outside {DATA_DIR}"}
                       for p in _data_patterns(merged.get("data")) if not _inside_data(p)]
    if result.refused:
        return result
    data_dir = config.parent / DATA_DIR
    writes = [(status, path, _destination(data_dir, path[len(prefix) + len(DATA_DIR):])) for status, path in data]
    for status, path, dest in writes:
        if status == "D":
            dest.unlink(missing_ok=True)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(git.show(path))
        result.taken.append(path)
    if config_changed:
        config.write_text(yaml.safe_dump(merged, sort_keys=False, allow_unicode=True), encoding="utf-8")
        result.taken.append(f"{prefix}{config.name} ({', '.join(k for k in PR_CONFIG_KEYS if k in head_doc)})")
    result.policy = policy_change(base_doc, head_doc, config.parent, git, prefix, set(result.changed))
    return result


def materialize_run(config: Path, head_repo: Path, head_sha: str, base_sha: str,
                    run_dir: str | Path | None = None) -> Materialized:
    """`materialize`, recorded in the run directory's pr.json; a refused PR also gets its report there."""
    result = materialize(config, head_repo, head_sha, base_sha)
    cfg = load_config(config)
    rd = run_dir_for(cfg, run_dir)
    with rd.locked():
        write_json_atomic(rd.pr_json, result.as_dict())
        if result.refused:
            write_report(cfg, rd.path)
    return result


def policy_change(base: dict, head: dict, base_dir: Path, git: "_Git", prefix: str, changed_paths: set[str]) -> dict[str, Any]:
    """The policy the PR would have set, next to the one that judges it: changed keys (old, new), gate rules,
    base model and the size of every eval suite in both."""
    keys = [{"key": k, "old": base.get(k), "new": head.get(k)} for k in sorted(set(base) | set(head))
            if k not in PR_CONFIG_KEYS and base.get(k) != head.get(k)]
    suites = []
    for name, old_path, new_path in _suite_paths(base, head):
        old_n = _count(base_dir / old_path) if old_path else None
        new_n = _count_bytes(git.show_if_file(f"{prefix}{new_path}")) if new_path else None
        suites.append({"name": name, "old_path": old_path, "new_path": new_path, "old_items": old_n, "new_items": new_n})
    changed = bool(keys) or any(s["old_items"] != s["new_items"] or s["old_path"] != s["new_path"] for s in suites)
    changed = changed or any(f"{prefix}{s['new_path']}" in changed_paths for s in suites if s["new_path"])
    return {"changed": changed, "keys": keys, "suites": suites,
            "rules": {"old": (base.get("gate") or {}).get("rules") or [], "new": (head.get("gate") or {}).get("rules") or []},
            "base_model": {"old": base.get("base_model"), "new": head.get("base_model")}}


_IGNORED_BY_HFS = frozenset(map(chr, [*range(0x200C, 0x2010), *range(0x202A, 0x202F), *range(0x206A, 0x2070), 0xFEFF]))


def unsafe_path(path: str) -> str | None:
    """Why git would refuse to check out `path` (a `/`-separated path from a tree), or None: a component that
    is empty, `.` or `..`, or that names `.git` as a case-insensitive, NTFS (`git~1`, trailing dots or spaces,
    `.git::$INDEX_ALLOCATION`) or HFS+ (ignorable code points) file system may read it."""
    for part in path.split("/"):
        if part in ("", ".", ".."):
            return f"has a component {part!r}"
        folded = "".join(c for c in part if c not in _IGNORED_BY_HFS).lower()
        if folded.rstrip(" .") in (".git", "git~1") or folded.startswith(".git:"):
            return f"component {part!r} names .git"
    return None


def _destination(data_dir: Path, rel: str) -> Path:
    """Where the data file `rel` (relative to `data_dir`) is written: UnsafePath unless its resolved path
    (symlinks in the trusted checkout followed) stays inside `data_dir` and it is not itself a symlink."""
    dest = data_dir / rel
    real_dir = Path(os.path.realpath(data_dir))
    if real_dir != data_dir or not Path(os.path.realpath(dest)).is_relative_to(real_dir) or dest.is_symlink():
        raise UnsafePath(f"{dest} leads outside {data_dir} or is a symlink in the trusted checkout: refusing to "
                         "write through it. Nothing was written")
    return dest


def _merge(base: dict, head: dict) -> dict:
    merged = {k: v for k, v in base.items() if k not in PR_CONFIG_KEYS}
    merged.update({k: head[k] for k in PR_CONFIG_KEYS if k in head})
    return {k: merged[k] for k in [*base, *head] if k in merged}


def _data_patterns(data: Any) -> list[str]:
    if not isinstance(data, dict):
        return []
    out = []
    for key in ("train", "validation"):
        value = data.get(key)
        out += [value] if isinstance(value, str) else [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
    return out


def _inside_data(pattern: str) -> bool:
    parts = Path(pattern).parts
    return pattern.startswith(DATA_DIR) and ".." not in parts


def _suite_paths(base: dict, head: dict) -> list[tuple[str, str | None, str | None]]:
    def paths(doc: dict) -> dict[str, str]:
        suites = (doc.get("eval") or {}).get("suites") or []
        return {str(s.get("name")): str(s.get("path")) for s in suites if isinstance(s, dict) and s.get("path")}

    old, new = paths(base), paths(head)
    return [(n, old.get(n), new.get(n)) for n in sorted(set(old) | set(new))]


def _count(path: Path) -> int | None:
    return _count_bytes(path.read_bytes()) if path.is_file() else None


def _count_bytes(data: bytes | None) -> int | None:
    return None if data is None else sum(1 for line in data.splitlines() if line.strip())


def _yaml(text: str, where: str) -> dict:
    """The config `text` (read from `where`), through the same budgeted loader as every config: an alias bomb,
    deep nesting or an explicit tag in a PR's adapterci.yaml is a ConfigError naming its line (exit 2), found
    before anything is written."""
    try:
        doc, _ = load_with_lines(text)
    except YamlSyntaxError as exc:
        line = f"line {exc.line}: " if exc.line else ""
        raise ConfigError(f"{line}YAML syntax error: {exc}", where) from None
    if not isinstance(doc, dict):
        raise ConfigError("the top level must be a mapping of keys", where)
    return doc


def _text(data: bytes, where: str) -> str:
    if len(data) > MAX_BYTES:
        raise ConfigError(f"the file is {len(data):,} bytes, more than a config may have ({MAX_BYTES:,})", where)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", where) from None


class _Git:
    """Read-only git plumbing on the repository holding the PR head (no hooks, filters or work tree used)."""

    def __init__(self, repo: Path, head: str):
        self.repo, self.head = repo, head

    def run(self, *args: str) -> str:
        return self._raw(*args).decode("utf-8", "surrogateescape")

    def _raw(self, *args: str, check: bool = True) -> bytes:
        proc = subprocess.run(["git", "-C", str(self.repo), "-c", "core.hooksPath=/dev/null", *args],
                              capture_output=True)
        if check and proc.returncode != 0:
            raise Refused(f"git {' '.join(args[:2])} in {self.repo} failed: {proc.stderr.decode(errors='replace').strip()}")
        return proc.stdout if proc.returncode == 0 else b""

    def mode(self, path: str) -> str:
        out = self.run("ls-tree", "-z", self.head, "--", path)
        return out.split(" ", 1)[0] if out else "missing"

    def size(self, path: str) -> int:
        return int(self.run("cat-file", "-s", f"{self.head}:{path}").strip())

    def show(self, path: str) -> bytes:
        return self._raw("cat-file", "blob", f"{self.head}:{path}")

    def show_if_file(self, path: str) -> bytes | None:
        return self.show(path) if self.mode(path) in REGULAR_MODES else None
