"""The object-store backends, ``s3://`` against moto's S3 server and ``gs://`` against
gcp-storage-emulator, both real servers on 127.0.0.1, through the seam's public
functions, with local disk as the reference for what each answer should be."""
from __future__ import annotations

import hashlib
import json
import os

import pytest

import object_servers
from toolkit import publishing, storage
from toolkit.errors import ToolkitError

TREE = {"b.txt": b"bee", "a.txt": b"a", "sub/z.bin": b"\x00\x01", "sub/deeper/x": b"x" * 3000,
        ".hidden": b"h", "c d%20e.txt": b"space and percent"}
SETTINGS = ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN",
            "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "STORAGE_EMULATOR_HOST",
            "GOOGLE_APPLICATION_CREDENTIALS")


@pytest.fixture(scope="module", params=["s3", "gs"])
def store(request):
    """``(scheme, settings)``: a fresh server with the bucket ``bucket``, and the settings
    that point the toolkit at it (one of them a secret unique to this run, for s3)."""
    scheme = request.param
    serve = object_servers.moto_server if scheme == "s3" else object_servers.gcs_emulator
    with serve() as endpoint, pytest.MonkeyPatch.context() as mp:
        for name in SETTINGS:
            mp.delenv(name, raising=False)
        if scheme == "s3":
            settings = object_servers.aws_settings(endpoint)
            object_servers.make_s3_bucket(endpoint, "bucket")
        else:
            settings = {"STORAGE_EMULATOR_HOST": endpoint}
            object_servers.make_gcs_bucket(endpoint, "bucket")
        for name, value in settings.items():
            mp.setenv(name, value)
        yield scheme, settings


def _write_tree(base: str) -> None:
    for rel, data in TREE.items():
        storage.makedirs(storage.join(base, *rel.split("/")[:-1]) if "/" in rel else base)
        storage.write_bytes(storage.join(base, *rel.split("/")), data)


def test_answers_match_local_disk(store, tmp_path):
    scheme, _ = store
    local, remote = str(tmp_path / "tree"), f"{scheme}://bucket/tree"
    _write_tree(local)
    _write_tree(remote)
    assert list(storage.walk(remote)) == list(storage.walk(local))
    assert sorted(storage.listdir(remote)) == sorted(os.listdir(local))
    assert sorted(storage.folders(remote)) == sorted(storage.folders(local))
    for rel, data in TREE.items():
        uri = storage.join(remote, *rel.split("/"))
        assert storage.read_bytes(uri) == data
        assert storage.is_file(uri) and not storage.is_dir(uri)
        assert storage.stat(uri).size == len(data)
    assert storage.is_dir(storage.join(remote, "sub")) and storage.exists(remote)
    assert not storage.exists(f"{scheme}://bucket/nothing-here")
    assert list(storage.walk(f"{scheme}://bucket/nothing-here")) == []
    for pattern in ("*.txt", "**/x", "sub/*", "*"):
        assert storage.glob_under(remote, pattern) == storage.glob_under(local, pattern), pattern


def test_text_and_identity(store):
    scheme, _ = store
    uri = f"{scheme}://bucket/notes/one.json"
    storage.write_text(uri, json.dumps({"é": 1}))
    with storage.open(uri, "r", encoding="utf-8") as handle:
        assert json.load(handle) == {"é": 1}
    first = storage.stat(uri)
    if scheme == "s3":  # an ETag of a single-part upload is the MD5 of its bytes
        assert str(first.identity).strip('"') == hashlib.md5(storage.read_bytes(uri)).hexdigest()
    storage.write_text(uri, json.dumps({"é": [2, 3]}))
    assert storage.stat(uri).identity != first.identity


def test_publishing_commits_without_rename(store):
    scheme, _ = store
    staged = f"{scheme}://bucket/root/Trainer/1/.staging-7-99"
    final = f"{scheme}://bucket/root/Trainer/1/model"
    _write_tree(staged)
    publishing.write_manifest(staged)
    assert publishing.manifest_ok(staged)
    assert storage.commit(staged, final) == final
    assert not storage.exists(staged)
    assert publishing.manifest_ok(final)
    assert {r: storage.read_bytes(storage.join(final, *r.split("/"))) for r in TREE} == TREE
    # an output missing a file its manifest lists is not complete
    storage.remove(storage.join(final, "a.txt"))
    assert not publishing.manifest_ok(final)


def test_remove_copy_move_and_local_path(store):
    scheme, _ = store
    src = f"{scheme}://bucket/src"
    _write_tree(src)
    storage.copy(f"{src}/b.txt", f"{scheme}://bucket/copy/b.txt")
    assert storage.read_bytes(f"{scheme}://bucket/copy/b.txt") == b"bee"
    storage.move(f"{scheme}://bucket/copy/b.txt", f"{scheme}://bucket/moved/b.txt")
    assert not storage.exists(f"{scheme}://bucket/copy/b.txt")
    assert storage.read_bytes(f"{scheme}://bucket/moved/b.txt") == b"bee"
    local = storage.local_path(src)
    got = {os.path.relpath(os.path.join(r, n), local).replace(os.sep, "/"):
           open(os.path.join(r, n), "rb").read() for r, _, names in os.walk(local) for n in names}
    assert got == TREE
    storage.remove_tree(src)
    assert not storage.exists(src) and list(storage.walk(src)) == []
    with pytest.raises(OSError, match=f"{scheme}://bucket/src/a.txt"):
        storage.remove(f"{src}/a.txt")


def test_bad_places_get_one_line_naming_the_uri_and_no_secret(store, monkeypatch):
    scheme, settings = store
    secret = settings.get("AWS_SECRET_ACCESS_KEY", "\0")
    with pytest.raises(ToolkitError) as missing:
        storage.write_text(f"{scheme}://no-such-bucket/x.txt", "x")
    with pytest.raises(ToolkitError) as missing_read:
        storage.read_text(f"{scheme}://bucket/absent.txt")
    unused = f"http://127.0.0.1:{object_servers.free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL" if scheme == "s3" else "STORAGE_EMULATOR_HOST", unused)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    if scheme == "gs":
        from toolkit.storage import gcs
        monkeypatch.setattr(gcs, "RETRY_SECONDS", 1)
    with pytest.raises(ToolkitError) as unreachable:
        storage.read_text(f"{scheme}://bucket/a.txt")
    setting = "AWS_ENDPOINT_URL" if scheme == "s3" else "STORAGE_EMULATOR_HOST"
    for caught, words in ((missing, [f"{scheme}://no-such-bucket/x.txt", "'no-such-bucket' does not exist"]),
                          (missing_read, [f"{scheme}://bucket/absent.txt", "no such object"]),
                          (unreachable, [f"{scheme}://bucket/a.txt", "cannot be reached", setting])):
        text = str(caught.value)
        assert "\n" not in text and secret not in text, text
        for word in words:
            assert word in text, (word, text)


def test_a_local_copy_follows_the_objects(store):
    scheme, _ = store
    base = f"{scheme}://bucket/copied"
    _write_tree(base)
    local = storage.local_path(base)

    def tree():
        return {os.path.relpath(os.path.join(r, n), local).replace(os.sep, "/"):
                open(os.path.join(r, n), "rb").read() for r, _, names in os.walk(local) for n in names}

    assert tree() == TREE
    storage.write_bytes(f"{base}/sub/z.bin", b"changed, and longer")
    storage.remove(f"{base}/a.txt")
    assert storage.local_path(base) == local
    assert tree() == {**{k: v for k, v in TREE.items() if k != "a.txt"},
                      "sub/z.bin": b"changed, and longer"}
    single = storage.local_path(f"{base}/b.txt")
    assert open(single, "rb").read() == b"bee"
