"""The storage seam (``toolkit.storage``) on local disk, through its public API: plain paths
and ``file://`` URIs are the same files; walks give relative paths; an output being
written is invisible to readers and to the cache until its manifest is written; unknown
schemes and URIs escaping the pipeline root are refused in one line."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from datapaths import GERMAN_CSV, TAXI_CSV
from toolkit import InteractiveContext, storage
from toolkit.artifacts import Examples
from toolkit.base_component import BaseComponent
from toolkit.cache import fingerprint_path, unusable_outputs
from toolkit.errors import ToolkitError, UnknownNameError
from toolkit.publishing import (MANIFEST, OutputFolders, fingerprint, has_artifact_folders,
                                manifest_ok)


@pytest.fixture
def tree(tmp_path) -> Path:
    """Real data files in a small tree: ``b.csv``, ``a/taxi.csv``, ``a/deeper/german.csv``."""
    (tmp_path / "tree" / "a" / "deeper").mkdir(parents=True)
    shutil.copy(TAXI_CSV, tmp_path / "tree" / "a" / "taxi.csv")
    shutil.copy(GERMAN_CSV, tmp_path / "tree" / "a" / "deeper" / "german.csv")
    shutil.copy(GERMAN_CSV, tmp_path / "tree" / "b.csv")
    return tmp_path / "tree"


def _sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_paths_and_file_uris_name_the_same_files(tree):
    plain, uri = str(tree), f"file://{tree}"
    assert storage.scheme_of(plain) == storage.scheme_of(uri) == "file"
    expected = sorted(os.path.relpath(os.path.join(root, name), tree)
                      for root, _, names in os.walk(tree) for name in names)
    assert sorted(storage.walk(plain)) == sorted(storage.walk(uri)) == expected
    assert sorted(storage.listdir(uri)) == sorted(os.listdir(tree)) == ["a", "b.csv"]
    taxi_plain, taxi_uri = storage.join(plain, "a", "taxi.csv"), storage.join(uri, "a", "taxi.csv")
    assert taxi_uri == f"file://{tree}/a/taxi.csv"
    assert storage.local_path(taxi_uri) == taxi_plain == str(tree / "a" / "taxi.csv")
    with storage.open(taxi_uri, "rb") as handle:
        assert hashlib.sha256(handle.read()).hexdigest() == _sha256(TAXI_CSV)
    assert storage.read_text(taxi_uri) == storage.read_text(taxi_plain) == \
        Path(TAXI_CSV).read_text(encoding="utf-8")
    for check in (storage.exists, storage.is_dir, storage.is_file):
        for rel in ("a", "a/taxi.csv", "missing"):
            assert check(storage.join(uri, rel)) == check(storage.join(plain, rel)), (check, rel)
    assert storage.is_dir(storage.join(uri, "a")) and storage.is_file(taxi_uri)
    assert not storage.exists(storage.join(uri, "missing"))
    # whole-tree fingerprints (the cache key's form) do not depend on the spelling
    assert fingerprint_path(uri, "tree") == fingerprint_path(plain, "tree")
    assert fingerprint_path(taxi_uri, "file") == _sha256(TAXI_CSV)


def test_walk_is_depth_first_with_files_before_subfolders(tree):
    """Files of a folder by name, then its subfolders by name: the order the cache's tree
    fingerprint has always hashed, so existing cache keys stay valid."""
    (tree / "z.txt").write_text("last by name, but in the top folder\n")
    assert list(storage.walk(str(tree))) == ["b.csv", "z.txt", "a/taxi.csv",
                                             "a/deeper/german.csv"]
    assert list(storage.walk(str(tree / "missing"))) == []
    (tree / "empty").mkdir()
    assert sorted(storage.folders(str(tree))) == ["a", "a/deeper", "empty"]


def test_stat_reports_size_mtime_and_identity(tree):
    taxi = tree / "a" / "taxi.csv"
    st = storage.stat(f"file://{taxi}")
    assert st.size == len(Path(TAXI_CSV).read_bytes())
    assert st.mtime_ns == os.stat(taxi).st_mtime_ns
    assert st == storage.stat(str(taxi))
    # a rewrite gives the file another identity or time; a copy is another file
    copy = tree / "copy.csv"
    storage.copy(str(taxi), str(copy))
    assert storage.stat(str(copy)).identity != st.identity
    assert storage.stat(str(copy)).size == st.size
    with pytest.raises(OSError):
        storage.stat(str(tree / "missing"))


def test_write_move_and_remove(tmp_path):
    target = f"file://{tmp_path}/out/deep/data.json"
    storage.makedirs(f"file://{tmp_path}/out/deep")
    storage.write_text(target, json.dumps({"rows": 3}))
    assert json.loads((tmp_path / "out" / "deep" / "data.json").read_text()) == {"rows": 3}
    storage.move(target, str(tmp_path / "out" / "moved.json"))
    assert not storage.exists(target) and (tmp_path / "out" / "moved.json").exists()
    storage.remove(str(tmp_path / "out" / "moved.json"))
    assert sorted(os.listdir(tmp_path / "out")) == ["deep"]
    storage.remove_tree(f"file://{tmp_path}/out")
    assert not (tmp_path / "out").exists()
    storage.remove_tree(f"file://{tmp_path}/out")  # already gone: nothing to do


def test_a_file_uri_is_percent_decoded_as_pathlib_encodes_it(tmp_path):
    path = tmp_path / "a folder with spaces" / "100% of it.csv"
    path.parent.mkdir()
    shutil.copy(GERMAN_CSV, path)
    uri = path.as_uri()
    assert "%20" in uri and "%25" in uri  # the URI is encoded; the file's name is not
    assert storage.exists(uri) and storage.is_file(uri)
    assert storage.read_bytes(uri) == Path(GERMAN_CSV).read_bytes()
    assert storage.stat(uri).size == os.path.getsize(GERMAN_CSV)


def test_an_unknown_scheme_is_named_with_the_known_ones():
    with pytest.raises(UnknownNameError) as raised:
        storage.open("s3://bucket/pipeline/Split-train/data.parquet")
    message = str(raised.value)
    assert "\n" not in message and "'s3'" in message and "file" in message
    assert not storage.reachable("gs://bucket/x") and storage.reachable("/tmp")
    with pytest.raises(UnknownNameError, match="no storage backend is registered as 'gs'"):
        storage.BACKENDS.get("gs")


def _stage(root: Path, component_id: str = "Gen") -> tuple[OutputFolders, list]:
    folders = OutputFolders(str(root), component_id, execution_id=7, pid=os.getpid(),
                            store_location=str(root / "metadata.sqlite"))
    outputs = folders.stage({"examples": Examples})
    return folders, outputs


def test_a_staged_output_is_invisible_until_its_manifest_is_written(tmp_path, tree):
    root = tmp_path / "root"
    folders, outputs = _stage(root)
    (art,) = outputs["examples"]
    split = Path(art.split_uri("train"))
    split.mkdir(parents=True)
    shutil.copy(TAXI_CSV, split / "data.csv")
    # being written: hidden, no manifest, unusable to the cache, no published folder
    assert os.path.basename(art.uri).startswith(".staging-7-")
    assert not manifest_ok(art.uri) and unusable_outputs(outputs) == [art]
    assert not has_artifact_folders(str(root))
    assert [n for n in os.listdir(root / "Gen" / "examples") if not n.startswith(".")] == []
    folders.publish(outputs)
    assert art.uri == str(root / "Gen" / "examples" / "7")
    assert manifest_ok(art.uri) and unusable_outputs(outputs) == []
    assert has_artifact_folders(str(root))
    manifest = json.loads((Path(art.uri) / MANIFEST).read_text())
    assert manifest == {"Split-train/data.csv": os.path.getsize(TAXI_CSV)}
    assert fingerprint(art.uri, skip={MANIFEST})["Split-train/data.csv"]["sha256"] == \
        _sha256(TAXI_CSV)
    # a file cut short after publishing makes the output unusable again
    with open(split.parent.parent / "7" / "Split-train" / "data.csv", "r+b") as handle:
        handle.truncate(100)
    assert unusable_outputs(outputs) == [art]


class _Observer(BaseComponent):
    """Records, from inside ``Do``, what a reader and the cache see of its own output."""

    OUTPUTS = {"examples": Examples}
    seen: dict = {}

    def Do(self, input_dict, output_dict, exec_properties, ctx):
        art = output_dict["examples"][0]
        storage.makedirs(art.split_uri("train"))
        storage.copy(TAXI_CSV, storage.join(art.split_uri("train"), "data.csv"))
        _Observer.seen = {
            "hidden": os.path.basename(art.uri).startswith("."),
            "manifest": manifest_ok(art.uri),
            "unusable": unusable_outputs(output_dict) == [art],
            "recorded": [a.uri for a in ctx.store.artifacts("Examples")],
        }


def test_a_run_is_visible_only_once_published_and_recorded(tmp_path):
    context = InteractiveContext(pipeline_name="seam", pipeline_root=str(tmp_path / "root"))
    result = context.run(_Observer())
    assert _Observer.seen == {"hidden": True, "manifest": False, "unusable": True,
                              "recorded": []}
    (art,) = result.outputs["examples"]
    assert not os.path.basename(art.uri).startswith(".") and manifest_ok(art.uri)
    assert [a.uri for a in context.store.artifacts("Examples")] == [art.uri]
    assert _sha256(Path(art.uri) / "Split-train" / "data.csv") == _sha256(TAXI_CSV)


def test_an_output_escaping_the_pipeline_root_is_refused(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(ToolkitError, match="outside the pipeline root") as raised:
        _stage(root, component_id="../escaped")
    assert "\n" not in str(raised.value)
    assert not (tmp_path / "escaped").exists()
    real, real_root, inside = storage.within(f"file://{root}/Gen/../../elsewhere", str(root))
    assert not inside and real == str(tmp_path / "elsewhere")
    assert storage.within(f"file://{root}/Gen/../Gen/examples", str(root))[2]
