"""What every object-store backend (``s3://``, ``gs://``) answers the same way, in terms of
a few primitives each store's client provides.

An object store has no folders and no rename, and these backends say so honestly:

- a "folder" is a prefix that has objects under it; ``makedirs`` has nothing to make,
  but refuses, as publishing does, a folder at or under an object's key (the store would
  take it; a reader would see a file);
- ``commit`` copies the staged prefix to its final one, top-level dot-files (the
  manifest) last, then removes the staged copy. It is not atomic, and it need not be: an
  output counts only once its manifest is there and the metadata store has recorded it
  (see :mod:`toolkit.storage`);
- a file's identity is its ETag or generation, so a changed object is a changed input;
- ``local_path`` downloads the object or prefix into a local cache folder, for libraries
  that can only read local files; it is for reading only.

Every failure becomes one :class:`StorageError` line naming the URI and what to check,
and never a credential: messages are built from the URI, the endpoint and the kind of
error, not from the request.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import posixpath
import tempfile
from typing import IO, Any, Iterator

from toolkit.errors import ToolkitError
from toolkit.storage.base import Stat


class StorageError(ToolkitError, OSError):
    """An object-store operation failed; the message names the URI and what to check.
    Also an ``OSError``, so callers that treat a missing or unreadable file as such keep
    doing so."""


class ObjectNotFound(StorageError, FileNotFoundError):
    """No object, prefix or bucket at the URI."""


class AccessDenied(StorageError, PermissionError):
    """The store refused the credentials or the operation."""


class NotAPrefix(StorageError, NotADirectoryError):
    """An object is where a prefix of objects (a folder) was expected."""


def split(uri: str) -> tuple[str, str]:
    """``(bucket, key)`` of ``scheme://bucket/key`` (the key without outer slashes)."""
    rest = uri.partition("://")[2] if "://" in uri else uri
    bucket, _, key = rest.partition("/")
    return bucket, key.strip("/")


def bare(uri: str) -> str:
    """``bucket/key``, the form the stores' clients take, without a trailing slash."""
    bucket, key = split(uri)
    return f"{bucket}/{key}" if key else bucket


class ObjectStore:
    """The Backend protocol over a store's primitives. A subclass sets ``scheme`` and
    implements ``_open``, ``_find``, ``_info``, ``_copy``, ``_delete``, ``_download`` and
    ``_translate`` (a client's exception as ``(kind, words)``), and ``_names`` where the
    store lists one level faster than everything under a prefix."""

    scheme = ""
    #: a commit is a copy then a removal
    atomic_commit = False

    # -- primitives -------------------------------------------------------------------
    def _open(self, key: str, mode: str) -> IO: ...
    def _find(self, prefix: str) -> list[str]: ...

    def _names(self, prefix: str) -> list[str]:
        """The names one level under ``prefix``, from every object under it. (The GCS
        emulator answers a delimited listing without its prefixes, so GCS keeps this.)"""
        start = len(prefix) + 1
        return [f[start:].split("/")[0] for f in self._find(prefix)
                if f.startswith(prefix + "/") and len(f) > start]

    def _info(self, key: str) -> dict[str, Any] | None: ...
    def _copy(self, source: str, target: str) -> None: ...
    def _delete(self, keys: list[str]) -> None: ...
    def _download(self, key: str, local: str) -> None: ...
    def _upload(self, local: str, key: str) -> None: ...
    def _translate(self, exc: BaseException) -> tuple[str, str]: ...
    def _bucket_exists(self, bucket: str) -> bool: ...
    def endpoint(self) -> str: ...

    # -- errors -----------------------------------------------------------------------
    def call(self, uri: str, what: str, fn, *args, **kwargs):
        """``fn(*args, **kwargs)``, with any failure as one line naming ``uri``."""
        try:
            return fn(*args, **kwargs)
        except StorageError:
            raise
        except Exception as exc:
            kind, words = self._translate(exc)
            error = {"missing": ObjectNotFound, "bucket": ObjectNotFound, "denied": AccessDenied,
                     "credentials": AccessDenied}.get(kind, StorageError)
            raise error(self._message(uri, what, kind, words)) from exc

    def _message(self, uri: str, what: str, kind: str, words: str) -> str:
        if kind == "bucket":
            return f"{uri}: bucket {split(uri)[0]!r} does not exist; create it or fix the URI"
        if kind == "missing":
            try:
                gone = not self._bucket_exists(split(uri)[0])
            except Exception:
                gone = False
            if gone:
                return f"{uri}: bucket {split(uri)[0]!r} does not exist; create it or fix the URI"
            return f"{uri}: no such object"
        if kind == "denied":
            return f"cannot {what} {uri}: access denied; {words}"
        if kind == "unreachable":
            return (f"cannot {what} {uri}: the endpoint {self.endpoint()} cannot be reached; "
                    f"{words}")
        if kind == "credentials":
            return f"cannot {what} {uri}: the credentials were refused or are missing; {words}"
        return f"cannot {what} {uri}: {words}"

    # -- the Backend protocol ---------------------------------------------------------
    def join(self, base: str, *parts: str) -> str:
        base = str(base).rstrip("/")
        return posixpath.join(base, *parts) if parts else base

    def open(self, uri: str, mode: str = "rb", **kwargs) -> IO:
        writing = any(c in mode for c in "wax")
        what = "write" if writing else "read"
        if "a" in mode or "+" in mode:
            raise StorageError(f"cannot open {uri} with mode {mode!r}: objects are written "
                               "whole; read it, then write it again")
        handle = self.call(uri, what, self._open, bare(uri), "wb" if writing else "rb")
        if not writing:
            # the clients' own line reading rescans their whole read-ahead block per line
            # (s3fs) or has none (pyarrow); a buffer gives lines, iteration and readinto
            handle = io.BufferedReader(handle, 1 << 20)
        if "b" not in mode:
            handle = io.TextIOWrapper(handle, encoding=kwargs.get("encoding") or "utf-8",
                                      errors=kwargs.get("errors"), newline=kwargs.get("newline"))
        # an object is sent when the file is closed, so errors surface there
        return Guarded(handle, uri, what, self)

    def exists(self, uri: str, follow_links: bool = True) -> bool:
        return self.is_file(uri) or self.is_dir(uri)

    def is_dir(self, uri: str, follow_links: bool = True) -> bool:
        return bool(self._level(uri))

    def is_file(self, uri: str) -> bool:
        if not split(uri)[1]:
            return False
        info = self.call(uri, "reach", self._info, bare(uri))
        return info is not None and info.get("type") == "file"

    def listdir(self, uri: str) -> list[str]:
        """The names under the prefix; none for a prefix with nothing under it (there are
        no empty folders to tell from missing ones)."""
        names = sorted(set(self._level(uri)))
        if not names and self.is_file(uri):
            raise NotAPrefix(f"{uri}: is an object, not a prefix of objects")
        return names

    def _level(self, uri: str) -> list[str]:
        """The names one level under ``uri``: one delimited listing, whatever lies deeper
        (a pipeline root's check for published folders would otherwise list every file)."""
        return self.call(uri, "list", self._names, bare(uri))

    def _files(self, uri: str) -> list[str]:
        """Every object under ``uri``, relative to it (nothing for a missing prefix)."""
        prefix = bare(uri) + "/"
        found = self.call(uri, "list", self._find, bare(uri))
        return [f[len(prefix):] for f in found if f.startswith(prefix) and len(f) > len(prefix)]

    def walk(self, uri: str) -> Iterator[str]:
        # the same order as on disk: a folder's files by name, then its subfolders by name
        tree: dict = {}
        for rel in self._files(uri):
            node = tree
            *dirs, name = rel.split("/")
            for d in dirs:
                node = node.setdefault(d, {})
            node.setdefault(None, []).append(name)

        def visit(node: dict, at: str) -> Iterator[str]:
            for name in sorted(node.get(None, [])):
                yield posixpath.join(at, name) if at else name
            for d in sorted(k for k in node if k is not None):
                yield from visit(node[d], posixpath.join(at, d) if at else d)

        yield from visit(tree, "")

    def folders(self, uri: str) -> Iterator[str]:
        seen: set[str] = set()
        for rel in self._files(uri):
            parts = rel.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                seen.add("/".join(parts[:i]))
        yield from sorted(seen)

    def stat(self, uri: str) -> Stat:
        info = self.call(uri, "read", self._info, bare(uri))
        if info is None or info.get("type") != "file":
            if info is not None or self.is_dir(uri):
                raise StorageError(f"{uri}: is a prefix with objects under it, not an object")
            raise ObjectNotFound(f"{uri}: no such object")
        return Stat(size=int(info.get("size") or 0), mtime_ns=int(info.get("mtime_ns") or 0),
                    identity=info.get("identity"), changed_ns=None)

    def makedirs(self, uri: str, exist_ok: bool = True) -> None:
        """Nothing to make: a prefix exists once an object is under it. A missing bucket
        is reported by the first write, naming it. An object at ``uri`` or above it fails,
        as a file there does on disk: the store would take keys under it, but no reader
        that sees the object as a file would find them."""
        self.refuse_object_above(uri, "make the folder")

    def refuse_object_above(self, uri: str, what: str) -> None:
        """One line naming the object, if ``uri`` or a prefix above it (in its bucket) is
        an object rather than a prefix of objects."""
        bucket, key = split(uri)
        parts = key.split("/") if key else []
        for end in range(len(parts), 0, -1):
            above = f"{self.scheme}://{bucket}/{'/'.join(parts[:end])}"
            try:
                found = self.is_file(above)
            except AccessDenied:  # a write-only credential: the write itself will tell
                return
            if found:
                raise NotAPrefix(f"cannot {what} {uri}: {above} is an object, not a prefix "
                                 "of objects; give a folder URI that is no object's key")

    def remove(self, uri: str) -> None:
        if not self.is_file(uri):
            raise ObjectNotFound(f"{uri}: no such object")
        self.call(uri, "remove", self._delete, [bare(uri)])

    def remove_tree(self, uri: str) -> None:
        files = self._files(uri)
        if files:
            self.call(uri, "remove", self._delete, [f"{bare(uri)}/{f}" for f in files])
        elif self.is_file(uri):
            self.call(uri, "remove", self._delete, [bare(uri)])

    def copy(self, source: str, target: str, keep_times: bool = False) -> None:
        self.call(source, "copy", self._copy, bare(source), bare(target))

    def link_or_copy(self, source: str, target: str, try_link: bool = True) -> bool:
        self.copy(source, target)
        return False

    def move(self, source: str, target: str) -> None:
        if self.is_file(source):
            self.copy(source, target)
            self.remove(source)
            return
        self.commit(source, target)

    def commit(self, staged: str, final: str) -> str:
        files = self._files(staged)
        if not files:
            raise StorageError(f"cannot publish {staged}: nothing is staged there")
        self.refuse_object_above(final, "publish at")
        # the manifest (a top-level dot-file) last: until it is there, the final prefix
        # is an incomplete output that neither readers nor the cache use
        files.sort(key=lambda rel: ("/" not in rel and rel.startswith("."), rel))
        for rel in files:
            self.call(final, "publish", self._copy, f"{bare(staged)}/{rel}", f"{bare(final)}/{rel}")
        self.remove_tree(staged)
        return final

    def upload_tree(self, folder: str, final: str) -> str:
        """Publish the local folder ``folder`` (staged and manifested) at ``final``: its
        files uploaded, top-level dot-files (the manifest) last. Where outputs are staged
        on local disk because the libraries writing them need local paths."""
        files = []
        for here, _, names in os.walk(folder):
            for name in names:
                files.append(os.path.relpath(os.path.join(here, name), folder).replace(os.sep, "/"))
        if not files:
            raise StorageError(f"cannot publish {folder} at {final}: nothing is staged there")
        self.refuse_object_above(final, "publish at")
        files.sort(key=lambda rel: ("/" not in rel and rel.startswith("."), rel))
        for rel in files:
            self.call(final, "publish", self._upload, os.path.join(folder, *rel.split("/")),
                      f"{bare(final)}/{rel}")
        return final

    def local_path(self, uri: str) -> str:
        """A local copy of the object or prefix, for libraries that read only local files.

        The copy is kept (one per URI) with each object's identity beside it, so asking
        again downloads only what changed since, and removes what is gone. Files written
        into the copy are not uploaded."""
        bucket, key = split(uri)
        slot = os.path.join(cache_dir(self.scheme), hashlib.sha256(uri.encode()).hexdigest()[:16])
        target = os.path.join(slot, posixpath.basename(key) or bucket)
        single = self.is_file(uri)
        listing = ({"": self.stat(uri).identity} if single else
                   self.call(uri, "list", self._identities, bare(uri)))
        if not listing:
            raise ObjectNotFound(f"{uri}: no such object or prefix")
        record = os.path.join(slot, ".identities.json")
        try:
            with open(record, encoding="utf-8") as handle:
                known = json.load(handle)
        except (OSError, ValueError):
            known = {}
        for rel, identity in sorted(listing.items()):
            local = target if single else os.path.join(target, *rel.split("/"))
            if known.get(rel) == str(identity) and os.path.isfile(local):
                continue
            os.makedirs(os.path.dirname(local), exist_ok=True)
            partial = f"{local}.part-{os.getpid()}"
            self.call(uri, "download", self._download,
                      bare(uri) if single else f"{bare(uri)}/{rel}", partial)
            os.replace(partial, local)
        if not single:
            for rel in set(known) - set(listing):
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(target, *rel.split("/")))
        updated = f"{record}.part-{os.getpid()}"
        with open(updated, "w", encoding="utf-8") as handle:
            json.dump({rel: str(identity) for rel, identity in listing.items()}, handle)
        os.replace(updated, record)
        return target

    def _identities(self, prefix: str) -> dict[str, Any]:
        """Every object under ``prefix``, relative to it, with its identity."""
        return {rel: self.stat(f"{self.scheme}://{prefix}/{rel}").identity
                for rel in self._files(f"{self.scheme}://{prefix}")}

    def within(self, uri: str, root: str) -> tuple[str, str, bool]:
        a, b = self._normal(uri), self._normal(root)
        return a, b, a == b or a.startswith(b.rstrip("/") + "/")

    def _normal(self, uri: str) -> str:
        bucket, key = split(uri)
        return f"{self.scheme}://{bucket}/{posixpath.normpath(key)}" if key \
            else f"{self.scheme}://{bucket}"

    def space(self, uri: str) -> tuple[int, int] | None:
        return None


class Guarded:
    """An open object, whose late errors (a written object is sent at ``close``) become
    the same one-line :class:`StorageError` as the others. An error inside a ``with``
    block leaves the object unsent."""

    def __init__(self, handle: Any, uri: str, what: str, store: ObjectStore):
        self._handle, self._uri, self._what, self._store = handle, uri, what, store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)

    def __iter__(self):
        # line by line through ``readline``, so a failure mid-way is the same one line
        while line := self.readline():
            yield line

    def readlines(self, hint: int = -1) -> list:
        return self._store.call(self._uri, self._what, self._handle.readlines, hint)

    def readinto(self, buffer) -> int:
        return self._store.call(self._uri, self._what, self._handle.readinto, buffer)

    def read(self, *args):
        return self._store.call(self._uri, self._what, self._handle.read, *args)

    def readline(self, *args):
        return self._store.call(self._uri, self._what, self._handle.readline, *args)

    def write(self, data):
        return self._store.call(self._uri, self._what, self._handle.write, data)

    def flush(self):
        return self._store.call(self._uri, self._what, self._handle.flush)

    def close(self):
        return self._store.call(self._uri, self._what, self._handle.close)

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        if kind is None:
            self.close()
        else:
            inner = getattr(self._handle, "buffer", self._handle)
            discard = getattr(inner, "discard", None)
            if discard is not None:
                try:
                    discard()
                except Exception:
                    pass
        return False


def cache_dir(scheme: str) -> str:
    """Where local copies of ``scheme`` objects are kept."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = os.path.join(base, "toolkit", scheme)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        path = os.path.join(tempfile.gettempdir(), f"toolkit-{scheme}-cache")
        os.makedirs(path, exist_ok=True)
    return path
