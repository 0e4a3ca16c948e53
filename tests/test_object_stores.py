"""The object-store backends, ``s3://`` against moto's S3 server and ``gs://`` against
gcp-storage-emulator, both real servers on 127.0.0.1, through the seam's public
functions, with local disk as the reference for what each answer should be."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import urllib.parse
import urllib.request
import uuid

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


# -- access denied, an object deleted mid-read, a prefix that is an object -------------
def _one_line(caught: pytest.ExceptionInfo, uri: str, *secrets: str) -> str:
    """The error's text, asserted to be a toolkit error of one line naming ``uri`` and
    holding none of ``secrets``."""
    assert isinstance(caught.value, ToolkitError), repr(caught.value)
    text = str(caught.value)
    assert "\n" not in text and uri in text, text
    for secret in secrets:
        assert secret not in text, text
    return text


def _context(tmp_path, root: str):
    from toolkit import InteractiveContext
    from toolkit.metadata import sqlite_config

    return InteractiveContext(pipeline_name="objects", pipeline_root=root,
                              metadata_connection_config=sqlite_config(
                                  str(tmp_path / "metadata.sqlite")))


def _nothing_complete(context, component: str) -> None:
    """No execution of ``component`` recorded COMPLETE and no artifact registered."""
    states = [row["state"] for row in context.executions(component)]
    assert "COMPLETE" not in states, states
    assert context.store.artifacts() == []


@contextlib.contextmanager
def _enforced_iam(endpoint: str, denied: list[str]):
    """An IAM user on the moto server whose policy allows every S3 action but ``denied``,
    and moto checking every request's signature and policy (its ``reset-auth`` switch) for
    as long as this lasts; yields the user's ``(key id, secret)``."""
    import boto3

    iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1")
    user = f"reader-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="read-nothing", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
            {"Effect": "Deny", "Action": denied, "Resource": "*"}]}))
    key = iam.create_access_key(UserName=user)["AccessKey"]

    def switch(count: str) -> None:
        request = urllib.request.Request(f"{endpoint}/moto-api/reset-auth", method="POST",
                                         data=count.encode(),
                                         headers={"Content-Type": "text/plain"})
        urllib.request.urlopen(request, timeout=10).read()

    switch("0")
    try:
        yield key["AccessKeyId"], key["SecretAccessKey"]
    finally:
        switch("inf")


# S3 only: gcp-storage-emulator keeps IAM policies but enforces none (it never answers 403)
@pytest.mark.parametrize("store", ["s3"], indirect=True)
def test_access_denied_is_one_line_naming_the_uri(store, tmp_path, monkeypatch):
    scheme, settings = store
    base = "s3://bucket/private"
    storage.write_text(f"{base}/data.csv", "a,b\n1,2\n3,4\n")
    context = _context(tmp_path, str(tmp_path / "root"))
    from toolkit.components import CsvExampleGen

    with _enforced_iam(settings["AWS_ENDPOINT_URL"], ["s3:GetObject"]) as (key_id, secret):
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
        secrets = (key_id, secret, settings["AWS_SECRET_ACCESS_KEY"])
        assert storage.listdir(base) == ["data.csv"]  # listing is allowed: the key works
        for action in (lambda: storage.read_text(f"{base}/data.csv"),
                       lambda: storage.stat(f"{base}/data.csv"),
                       lambda: storage.copy(f"{base}/data.csv", str(tmp_path / "copy.csv"))):
            with pytest.raises(PermissionError) as caught:
                action()
            assert "access denied" in _one_line(caught, f"{base}/data.csv", *secrets)
        with pytest.raises(ToolkitError) as caught:
            storage.local_path(base)
        assert "access denied" in _one_line(caught, base, *secrets)
        with pytest.raises(ToolkitError) as caught:
            context.run(CsvExampleGen(input_base=base))
        assert "access denied" in _one_line(caught, base, *secrets)
        # a key the server does not know is refused as such, naming the settings to check
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWN0000000000")
        with pytest.raises(ToolkitError) as caught:
            storage.listdir(base)
        text = _one_line(caught, base, *secrets)
        assert "credentials were refused" in text and "AWS_ACCESS_KEY_ID" in text, text
    assert not (tmp_path / "copy.csv").exists()
    _nothing_complete(context, "CsvExampleGen")
    assert list(storage.walk(str(tmp_path / "root" / "CsvExampleGen"))) == []


def _delete_directly(scheme: str, settings: dict, key: str) -> None:
    """Remove the object with the store's own API, not through the toolkit."""
    if scheme == "s3":
        import boto3

        boto3.client("s3", endpoint_url=settings["AWS_ENDPOINT_URL"],
                     region_name="us-east-1").delete_object(Bucket="bucket", Key=key)
    else:
        name = urllib.parse.quote(key, safe="")
        request = urllib.request.Request(
            f"{settings['STORAGE_EMULATOR_HOST']}/storage/v1/b/bucket/o/{name}", method="DELETE")
        urllib.request.urlopen(request, timeout=10).read()


def test_an_object_deleted_mid_read_is_read_whole_or_fails_naming_it(store, tmp_path):
    """Whatever the client had buffered when the object went, a reader gets all of its
    bytes or one line naming it, never a silently shorter file. (A few MB: both clients
    hold it whole after the first read, and the emulator answers one request at a time.
    Deleted right after opening: pyarrow's GCS file still gives every byte; s3fs fetches
    at the first read, so there the read fails naming the object.)"""
    scheme, settings = store
    lines = b"".join(b"%07d,%s\n" % (i, hashlib.sha256(b"%d" % i).hexdigest().encode())
                     for i in range(40_000))  # 2.8 MB, every line different
    uri = f"{scheme}://bucket/midread/rows.csv"

    def read_binary(handle):
        first = handle.read(100_000)
        _delete_directly(scheme, settings, "midread/rows.csv")
        return first + handle.read()

    def read_after_open(handle):  # opened, nothing read yet
        _delete_directly(scheme, settings, "midread/rows.csv")
        return handle.read()

    def read_lines(handle):
        got = []
        for index, line in enumerate(handle):
            if index == 100:
                _delete_directly(scheme, settings, "midread/rows.csv")
            got.append(line if isinstance(line, bytes) else line.encode())
        return b"".join(got)

    failed = []
    for mode, read in (("rb", read_binary), ("r", read_lines), ("rb", read_lines),
                       ("rb", read_after_open)):
        storage.write_bytes(uri, lines)
        outcome = None
        try:
            with storage.open(uri, mode, **({} if "b" in mode else {"newline": ""})) as handle:
                outcome = read(handle)
        except OSError as exc:
            text = str(exc)
            assert isinstance(exc, ToolkitError) and "\n" not in text and uri in text, repr(exc)
            failed.append(read.__name__)
        assert not storage.exists(uri)  # the object did go mid-read
        if outcome is not None:
            assert len(outcome) == len(lines) and outcome == lines, (mode, len(outcome))
    if scheme == "s3":  # s3fs fetches on the first read, so that one found it gone
        assert "read_after_open" in failed, failed


def test_a_prefix_that_is_an_object(store, tmp_path):
    """An object where a folder is expected answers as a file does on local disk, and
    each use of it as a folder fails in one line naming it, leaving nothing behind."""
    scheme, settings = store
    secrets = tuple(v for k, v in settings.items() if "SECRET" in k)
    remote, local = f"{scheme}://bucket/isfile/data", str(tmp_path / "data")
    for uri in (remote, local):
        storage.write_bytes(uri, b"a,b\n1,2\n")
    for uri in (remote, local):
        assert storage.is_file(uri) and not storage.is_dir(uri) and storage.exists(uri)
        assert list(storage.walk(uri)) == [] and list(storage.folders(uri)) == []
        assert storage.glob_under(uri, "*.csv") == []
        for action in (storage.listdir, storage.makedirs,
                       lambda u: storage.makedirs(storage.join(u, "sub"))):
            with pytest.raises(OSError) as caught:
                action(uri)
            if uri == remote:
                _one_line(caught, remote, *secrets)
    # publishing under it: refused before anything is uploaded
    staged = tmp_path / "staged"
    staged.mkdir()
    (staged / "part.bin").write_bytes(b"p")
    with pytest.raises(NotADirectoryError) as caught:
        storage.commit(str(staged), f"{remote}/Trainer/model/1")
    assert "is an object, not a prefix" in _one_line(caught, remote, *secrets)
    assert list(storage.walk(remote)) == []

    from toolkit.components import CsvExampleGen

    data = tmp_path / "csv"
    data.mkdir()
    (data / "rows.csv").write_text("a,b\n" + "".join(f"{i},{i * 2}\n" for i in range(30)))
    # input_base an object
    context = _context(tmp_path / "one", str(tmp_path / "one" / "root"))
    with pytest.raises(ToolkitError) as caught:
        context.run(CsvExampleGen(input_base=remote))
    assert "is a file, not a folder" in _one_line(caught, remote, *secrets)
    _nothing_complete(context, "CsvExampleGen")
    assert list(storage.walk(str(tmp_path / "one" / "root" / "CsvExampleGen"))) == []
    # pipeline_root an object
    (tmp_path / "two").mkdir()
    context = _context(tmp_path / "two", remote)
    with pytest.raises(ToolkitError) as caught:
        context.run(CsvExampleGen(input_base=str(data)))
    assert "is an object, not a prefix" in _one_line(caught, remote, *secrets)
    _nothing_complete(context, "CsvExampleGen")
    assert list(storage.walk(remote)) == [] and storage.read_bytes(remote) == b"a,b\n1,2\n"
