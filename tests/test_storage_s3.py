"""The ``s3://`` backend against a real S3 API server (moto's server mode on 127.0.0.1),
through the seam's public functions, with local disk as the reference for what each
answer should be."""
from __future__ import annotations

import hashlib
import json
import os

import pytest

import s3_server
from toolkit import publishing, storage
from toolkit.errors import ToolkitError

TREE = {"b.txt": b"bee", "a.txt": b"a", "sub/z.bin": b"\x00\x01", "sub/deeper/x": b"x" * 3000,
        ".hidden": b"h", "c d%20e.txt": b"space and percent"}


@pytest.fixture(scope="module")
def server():
    with s3_server.moto_server() as endpoint:
        settings = s3_server.aws_settings(endpoint)
        with pytest.MonkeyPatch.context() as mp:
            for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN", "AWS_REGION"):
                mp.delenv(name, raising=False)
            for name, value in settings.items():
                mp.setenv(name, value)
            s3_server.make_bucket(endpoint, "bucket")
            yield settings


def _write_tree(base: str) -> None:
    for rel, data in TREE.items():
        storage.makedirs(storage.join(base, *rel.split("/")[:-1]) if "/" in rel else base)
        storage.write_bytes(storage.join(base, *rel.split("/")), data)


def test_answers_match_local_disk(server, tmp_path):
    local, remote = str(tmp_path / "tree"), "s3://bucket/tree"
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
    assert not storage.exists("s3://bucket/nothing-here")
    assert list(storage.walk("s3://bucket/nothing-here")) == []


def test_text_and_identity(server):
    uri = "s3://bucket/notes/one.json"
    storage.write_text(uri, json.dumps({"é": 1}))
    assert json.loads(storage.read_text(uri)) == {"é": 1}
    first = storage.stat(uri)
    # an ETag of a single-part upload is the MD5 of its bytes
    assert str(first.identity).strip('"') == hashlib.md5(storage.read_bytes(uri)).hexdigest()
    storage.write_text(uri, json.dumps({"é": 2}))
    assert storage.stat(uri).identity != first.identity


def test_publishing_commits_without_rename(server):
    staged, final = "s3://bucket/root/Trainer/1/.staging-7-99", "s3://bucket/root/Trainer/1/model"
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


def test_remove_copy_move_and_local_path(server):
    _write_tree("s3://bucket/src")
    storage.copy("s3://bucket/src/b.txt", "s3://bucket/copy/b.txt")
    assert storage.read_bytes("s3://bucket/copy/b.txt") == b"bee"
    storage.move("s3://bucket/copy/b.txt", "s3://bucket/moved/b.txt")
    assert not storage.exists("s3://bucket/copy/b.txt")
    local = storage.local_path("s3://bucket/src")
    got = {os.path.relpath(os.path.join(r, n), local).replace(os.sep, "/"): open(os.path.join(r, n), "rb").read()
           for r, _, names in os.walk(local) for n in names}
    assert got == TREE
    storage.remove_tree("s3://bucket/src")
    assert not storage.exists("s3://bucket/src") and list(storage.walk("s3://bucket/src")) == []
    with pytest.raises(OSError, match="s3://bucket/src/a.txt"):
        storage.remove("s3://bucket/src/a.txt")


def test_bad_places_get_one_line_naming_the_uri_and_no_secret(server, monkeypatch):
    secret = server["AWS_SECRET_ACCESS_KEY"]
    with pytest.raises(ToolkitError) as missing:
        storage.write_text("s3://no-such-bucket/x.txt", "x")
    with pytest.raises(ToolkitError) as missing_read:
        storage.read_text("s3://bucket/absent.txt")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{s3_server.free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(ToolkitError) as unreachable:
        storage.read_text("s3://bucket/a.txt")
    for caught, words in ((missing, ["s3://no-such-bucket/x.txt", "no-such-bucket"]),
                          (missing_read, ["s3://bucket/absent.txt", "no such object"]),
                          (unreachable, ["s3://bucket/a.txt", "cannot be reached", "AWS_ENDPOINT_URL"])):
        text = str(caught.value)
        assert "\n" not in text and secret not in text, text
        for word in words:
            assert word in text, (word, text)
