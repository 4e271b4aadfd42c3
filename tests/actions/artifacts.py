"""upload-artifact / download-artifact stand-in: artifacts are folders under $ADAPTERCI_STUB_ARTIFACTS."""

import fnmatch
import glob
import os
import shutil
import sys
from pathlib import Path

store = Path(os.environ["ADAPTERCI_STUB_ARTIFACTS"])
workspace = Path(os.environ.get("GITHUB_WORKSPACE", "."))


def upload() -> None:
    name = os.environ["ARTIFACT_NAME"]
    patterns = [p.strip() for p in os.environ["ARTIFACT_PATH"].splitlines() if p.strip()]
    files = [Path(m) for p in patterns for m in glob.glob(str(workspace / p), recursive=True)]
    if not files:
        msg = f"no files found for artifact {name}: {patterns}"
        if os.environ.get("IF_NO_FILES_FOUND") == "error":
            sys.exit(f"::error::{msg}")
        print(f"::warning::{msg}")
        return
    dest = store / name
    shutil.rmtree(dest, ignore_errors=True)
    # Like the real action, a single directory uploads its contents; several paths keep their names.
    for f in files:
        target = dest if len(files) == 1 and f.is_dir() else dest / f.name
        if f.is_dir():
            shutil.copytree(f, target, dirs_exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, target)
    print(f"uploaded artifact {name}")


def download() -> None:
    name, pattern = os.environ["ARTIFACT_NAME"], os.environ["ARTIFACT_PATTERN"]
    dest = workspace / os.environ["ARTIFACT_PATH"]
    if name:
        if not (store / name).is_dir():
            sys.exit(f"::error::artifact not found: {name}")
        shutil.copytree(store / name, dest, dirs_exist_ok=True)
        return
    merge = os.environ.get("MERGE_MULTIPLE") == "true"
    for art in sorted(store.iterdir()) if store.is_dir() else []:
        if fnmatch.fnmatch(art.name, pattern or "*"):
            shutil.copytree(art, dest if merge else dest / art.name, dirs_exist_ok=True)


{"upload": upload, "download": download}[sys.argv[1]]()
