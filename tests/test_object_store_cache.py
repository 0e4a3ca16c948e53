"""Cache fingerprints of inputs in an object store come from the store's own identity of
each object (the ETag) and its size, on a real S3 API server (moto) on 127.0.0.1: the
same bytes uploaded again keep the key, where a time-based key would change; other
bytes of the same size change it."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

import object_servers
from toolkit import storage
from toolkit.cache import fingerprint_path

ROWS = b"a,b\n1,2\n3,4\n"
OTHER = b"a,b\n1,2\n3,5\n"   # the same size


@pytest.fixture(scope="module")
def bucket():
    with object_servers.moto_server() as endpoint, pytest.MonkeyPatch.context() as mp:
        for name, value in object_servers.aws_settings(endpoint).items():
            mp.setenv(name, value)
        mp.delenv("AWS_PROFILE", raising=False)
        object_servers.make_s3_bucket(endpoint, "cache")
        yield "s3://cache"


def test_same_bytes_uploaded_again_keep_the_key_other_bytes_change_it(bucket):
    folder, file = f"{bucket}/data", f"{bucket}/data/rows.csv"
    storage.write_bytes(file, ROWS)
    tree, single = fingerprint_path(folder, "tree"), fingerprint_path(file, "file")
    modified = storage.stat(file).mtime_ns
    time.sleep(1.1)                               # S3 keeps times to the second
    storage.write_bytes(file, ROWS)
    assert storage.stat(file).mtime_ns != modified  # a time-based key would change here
    assert fingerprint_path(folder, "tree") == tree
    assert fingerprint_path(file, "file") == single
    storage.write_bytes(file, OTHER)
    assert storage.stat(file).size == len(ROWS)
    assert fingerprint_path(folder, "tree") != tree
    assert fingerprint_path(file, "file") != single
    # a new file in the folder changes the folder's key, not the file's
    storage.write_bytes(f"{bucket}/data/more.csv", ROWS)
    changed = fingerprint_path(folder, "tree")
    storage.write_bytes(file, ROWS)
    assert fingerprint_path(folder, "tree") not in (tree, changed)
    assert fingerprint_path(file, "file") == single
    assert fingerprint_path(f"{bucket}/nothing", "tree") == "missing"


def test_import_schema_gen_from_a_bucket_is_cached_by_the_objects_identity(bucket, tmp_path):
    """A schema file given as a URI: imported byte for byte; run again (a new context, as a
    new process would) it is a cache hit, also after the same bytes are uploaded again; a
    changed schema runs again."""
    from datapaths import REPO

    from toolkit import InteractiveContext
    from toolkit.components import ImportSchemaGen
    from toolkit.metadata import sqlite_config

    schema = (Path(REPO) / "tests" / "fixtures" / "tfx_tutorials" / "data" / "schema.pbtxt").read_bytes()
    uri = f"{bucket}/schemas/schema.pbtxt"
    storage.write_bytes(uri, schema)

    def run():
        context = InteractiveContext(pipeline_name="schema-from-bucket", pipeline_root=str(tmp_path / "root"),
                                     metadata_connection_config=sqlite_config(str(tmp_path / "m.sqlite")))
        return context.run(ImportSchemaGen(schema_file=uri))

    first = run()
    assert not first.cached
    assert Path(first.outputs["schema"][0].uri, "schema.pbtxt").read_bytes() == schema
    time.sleep(1.1)
    storage.write_bytes(uri, schema)
    again = run()
    assert again.cached and again.outputs["schema"][0].uri == first.outputs["schema"][0].uri
    storage.write_bytes(uri, schema + b"\n# curated again\n")
    changed = run()
    assert not changed.cached
    assert Path(changed.outputs["schema"][0].uri, "schema.pbtxt").read_bytes().endswith(b"# curated again\n")
