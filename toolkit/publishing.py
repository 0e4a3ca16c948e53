"""Publishing an execution's outputs whole or not at all.

An executor writes each output into ``<root>/<component>/<key>/.staging-<execution>-<pid>``.
Only after ``Do`` returns is each folder given a manifest (every file with its size),
written last, and committed to ``<root>/<component>/<key>/<execution>`` (a rename on
local disk; see ``toolkit.storage`` for backends without one); the metadata store's
record is the commit point. So readers and the cache never see half an output, and
a process killed midway leaves only folders named after its execution and pid,
which the next run removes. Every file operation goes through ``toolkit.storage``. The manifest lets a later run tell that a published
folder is still intact before reusing it, and a disk that fills up mid-write is
reported as such instead of as whatever error the executor happened to hit.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
import time

from toolkit import storage
from toolkit._text import show_controls
from toolkit.artifacts import Artifact
from toolkit.errors import ToolkitError

#: written last into each published output folder: relative file path -> size in bytes
MANIFEST = ".toolkit-manifest.json"


def staging_dir(output_parent: str, execution_id: int, pid: int) -> str:
    """Where execution ``execution_id`` of process ``pid`` writes one output before publishing."""
    return storage.join(output_parent, f".staging-{execution_id}-{pid}")


def final_dir(output_parent: str, execution_id: int) -> str:
    """Where one output of execution ``execution_id`` lives once published."""
    return storage.join(output_parent, str(execution_id))


def scratch_dir(pipeline_root: str, execution_id: int, pid: int) -> str:
    """The executor's scratch folder (``ExecutorContext.tmp_dir``) for one execution: on
    local disk, under the root or, for an object-store root, under its local staging
    folder (scratch files are for libraries that write local files)."""
    if storage.scheme_of(pipeline_root) != "file":
        return os.path.join(local_staging_root(pipeline_root), ".tmp", f"{execution_id}-{pid}")
    return storage.join(pipeline_root, ".tmp", f"{execution_id}-{pid}")


def staging_parent(pipeline_root: str, component_id: str, key: str) -> str:
    """The folder an output of ``component_id`` under ``key`` is staged in.

    On local disk, beside its final place, so the commit is a rename. Under an object
    store, on local disk under :func:`local_staging_root`: TensorFlow, TFT, TFDV, pyarrow
    and Beam's local runners write only local files, and the commit uploads the staged
    folder, manifest last."""
    if storage.scheme_of(pipeline_root) != "file":
        return os.path.join(local_staging_root(pipeline_root), component_id, key)
    return storage.join(pipeline_root, component_id, key)


def local_staging_root(pipeline_root: str) -> str:
    """This machine's staging folder for the object-store root ``pipeline_root``: one per
    root, so recovery finds what a dead process staged for it."""
    digest = hashlib.sha256(str(pipeline_root).encode()).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), "toolkit-staging", digest)


class OutputFolders:
    """One execution's output folders: staged before ``Do``, published after it, or
    removed if anything fails in between."""

    def __init__(self, pipeline_root: str, component_id: str, execution_id: int, pid: int,
                 store_location: str):
        self.pipeline_root = pipeline_root
        self.component_id = component_id
        self.execution_id = execution_id
        self.pid = pid
        self.store_location = store_location
        self.staging: dict[str, str] = {}
        self.finals: dict[str, str] = {}
        self.published: set[str] = set()

    def stage(self, output_types: dict[str, type[Artifact]]) -> dict[str, list[Artifact]]:
        """Create an empty staging folder per output key; the artifacts point at them."""
        outputs: dict[str, list[Artifact]] = {}
        for key, art_type in output_types.items():
            parent = storage.join(self.pipeline_root, self.component_id, key)
            check_inside(parent, self.pipeline_root)
            storage.makedirs(parent)
            check_inside(parent, self.pipeline_root)
            staged = staging_parent(self.pipeline_root, self.component_id, key)
            storage.makedirs(staged)
            self.staging[key] = staging_dir(staged, self.execution_id, self.pid)
            self.finals[key] = final_dir(parent, self.execution_id)
            move_aside_unknown(self.finals[key], self.component_id, self.store_location)
            storage.makedirs(self.staging[key], exist_ok=False)
            outputs[key] = [art_type(uri=self.staging[key], producer=self.component_id)]
        return outputs

    def publish(self, outputs: dict[str, list[Artifact]]) -> None:
        """Write each output's manifest (last), commit it to its final place, repoint its
        artifacts there; the metadata store's record that follows makes it visible."""
        for key, arts in outputs.items():
            for art in arts:
                write_manifest(art.uri)
            self.finals[key] = storage.commit(self.staging[key], self.finals[key])
            self.published.add(key)
            for art in arts:
                art.uri = self.finals[key]

    def discard(self) -> None:
        """Remove everything this execution wrote, staged or already published."""
        for key, staged in self.staging.items():
            final = self.finals[key] if key in self.published else None
            for path in (staged, final):
                if path and storage.is_dir(path):
                    storage.remove_tree(path)


def remove_abandoned(pipeline_root: str, component_id: str, execution_id: int, pid: int) -> None:
    """Remove what an execution whose process died left on disk: its scratch and staging
    folders, and any folder it published but never registered (no artifact points at it)."""
    storage.remove_tree(scratch_dir(pipeline_root, execution_id, pid))
    component_dir = storage.join(pipeline_root, component_id)
    keys = set(storage.listdir(component_dir)) if storage.is_dir(component_dir) else set()
    staged_dir = staging_parent(pipeline_root, component_id, "")
    if staged_dir != storage.join(component_dir, "") and storage.is_dir(staged_dir):
        keys |= set(storage.listdir(staged_dir))
    for key in sorted(keys):
        storage.remove_tree(staging_dir(staging_parent(pipeline_root, component_id, key),
                                        execution_id, pid))
        storage.remove_tree(final_dir(storage.join(component_dir, key), execution_id))


def file_sizes(folder: str) -> dict[str, int]:
    """Every file under ``folder``: relative path -> size in bytes (a manifest)."""
    return {rel: storage.stat(storage.join(folder, rel)).size for rel in storage.walk(folder)}


#: what :func:`fingerprint` records of a file: its sha256 and size, and a stamp
#: (inode, size, mtime, ctime in ns) that changes whenever the file is written, replaced,
#: or has its times set back: the kernel sets ctime on every such change and no tool can
#: set it. The stamp makes the check of an unchanged folder O(files); the hash decides.
_STAMP = "stamp"


def _stamp(st: storage.Stat) -> list:
    return [st.identity, st.size, st.mtime_ns, st.changed_ns]


def sha256_file(path: str) -> str:
    """The file's sha256, hex."""
    digest = hashlib.sha256()
    with storage.open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _walk_files(folder: str) -> list[str]:
    return sorted(storage.walk(folder))


def fingerprint(folder: str, skip: frozenset[str] | set[str] = frozenset(),
                known: dict[str, dict] | None = None) -> dict[str, dict]:
    """Every file under ``folder`` but ``skip``: relative path -> ``{"size", "sha256",
    "stamp"}``. A file of ``known`` (an earlier fingerprint in this process) whose inode,
    size and mtime are unchanged keeps its hash instead of being read again."""
    files = {}
    for rel in _walk_files(folder):
        if rel in skip:
            continue
        st = storage.stat(storage.join(folder, rel))
        old = (known or {}).get(rel)
        if old and old.get(_STAMP, [None])[:3] == _stamp(st)[:3]:
            digest = old["sha256"]
        else:
            digest = sha256_file(storage.join(folder, rel))
        files[rel] = {"size": st.size, "sha256": digest, _STAMP: _stamp(st)}
    return files


def has_hashes(files: object) -> bool:
    """Whether ``files`` is a fingerprint record with a sha256 per file; records written
    before hashes were kept hold sizes only, which prove nothing about content."""
    return isinstance(files, dict) and all(
        isinstance(f, dict) and "sha256" in f for f in files.values())


def without_stamps(files: dict[str, dict]) -> dict[str, dict]:
    """A fingerprint as a record that outlives this filesystem: size and sha256 per file."""
    return {rel: {"size": f["size"], "sha256": f["sha256"]} for rel, f in files.items()}


def changed_files(folder: str, files: dict[str, dict], skip: frozenset[str] | set[str] =
                  frozenset(), every_byte: bool = False) -> list[str]:
    """What differs between ``folder`` and the fingerprint ``files``, one entry per file
    (``"<path> (missing)"``, ``"(added)"``, ``"(changed)"``); empty when identical.

    Cheap by default: a file whose stamp is as recorded is taken as unchanged without
    reading it, so an intact folder costs one ``stat`` per file; a file whose stamp moved
    (written, replaced, touched, or given another hard link) is hashed, and counts as
    changed only if its bytes differ. ``every_byte`` hashes every file regardless."""
    present = set(_walk_files(folder)) - set(skip) if storage.is_dir(folder) else set()
    found = [f"{rel} (missing)" for rel in sorted(set(files) - present)]
    found += [f"{rel} (added)" for rel in sorted(present - set(files))]
    for rel in sorted(present & set(files)):
        want, path = files[rel], storage.join(folder, rel)
        try:
            st = storage.stat(path)
            if st.size != want.get("size"):
                found.append(f"{rel} (changed)")
            elif (every_byte or want.get(_STAMP) != _stamp(st)) and \
                    sha256_file(path) != want.get("sha256"):
                found.append(f"{rel} (changed)")
        except OSError:
            found.append(f"{rel} (missing)")
    return found


def link_or_copy(source: str, target: str, only: set[str] | None = None) -> bool:
    """Make ``target`` the tree of ``source`` (its folders, and of its files those in
    ``only`` when given, as relative paths) by hard links where the filesystem allows (no
    second copy on disk), else by copying; True when every file was linked."""
    linked = True
    if not storage.is_dir(source):
        return linked
    storage.makedirs(target)
    for folder in storage.folders(source):
        storage.makedirs(storage.join(target, folder))
    for rel in storage.walk(source):
        if only is not None and os.path.normpath(rel) not in only:
            continue
        linked = storage.link_or_copy(storage.join(source, rel), storage.join(target, rel),
                                      try_link=linked)
    return linked


def sizes_match(folder: str, files: dict[str, int]) -> bool:
    """True when every file of the manifest ``files`` is still under ``folder`` with its
    size (files added since do not matter)."""
    for rel, size in files.items():
        try:
            if storage.stat(storage.join(folder, rel)).size != size:
                return False
        except OSError:
            return False
    return True


def write_manifest(uri: str) -> None:
    """Record every file under ``uri`` with its size, in ``uri``'s manifest."""
    files = file_sizes(uri)
    storage.write_text(storage.join(uri, MANIFEST), json.dumps(files, sort_keys=True))


def manifest_ok(uri: str) -> bool:
    """True when every file the execution wrote is still there with its size."""
    try:
        files = json.loads(storage.read_text(storage.join(uri, MANIFEST)))
    except (OSError, ValueError):
        return False
    return isinstance(files, dict) and sizes_match(uri, files)


def has_artifact_folders(pipeline_root: str) -> bool:
    """True when published ``<root>/<component>/<key>/<execution id>`` folders exist."""
    try:
        components = [storage.join(pipeline_root, name) for name in storage.listdir(pipeline_root)
                      if not name.startswith(".")]
        for component in components:
            if not storage.is_dir(component, follow_links=False):
                continue
            for key in storage.listdir(component):
                folder = storage.join(component, key)
                if storage.is_dir(folder) and any(n.isdigit() for n in storage.listdir(folder)):
                    return True
    except OSError:
        return False
    return False


def check_inside(path: str, pipeline_root: str) -> None:
    """Refuse an output folder that a symlink leads out of the pipeline root."""
    real, real_root, inside = storage.within(path, pipeline_root)
    if not inside:
        raise ToolkitError(f"output folder {path} resolves to {real}, outside the pipeline root "
                           f"{real_root} (a symlink?); refusing to write there")


def move_aside_unknown(final: str, component_id: str, store_location: str) -> None:
    """A folder already at an execution's final place was left by another metadata store
    (this store just allotted the id): keep it, but out of the way."""
    if not storage.exists(final, follow_links=False):
        return
    aside = storage.join(os.path.dirname(final),
                         f".orphaned-{os.path.basename(final)}-{time.time_ns()}")
    storage.move(final, aside)
    print(show_controls(f"[{component_id}] {final} is not known to {store_location} (left by "
                        f"an earlier metadata store); moved it to {aside}"), flush=True)


def is_disk_full(exc: BaseException) -> bool:
    """True when ``exc`` (or the text an executor wrapped it in) says the disk is full."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc)
    return "No space left on device" in text or "Disk quota exceeded" in text


def disk_full_message(path: str, reason: str) -> str:
    """What to tell the user when writing under ``path`` filled the disk (``reason``: the
    error as one line)."""
    usage = storage.space(path)
    free = f" ({usage[0] / 2**20:,.1f} MB free of {usage[1] / 2**20:,.1f} MB now)" if usage \
        else ""
    return (f"no space left on the device holding {path}{free} while writing this execution's "
            f"outputs; its partial outputs were removed. Free space or choose another "
            f"pipeline_root ({reason})")
