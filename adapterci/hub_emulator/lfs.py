"""Which files the Hub stores as LFS objects, and the LFS pointer git keeps for them.

The Hub answers `uploadMode: lfs` for a path that a `filter=lfs` rule of the revision's `.gitattributes` matches,
for a file of 10 MiB or more, and for a binary file (a NUL byte in its sample); it refuses such a file sent inline
as a regular `file` operation. In a commit an LFS file is a small pointer blob (its git id is the tree's `oid`),
the content lives in LFS storage under its sha256.
"""

from __future__ import annotations

import fnmatch
import re

# the Hub's default .gitattributes of a new model repo
GITATTRIBUTES = "".join(f"{pattern} filter=lfs diff=lfs merge=lfs -text\n" for pattern in (
    "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gz", "*.h5", "*.joblib", "*.lfs.*", "*.mlmodel",
    "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot", "*.parquet", "*.pb", "*.pickle", "*.pkl", "*.pt",
    "*.pth", "*.rar", "*.safetensors", "saved_model/**/*", "*.tar.*", "*.tar", "*.tflite", "*.tgz", "*.wasm", "*.xz",
    "*.zip", "*.zst", "*tfevents*")).encode()
LARGE = 10 * 1024 * 1024  # the Hub's limit for a file stored in git
SHA256 = re.compile(r"[0-9a-f]{64}")


def pointer(oid: str, size: int) -> bytes:
    """The git-lfs pointer file of an object (what git stores in the tree for an LFS file)."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n".encode()


def lfs_tracked(gitattributes: bytes | None, path: str) -> bool:
    """Whether the last `.gitattributes` line matching `path` sets `filter=lfs` (git's "last match wins")."""
    tracked = False
    for line in (gitattributes or b"").decode("utf-8", "replace").splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        pattern, attrs = fields[0], fields[1:]
        if not _matches(pattern, path):
            continue
        for attr in attrs:
            if attr == "filter=lfs":
                tracked = True
            elif attr in ("-filter", "!filter") or (attr.startswith("filter=") and attr != "filter=lfs"):
                tracked = False
    return tracked


def upload_mode(gitattributes: bytes | None, path: str, size: int, sample: bytes) -> str:
    """`lfs` or `regular`, as the Hub's preupload endpoint answers for a file (empty files are always regular)."""
    if size and (lfs_tracked(gitattributes, path) or size >= LARGE or b"\0" in sample):
        return "lfs"
    return "regular"


def _matches(pattern: str, path: str) -> bool:
    """gitattributes pattern matching: no slash -> the file name at any depth; else the path from the root,
    where `**` spans directories."""
    if "/" not in pattern.rstrip("/"):
        return fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], pattern)
    regex = re.escape(pattern.lstrip("/")).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*")
    regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
    return re.fullmatch(regex, path) is not None
