"""The emulator stores weights the way the Hub does: LFS objects uploaded through the batch API, committed and copied
as `lfsFile` lines, listed with their `lfs` fields and served by resolve; all through the real huggingface_hub."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

import pytest

from adapterci.hub_emulator.lfs import GITATTRIBUTES, LARGE, lfs_tracked, pointer, upload_mode

REPO_ID = "tester/weights"


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def calls(hub, start: int = 0) -> list[tuple[str, str, int]]:
    return [(r["method"], r["path"], r["status"]) for r in hub.requests[start:]]


@pytest.fixture
def weights(tmp_path) -> tuple[Path, bytes]:
    data = os.urandom(50_000)
    path = tmp_path / "adapter_model.safetensors"
    path.write_bytes(data)
    return path, data


def test_lfs_upload_of_safetensors_goes_through_the_batch_api(hub_emulator, weights, tmp_path):
    from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download

    path, data = weights
    api = HfApi()
    api.create_repo(REPO_ID)
    start = len(hub_emulator.requests)
    oid = api.create_commit(REPO_ID, [CommitOperationAdd("adapter_model.safetensors", str(path)),
                                      CommitOperationAdd("README.md", b"# weights\n")], commit_message="w").oid
    sha256 = hashlib.sha256(data).hexdigest()
    made = [(m, p.split("/")[1] if p.startswith("/lfs-storage") else p) for m, p, _ in calls(hub_emulator, start)]
    assert made == [("POST", "/api/validate-yaml"), ("POST", f"/api/models/{REPO_ID}/preupload/main"), ("POST", f"/{REPO_ID}.git/info/lfs/objects/batch"),
                    ("PUT", "lfs-storage"), ("POST", f"/{REPO_ID}.git/info/lfs/objects/verify"),
                    ("POST", f"/api/models/{REPO_ID}/commit/main")]
    files = hub_emulator.state.repo("models", REPO_ID).commits[oid].files
    assert files["adapter_model.safetensors"] == sha256 and files["README.md"] == git_sha1(b"# weights\n")

    tree = {f.path: f for f in api.list_repo_tree(REPO_ID, revision=oid)}
    entry = tree["adapter_model.safetensors"]
    assert (entry.size, entry.lfs.sha256, entry.lfs.size) == (len(data), sha256, len(data))
    assert entry.blob_id == git_sha1(pointer(sha256, len(data))) and entry.lfs.pointer_size == len(pointer(sha256, len(data)))
    assert entry.xet_hash is None and tree["README.md"].lfs is None
    [info] = api.get_paths_info(REPO_ID, ["adapter_model.safetensors"], revision=oid)
    assert (info.lfs.sha256, info.blob_id) == (sha256, entry.blob_id)
    siblings = {s.rfilename: s for s in api.model_info(REPO_ID, files_metadata=True).siblings}
    assert siblings["adapter_model.safetensors"].lfs.sha256 == sha256

    meta = api.get_hf_file_metadata(url=f"{hub_emulator.url}/{REPO_ID}/resolve/{oid}/adapter_model.safetensors")
    assert (meta.etag, meta.size, meta.commit_hash) == (sha256, len(data), oid)
    local = Path(hf_hub_download(REPO_ID, "adapter_model.safetensors", revision=oid, cache_dir=tmp_path / "cache"))
    assert local.read_bytes() == data and local.resolve().name == sha256  # the cache blob is named by sha256

    start = len(hub_emulator.requests)  # the same weights again: the object is already stored, no upload
    api.create_commit(REPO_ID, [CommitOperationAdd("again.safetensors", str(path))], commit_message="again")
    assert not [c for c in calls(hub_emulator, start) if c[0] == "PUT"]


def test_lfs_copy_in_a_commit_reuses_the_object(hub_emulator, weights):
    from huggingface_hub import CommitOperationAdd, CommitOperationCopy, HfApi

    path, data = weights
    api = HfApi()
    api.create_repo(REPO_ID)
    first = api.create_commit(REPO_ID, [CommitOperationAdd("v1/adapter_model.safetensors", str(path))],
                              commit_message="v1").oid
    api.create_branch(REPO_ID, branch="canary", revision=first)
    start = len(hub_emulator.requests)
    moved = api.create_commit(REPO_ID, [CommitOperationCopy("v1/adapter_model.safetensors", "adapter_model.safetensors",
                                                            src_revision=first)],
                              commit_message="move", revision="canary", parent_commit=first).oid
    made = calls(hub_emulator, start)
    assert [m for m, p, _ in made if "/resolve/" in p or m == "PUT"] == []  # metadata only: no download, no upload
    assert any(p.endswith("/paths-info/canary") or "/paths-info/" in p for _, p, _ in made)
    repo = hub_emulator.state.repo("models", REPO_ID)
    sha256 = hashlib.sha256(data).hexdigest()
    assert repo.branches["canary"] == moved and repo.commits[moved].files["adapter_model.safetensors"] == sha256
    assert hub_emulator.state.blobs[sha256] == data


def test_lfs_objects_must_be_uploaded_complete_before_a_commit_names_them(hub_emulator, weights):
    import httpx2
    from huggingface_hub import CommitOperationAdd, HfApi

    path, data = weights
    api = HfApi()
    api.create_repo(REPO_ID)
    head = api.model_info(REPO_ID).sha
    hub_emulator.add_fault(r"^/lfs-storage/", method="PUT", action="truncate")  # storage keeps half the object
    with pytest.raises(RuntimeError, match="Error while uploading") as failed:
        api.create_commit(REPO_ID, [CommitOperationAdd("adapter_model.safetensors", str(path))], commit_message="w")
    assert failed.value.__cause__.response.status_code == 422  # verify refused the truncated object
    sha256 = hashlib.sha256(data).hexdigest()
    commit = [json.dumps({"key": "header", "value": {"summary": "forged"}}),
              json.dumps({"key": "lfsFile", "value": {"path": "w.safetensors", "algo": "sha256", "oid": sha256,
                                                      "size": len(data)}})]
    answer = httpx2.post(f"{hub_emulator.url}/api/models/{REPO_ID}/commit/main", content="\n".join(commit).encode(),
                         headers={"authorization": f"Bearer {hub_emulator.token}",
                                  "content-type": "application/x-ndjson"})
    assert answer.status_code == 400 and "LFS pointer pointed to a file that does not exist" in answer.text
    inline = [commit[0], json.dumps({"key": "file", "value": {"path": "w.bin", "encoding": "base64",
                                                              "content": base64.b64encode(data).decode()}})]
    answer = httpx2.post(f"{hub_emulator.url}/api/models/{REPO_ID}/commit/main", content="\n".join(inline).encode(),
                         headers={"authorization": f"Bearer {hub_emulator.token}"})
    assert answer.status_code == 400 and "binary files" in answer.text
    assert api.model_info(REPO_ID).sha == head
    api.create_commit(REPO_ID, [CommitOperationAdd("adapter_model.safetensors", str(path))], commit_message="w")
    assert hub_emulator.state.repo("models", REPO_ID).commits[api.model_info(REPO_ID).sha].files[
        "adapter_model.safetensors"] == sha256


def test_lfs_storage_urls_are_signed_for_one_object(hub_emulator, weights):
    import httpx2
    from huggingface_hub import HfApi

    _, data = weights
    HfApi().create_repo(REPO_ID)
    sha256 = hashlib.sha256(data).hexdigest()
    batch = httpx2.post(f"{hub_emulator.url}/{REPO_ID}.git/info/lfs/objects/batch",
                        json={"operation": "upload", "transfers": ["basic"], "hash_algo": "sha256",
                              "objects": [{"oid": sha256, "size": len(data)}, {"oid": "nope", "size": 1}]},
                        headers={"authorization": f"Bearer {hub_emulator.token}"})
    assert batch.headers["content-type"] == "application/vnd.git-lfs+json"
    [good, bad] = batch.json()["objects"]
    assert bad["error"]["code"] == 422
    href = good["actions"]["upload"]["href"]
    forged = href.replace(sha256, "0" * 64)
    assert httpx2.put(forged, content=b"x").status_code == 403
    assert httpx2.put(href, content=data).status_code == 200  # no Authorization: the URL is the credential
    unauthenticated = httpx2.post(f"{hub_emulator.url}/{REPO_ID}.git/info/lfs/objects/batch", json={})
    assert unauthenticated.status_code == 401


def test_lfs_upload_mode_follows_gitattributes_size_and_content():
    assert lfs_tracked(GITATTRIBUTES, "adapter_model.safetensors")
    assert lfs_tracked(GITATTRIBUTES, "sub/dir/pytorch_model.bin")
    assert lfs_tracked(GITATTRIBUTES, "saved_model/variables/data")
    assert not lfs_tracked(GITATTRIBUTES, "adapter_config.json")
    assert not lfs_tracked(GITATTRIBUTES + b"*.bin -filter\n", "x.bin")  # the last matching line wins
    assert lfs_tracked(b"/weights/*.dat filter=lfs\n", "weights/a.dat") and not lfs_tracked(
        b"/weights/*.dat filter=lfs\n", "x/weights/a.dat")
    assert upload_mode(GITATTRIBUTES, "README.md", 10, b"# hi") == "regular"
    assert upload_mode(GITATTRIBUTES, "notes.txt", 10, b"a\0b") == "lfs"  # binary
    assert upload_mode(GITATTRIBUTES, "big.jsonl", LARGE, b"{}") == "lfs"  # 10 MiB
    assert upload_mode(GITATTRIBUTES, "empty.safetensors", 0, b"") == "regular"  # the Hub never stores empty LFS


def test_xet_is_not_emulated_and_the_client_picks_it_by_itself(hub_emulator, monkeypatch):
    """huggingface_hub uploads LFS files through Xet whenever hf_xet is importable: the server advertises nothing
    (no transfer in the batch answer is ever asked for), so only HF_HUB_DISABLE_XET=1 keeps it on LFS."""
    from huggingface_hub import CommitOperationAdd, HfApi, constants

    api = HfApi()
    api.create_repo(REPO_ID)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", False)  # as without the fixture's HF_HUB_DISABLE_XET=1
    start = len(hub_emulator.requests)
    with pytest.raises(Exception, match="501"):
        api.create_commit(REPO_ID, [CommitOperationAdd("m.safetensors", os.urandom(5000))], commit_message="w")
    assert calls(hub_emulator, start)[1:] == [("GET", f"/api/models/{REPO_ID}/xet-write-token/main", 501)]
