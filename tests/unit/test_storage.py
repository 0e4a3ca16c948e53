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
        storage.open("hdfs://namenode/pipeline/Split-train/data.parquet")
    message = str(raised.value)
    assert "\n" not in message and "'hdfs'" in message
    for known in ("file", "s3", "gs"):
        assert f"{known}" in message
    assert not storage.reachable("hdfs://namenode/x") and storage.reachable("/tmp")
    assert storage.reachable("s3://bucket/x") and storage.reachable("gs://bucket/x")
    with pytest.raises(UnknownNameError, match="no storage backend is registered as 'hdfs'"):
        storage.BACKENDS.get("hdfs")


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


@pytest.fixture
def odd_tree(tmp_path) -> Path:
    """Real CSVs under names a URI must encode: a space and ``%`` in folders and files, a
    hidden file, a folder named like a wildcard (``[x]``)."""
    root = tmp_path / "raw data 100%"
    for rel, source in {"taxi 1.csv": TAXI_CSV, "50% german.csv": GERMAN_CSV,
                        "span 2/part-0.csv": TAXI_CSV, "span 2/deep er/part-1.csv": GERMAN_CSV,
                        ".hidden.csv": TAXI_CSV, "notes.txt": GERMAN_CSV,
                        "[x]/y.csv": GERMAN_CSV}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, root / rel)
    return root


def test_glob_lists_by_pattern_in_the_patterns_own_form(odd_tree):
    """A ``file://`` pattern gives encoded ``file://`` URIs (as pathlib writes them) that
    read back the files' bytes; a plain pattern gives plain paths; hidden names and other
    suffixes stay out; ``**`` crosses folders only when recursive."""
    uri = odd_tree.as_uri()
    assert "%20" in uri and "%25" in uri
    top = ["50% german.csv", "taxi 1.csv"]
    assert storage.glob(f"{uri}/*.csv") == sorted((odd_tree / n).as_uri() for n in top)
    assert storage.glob(f"{odd_tree}/*.csv") == sorted(str(odd_tree / n) for n in top)
    every = top + ["[x]/y.csv", "span 2/deep er/part-1.csv", "span 2/part-0.csv"]
    found = storage.glob(f"{uri}/**/*.csv")
    assert found == sorted((odd_tree / n).as_uri() for n in every)
    for rel, match in zip(sorted(every, key=lambda n: (odd_tree / n).as_uri()), found):
        assert storage.read_bytes(match) == (odd_tree / rel).read_bytes()
    assert storage.glob(f"{odd_tree}/**/part-*.csv", recursive=False) == [
        str(odd_tree / "span 2" / "part-0.csv")]  # "**" as "*": one folder deep
    assert storage.glob(f"{odd_tree}/*/part-*.csv") == [str(odd_tree / "span 2/part-0.csv")]
    # a percent-escape in a file:// pattern is a character, never a wildcard
    assert storage.glob(f"{uri}/%5Bx%5D/*.csv") == [(odd_tree / "[x]" / "y.csv").as_uri()]
    assert storage.glob(f"{odd_tree}/[x]/*.csv") == []  # "[x]" as a wildcard: the name "x"
    assert storage.glob(f"{uri}/missing/*.csv") == [] == storage.glob(f"{odd_tree}/nothing*")


def test_glob_under_takes_the_root_literally_and_answers_relative_paths(odd_tree):
    assert storage.glob_under(str(odd_tree / "[x]"), "*.csv") == ["y.csv"]
    assert storage.glob_under(str(odd_tree), "span [0-9]/**/*.csv") == [
        "span 2/deep er/part-1.csv", "span 2/part-0.csv"]
    assert storage.glob_under(str(odd_tree), ".*") == [".hidden.csv"]
    assert storage.glob_under(str(odd_tree / "[x]"), "*.csv", as_uris=True) == [
        str(odd_tree / "[x]" / "y.csv")]


def test_an_object_store_answers_glob_by_listing_the_prefix(odd_tree):
    """What a backend without a pattern search of its own does (list the prefix, match each
    name) finds exactly what the local search finds."""
    from toolkit.storage.base import glob_by_listing
    from toolkit.storage.local import LocalBackend

    local, root = LocalBackend(), str(odd_tree)
    for pattern in ("*.csv", "**/*.csv", "**", "*", "span ?/*", "[5t]*", "[!t]*.csv", ".*",
                    "span 2/**", "**/part-[0-9].csv", "*/deep er/*"):
        assert glob_by_listing(local, root, pattern) == local.glob(root, pattern), pattern
    assert glob_by_listing(local, root, "**/*.csv", recursive=False) == \
        local.glob(root, "**/*.csv", recursive=False)


def test_copy_tree_copies_every_folder_and_file_with_its_times(odd_tree, tmp_path):
    (odd_tree / "empty").mkdir()
    target = tmp_path / "copy of it"
    storage.copy_tree(odd_tree.as_uri(), target.as_uri())
    assert list(storage.walk(str(target))) == list(storage.walk(str(odd_tree)))
    assert sorted(storage.folders(str(target))) == sorted(storage.folders(str(odd_tree)))
    for rel in storage.walk(str(odd_tree)):
        assert _sha256(target / rel) == _sha256(odd_tree / rel)
        assert os.stat(target / rel).st_mtime_ns == os.stat(odd_tree / rel).st_mtime_ns
    with pytest.raises(FileExistsError):  # never into a folder that is already there
        storage.copy_tree(str(odd_tree), str(target))
    with pytest.raises(FileNotFoundError):
        storage.copy_tree(str(tmp_path / "missing"), str(tmp_path / "elsewhere"))
    assert storage.resolve(f"{target}/../copy of it/./[x]") == str(target / "[x]")
