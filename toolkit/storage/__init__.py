"""The storage seam: every read, write, listing, move and removal of artifact files goes
through here, by URI, so that where artifacts live is one decision.

A URI is a plain path or ``file://...`` (local disk, the only backend for now) or
``<scheme>://...`` for a backend registered under that scheme (``register_backend``); an
unknown scheme fails in one line naming it and the schemes known.

Publishing, in terms every backend can honour (``toolkit/publishing.py`` applies it):

1. An execution writes each output under a hidden prefix beside its final place,
   ``<root>/<component>/<key>/.staging-<execution>-<pid>``. Nothing reads hidden prefixes.
2. When ``Do`` returns, the output's manifest (every file with its size) is written
   last; an output without a manifest is incomplete and neither readers nor the cache
   use it.
3. ``commit`` hands the staged output to its final URI. The local backend renames the
   folder (atomic there); a backend without rename may copy it or leave it staged and
   return that URI. The seam never requires a rename.
4. The metadata store's record of the execution and its artifact URIs is the commit
   point: readers find outputs through the store, so an output is visible only once it
   is recorded, whatever the backend did in step 3.

Finding files by pattern (``glob``), in terms an object store can honour: a pattern is
a fixed prefix, then a part with wildcards, and only that part has any. The prefix is
everything before the ``/`` that precedes the first ``*``, ``?`` or ``[``
(``data/2024/*/part-*.csv``: the prefix ``data/2024``, the part ``*/part-*.csv``); a
folder whose own name holds such characters is given as ``root`` to ``glob_under``,
which takes it literally. A backend lists what lies under the prefix and matches the
rest of each name: ``*``, ``?`` and ``[...]`` match within one name, ``**`` (with
``recursive``, the default) any number of folders, and no wildcard matches a name's
leading ``.``. Folders match too, where the backend has them, so a caller that wants
files asks ``is_file``. The URIs come back sorted, in the pattern's own form (a
``file://`` pattern gives URI-encoded ``file://`` URIs, as ``pathlib`` encodes them).

Third-party libraries that need a path on disk (TensorFlow SavedModel, TFT, TFDV,
pyarrow's Parquet files, Beam) get one from :func:`local_path`: the path itself for
local URIs; a remote backend will stage a local copy there.
"""
from __future__ import annotations

import errno
from typing import IO, Iterator

from toolkit._registry import Registry
from toolkit.errors import ToolkitError, UnknownNameError
from toolkit.storage.base import Backend, Stat, glob_by_listing
from toolkit.storage.local import LocalBackend
from toolkit.storage.gcs import GcsBackend
from toolkit.storage.s3 import S3Backend

__all__ = ["Backend", "Stat", "BACKENDS", "register_backend", "backend_for", "scheme_of", "reachable",
           "join", "open", "read_bytes", "read_text", "write_bytes", "write_text", "exists",
           "is_dir", "is_file", "listdir", "glob", "glob_under", "walk", "folders", "stat",
           "makedirs", "remove", "remove_tree", "copy", "copy_tree", "link_or_copy", "move",
           "commit", "local_path", "within", "resolve", "space"]

#: backends by URI scheme; a plain path is ``file``
BACKENDS: Registry[Backend] = Registry("storage backend")
BACKENDS.register("file", LocalBackend())
BACKENDS.register("s3", S3Backend())
BACKENDS.register("gs", GcsBackend())


def register_backend(scheme: str, backend: Backend) -> Backend:
    """Make ``backend`` answer for ``<scheme>://`` URIs."""
    return BACKENDS.register(scheme, backend)


def scheme_of(uri: str) -> str:
    """The URI's scheme; ``file`` for a plain path."""
    uri = str(uri)
    head, sep, _ = uri.partition("://")
    if not sep or not head or "/" in head or not head.replace("+", "").replace("-", "") \
            .replace(".", "").isalnum():
        return "file"
    return head.lower()


def backend_for(uri: str) -> Backend:
    """The backend that answers for ``uri``; one line naming the scheme and the known
    ones when none does."""
    scheme = scheme_of(uri)
    backend = BACKENDS.find(scheme)
    if backend is None:
        raise UnknownNameError(
            f"cannot reach {uri}: no storage backend for scheme {scheme!r}; known schemes: "
            f"{', '.join(BACKENDS.names())} (a plain path is 'file')")
    return backend


def reachable(uri: str) -> bool:
    """Whether a registered backend answers for ``uri``'s scheme (an artifact recorded
    elsewhere may live where this process cannot look)."""
    return scheme_of(uri) in BACKENDS


def join(base: str, *parts: str) -> str:
    """``base`` with ``parts`` appended, in the form ``base``'s backend uses."""
    return backend_for(base).join(str(base), *parts)


def open(uri: str, mode: str = "rb", **kwargs) -> IO:  # noqa: A001 - the seam's open
    """The file at ``uri``, as the built-in ``open`` would return it (``mode``,
    ``encoding``, ``errors``, ``newline``)."""
    return backend_for(uri).open(str(uri), mode, **kwargs)


def read_bytes(uri: str) -> bytes:
    with open(uri, "rb") as handle:
        return handle.read()


def read_text(uri: str, encoding: str = "utf-8", errors: str = "strict") -> str:
    with open(uri, "r", encoding=encoding, errors=errors) as handle:
        return handle.read()


def write_bytes(uri: str, data: bytes) -> None:
    with open(uri, "wb") as handle:
        handle.write(data)


def write_text(uri: str, text: str, encoding: str = "utf-8") -> None:
    with open(uri, "w", encoding=encoding) as handle:
        handle.write(text)


def exists(uri: str, follow_links: bool = True) -> bool:
    """Whether something is at ``uri`` (``follow_links=False``: a dangling link counts)."""
    return backend_for(uri).exists(str(uri), follow_links)


def is_dir(uri: str, follow_links: bool = True) -> bool:
    """Whether ``uri`` is a folder (a prefix with objects under it, on an object store)."""
    return backend_for(uri).is_dir(str(uri), follow_links)


def is_file(uri: str) -> bool:
    return backend_for(uri).is_file(str(uri))


def listdir(uri: str) -> list[str]:
    """The names directly under ``uri``, unsorted (``OSError`` when it is no folder)."""
    return backend_for(uri).listdir(str(uri))


def glob(pattern: str, recursive: bool = True) -> list[str]:
    """The URIs matching ``pattern``, sorted (see the module docstring for what a pattern
    is); empty when nothing matches. ``recursive=False`` makes ``**`` match as ``*``."""
    root, rest = _glob_prefix(str(pattern))
    return glob_under(root, rest, recursive, as_uris=True)


def glob_under(root: str, pattern: str, recursive: bool = True,
               as_uris: bool = False) -> list[str]:
    """What lies under the folder ``root`` (taken literally) and matches ``pattern``:
    paths relative to ``root``, ``/``-separated and sorted, or with ``as_uris`` the URIs
    themselves. A backend without a pattern search of its own is listed under ``root``
    and matched (:func:`~toolkit.storage.base.glob_by_listing`)."""
    backend = backend_for(root)
    search = getattr(backend, "glob", None)
    found = (search(str(root), str(pattern), recursive) if search is not None
             else glob_by_listing(backend, str(root), str(pattern), recursive))
    return sorted(backend.join(str(root), rel) for rel in found) if as_uris else found


def _glob_prefix(pattern: str) -> tuple[str, str]:
    """``(fixed prefix, wildcard part)``: the split at the separator before the first
    wildcard; ``("", pattern)`` when there is none (a relative pattern in one folder)."""
    first = next((i for i, c in enumerate(pattern) if c in "*?["), len(pattern))
    cut = pattern.rfind("/", 0, first)
    if cut < 0:
        return "", pattern
    root = pattern[:cut]
    if not root or root.endswith("/"):  # "/x*", "file:///x*": the prefix keeps its slash
        root = pattern[:cut + 1]
    return root, pattern[cut + 1:]


def walk(uri: str) -> Iterator[str]:
    """Every file under ``uri`` as a path relative to it, depth first: a folder's files
    by name, then its subfolders by name. Nothing for a missing folder; links to folders
    are not followed."""
    return backend_for(uri).walk(str(uri))


def folders(uri: str) -> Iterator[str]:
    """Every folder under ``uri`` as a path relative to it (empty ones too, where the
    backend has folders; an object store has only those its files imply)."""
    return backend_for(uri).folders(str(uri))


def stat(uri: str) -> Stat:
    """The file's size, mtime and identity (``OSError`` when it is missing)."""
    return backend_for(uri).stat(str(uri))


def makedirs(uri: str, exist_ok: bool = True) -> None:
    """Make the folder ``uri`` and its parents (nothing to do where folders are implicit)."""
    backend_for(uri).makedirs(str(uri), exist_ok)


def remove(uri: str) -> None:
    """Remove one file (``OSError`` when it is missing)."""
    backend_for(uri).remove(str(uri))


def remove_tree(uri: str) -> None:
    """Remove ``uri`` and everything under it; nothing when it is missing."""
    backend_for(uri).remove_tree(str(uri))


def copy(source: str, target: str, keep_times: bool = False) -> None:
    """Copy one file's bytes (and its times with ``keep_times``, within one backend).
    Between backends (a pushed version on an object store into a local staging folder,
    say) the bytes are streamed from one to the other."""
    if scheme_of(source) != scheme_of(target):
        _stream(str(source), str(target))
        return
    _same_backend(source, target).copy(str(source), str(target), keep_times)


def copy_tree(source: str, target: str) -> None:
    """Copy the folder ``source`` to ``target``, which must not exist yet: its folders
    (empty ones too), and its files with their times. Links to folders are not followed
    (as ``walk`` does not); a missing ``source`` raises ``FileNotFoundError``."""
    if not is_dir(source):
        raise FileNotFoundError(errno.ENOENT, "no folder to copy", str(source))
    makedirs(target, exist_ok=False)
    for folder in folders(source):
        makedirs(join(target, folder))
    for rel in walk(source):
        copy(join(source, rel), join(target, rel), keep_times=True)


def link_or_copy(source: str, target: str, try_link: bool = True) -> bool:
    """Make ``target`` the file ``source``: a hard link where the backend can (no second
    copy), else a copy with its times; True when linked."""
    if scheme_of(source) != scheme_of(target):
        _stream(str(source), str(target))
        return False
    return _same_backend(source, target).link_or_copy(str(source), str(target), try_link)


def move(source: str, target: str) -> None:
    """Give a file or folder another URI (replacing a file there). Atomic on local disk;
    elsewhere a copy then a removal, so callers never rely on atomicity."""
    _same_backend(source, target).move(str(source), str(target))


def commit(staged: str, final: str) -> str:
    """Hand a staged, manifested output to its final place; the URI it now lives at
    (``final`` on local disk). See the module docstring for what makes it safe.

    An output staged on local disk for an object-store ``final`` (see
    :func:`toolkit.publishing.staging_parent`) is uploaded, manifest last, and the local
    copy removed."""
    if scheme_of(staged) == "file" and scheme_of(final) != "file":
        target = backend_for(final)
        upload = getattr(target, "upload_tree", None)
        if upload is None:
            raise ToolkitError(f"cannot publish {staged} at {final}: the {scheme_of(final)!r} "
                               "backend cannot take a local folder")
        done = upload(BACKENDS.get("file").local_path(str(staged)), str(final))
        remove_tree(staged)
        return done
    return _same_backend(staged, final).commit(str(staged), str(final))


def local_path(uri: str) -> str:
    """A filesystem path for a library that can only read or write local files."""
    return backend_for(uri).local_path(str(uri))


def within(uri: str, root: str) -> tuple[str, str, bool]:
    """``(resolved uri, resolved root, whether uri is root or under it)``, with ``..`` and
    links resolved: what every "outside the root" refusal asks."""
    if scheme_of(uri) != scheme_of(root):
        return str(uri), str(root), False
    return backend_for(uri).within(str(uri), str(root))


def resolve(uri: str) -> str:
    """``uri`` with ``..`` and links resolved (the real path, on local disk): the form in
    which two spellings of one folder compare equal."""
    return backend_for(uri).within(str(uri), str(uri))[0]


def space(uri: str) -> tuple[int, int] | None:
    """``(free, total)`` bytes where ``uri`` lives, or None when unknown."""
    return backend_for(uri).space(str(uri))


def _stream(source: str, target: str) -> None:
    """One file's bytes from one backend to another, in blocks."""
    with open(source, "rb") as reader, open(target, "wb") as writer:
        while block := reader.read(1 << 22):
            writer.write(block)


def _same_backend(source: str, target: str) -> Backend:
    backend = backend_for(source)
    if backend_for(target) is not backend:
        raise ToolkitError(f"cannot move or copy {source} to {target}: they are on "
                               f"different storage backends ({scheme_of(source)!r}, "
                               f"{scheme_of(target)!r})")
    return backend
