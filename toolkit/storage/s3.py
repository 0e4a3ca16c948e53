"""The ``s3://`` backend of the storage seam: Amazon S3 and S3-compatible servers (MinIO,
Ceph, moto), through s3fs.

Settings are AWS's own, read where every AWS tool reads them, so a user sets them once:
``AWS_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_S3``) for a server other than Amazon's,
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``,
``AWS_DEFAULT_REGION``/``AWS_REGION`` and ``AWS_PROFILE`` with ``~/.aws/config`` and
``~/.aws/credentials``. botocore finds the credentials itself; the toolkit never copies
them anywhere, and no message here names anything but the URI and the endpoint.

An object store has no folders and no rename, and this backend says so honestly:

- a "folder" is a prefix that has objects under it; ``makedirs`` has nothing to do;
- ``commit`` copies the staged prefix to its final one, top-level dot-files (the
  manifest) last, then removes the staged copy. It is not atomic, and it need not be: an
  output counts only once its manifest is there and the metadata store has recorded it
  (see :mod:`toolkit.storage`);
- a file's identity is its ETag, so a changed object is a changed input;
- ``local_path`` downloads the object or prefix into a local cache folder, for libraries
  that can only read local files; it is for reading only.

Errors become one line naming the URI and what to check: the endpoint, the bucket, or
the permissions.
"""
from __future__ import annotations

import hashlib
import os
import posixpath
import tempfile
import threading
from typing import IO, Any, Iterator

from toolkit.errors import ToolkitError
from toolkit.storage.base import Stat

SCHEME = "s3"


def endpoint_url() -> str | None:
    """The S3 endpoint the standard AWS settings name, or None for Amazon's own."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def region() -> str | None:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


class StorageError(ToolkitError, OSError):
    """An object-store operation failed; the message names the URI and what to check.
    Also an ``OSError``, so callers that treat a missing or unreadable file as such keep
    doing so."""


def _split(uri: str) -> tuple[str, str]:
    """``(bucket, key)`` of ``s3://bucket/key``."""
    rest = uri[len("s3://"):] if uri.startswith("s3://") else uri
    bucket, _, key = rest.partition("/")
    return bucket, key.strip("/")


def _bare(uri: str) -> str:
    """``bucket/key``, the form s3fs takes, without a trailing slash."""
    bucket, key = _split(uri)
    return f"{bucket}/{key}" if key else bucket


class S3Backend:
    """Objects on S3 or an S3-compatible server, by ``s3://bucket/key`` URIs."""

    scheme = SCHEME
    #: a commit is a copy then a removal
    atomic_commit = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fs: Any = None
        self._settings: tuple | None = None

    # -- the client -------------------------------------------------------------------
    def filesystem(self) -> Any:
        """The s3fs filesystem for the current settings (a new one when they changed, so a
        notebook that sets ``AWS_ENDPOINT_URL`` after the first use is honoured)."""
        settings = (endpoint_url(), region(), os.environ.get("AWS_PROFILE"),
                    os.environ.get("AWS_ACCESS_KEY_ID"))
        with self._lock:
            if self._fs is None or settings != self._settings:
                import s3fs

                client_kwargs = {}
                if settings[0]:
                    client_kwargs["endpoint_url"] = settings[0]
                if settings[1]:
                    client_kwargs["region_name"] = settings[1]
                kwargs: dict[str, Any] = {"client_kwargs": client_kwargs,
                                          "skip_instance_cache": True}
                if settings[2]:
                    kwargs["profile"] = settings[2]
                self._fs = s3fs.S3FileSystem(**kwargs)
                self._settings = settings
            return self._fs

    def _call(self, uri: str, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except StorageError:
            raise
        except FileNotFoundError as exc:
            raise StorageError(f"{uri}: {_missing(uri, exc)}") from exc
        except PermissionError as exc:
            raise StorageError(f"cannot {what} {uri}: access denied; check the credentials "
                               "(AWS_ACCESS_KEY_ID, AWS_PROFILE) and the bucket's policy") \
                from exc
        except OSError as exc:
            raise StorageError(f"cannot {what} {uri}: {_reason(exc)}") from exc
        except Exception as exc:  # botocore's connection and client errors
            raise StorageError(f"cannot {what} {uri}: {_reason(exc)}") from exc

    # -- the Backend protocol ---------------------------------------------------------
    def join(self, base: str, *parts: str) -> str:
        base = str(base).rstrip("/")
        return posixpath.join(base, *parts) if parts else base

    def open(self, uri: str, mode: str = "rb", **kwargs) -> IO:
        what = "write" if any(c in mode for c in "wax") else "read"
        handle = self._call(uri, what, self.filesystem().open, _bare(uri), mode, **kwargs)
        # s3fs sends a written object when the file is closed, so errors surface there
        return _Guarded(handle, uri, what, self) if what == "write" else handle

    def exists(self, uri: str, follow_links: bool = True) -> bool:
        bucket, key = _split(uri)
        fs = self.filesystem()
        if not key:
            return self._call(uri, "reach", fs.exists, bucket)
        return self._call(uri, "reach", fs.exists, _bare(uri))

    def is_dir(self, uri: str, follow_links: bool = True) -> bool:
        return bool(self._call(uri, "reach", self.filesystem().isdir, _bare(uri)))

    def is_file(self, uri: str) -> bool:
        return bool(self._call(uri, "reach", self.filesystem().isfile, _bare(uri)))

    def listdir(self, uri: str) -> list[str]:
        fs = self.filesystem()
        fs.invalidate_cache(_bare(uri))
        entries = self._call(uri, "list", fs.ls, _bare(uri), detail=False)
        prefix = _bare(uri) + "/"
        names = [e[len(prefix):] if e.startswith(prefix) else posixpath.basename(e)
                 for e in entries]
        names = [n.strip("/") for n in names if n.strip("/")]
        if not names and not fs.isdir(_bare(uri)):
            raise StorageError(f"{uri}: no such folder (no objects under this prefix)")
        return names

    def _files(self, uri: str) -> list[str]:
        """Every object under ``uri``, relative to it (nothing for a missing prefix)."""
        fs = self.filesystem()
        fs.invalidate_cache(_bare(uri))
        found = self._call(uri, "list", fs.find, _bare(uri))
        prefix = _bare(uri) + "/"
        return [f[len(prefix):] for f in found if f.startswith(prefix)]

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
        fs = self.filesystem()
        fs.invalidate_cache(_bare(uri))
        info = self._call(uri, "read", fs.info, _bare(uri))
        if info.get("type") == "directory":
            raise StorageError(f"{uri}: is a prefix with objects under it, not an object")
        modified = info.get("LastModified")
        mtime_ns = int(modified.timestamp() * 1e9) if modified is not None else 0
        return Stat(size=int(info.get("size") or 0), mtime_ns=mtime_ns,
                    identity=info.get("ETag") or info.get("VersionId"), changed_ns=None)

    def makedirs(self, uri: str, exist_ok: bool = True) -> None:
        """Nothing to make: a prefix exists once an object is under it. A missing bucket
        is reported by the first write, naming it."""

    def remove(self, uri: str) -> None:
        if not self.is_file(uri):
            raise StorageError(f"{uri}: no such object")
        self._call(uri, "remove", self.filesystem().rm_file, _bare(uri))

    def remove_tree(self, uri: str) -> None:
        fs = self.filesystem()
        files = self._files(uri)
        if files:
            self._call(uri, "remove", fs.rm, [f"{_bare(uri)}/{f}" for f in files])
        elif fs.isfile(_bare(uri)):
            self._call(uri, "remove", fs.rm_file, _bare(uri))
        fs.invalidate_cache(_bare(uri))

    def copy(self, source: str, target: str, keep_times: bool = False) -> None:
        self._call(source, "copy", self.filesystem().copy, _bare(source), _bare(target))

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
        # the manifest (a top-level dot-file) last: until it is there, the final prefix
        # is an incomplete output that neither readers nor the cache use
        files.sort(key=lambda rel: ("/" not in rel and rel.startswith("."), rel))
        fs = self.filesystem()
        for rel in files:
            self._call(final, "publish", fs.copy, f"{_bare(staged)}/{rel}", f"{_bare(final)}/{rel}")
        self.remove_tree(staged)
        fs.invalidate_cache(_bare(final))
        return final

    def local_path(self, uri: str) -> str:
        """A local copy of the object or prefix, refreshed when its objects changed, for
        libraries that read only local files. Written files there are not uploaded."""
        fs = self.filesystem()
        target = os.path.join(_cache_dir(), hashlib.sha256(uri.encode()).hexdigest()[:16],
                              posixpath.basename(_split(uri)[1]) or _split(uri)[0])
        if self.is_file(uri):
            self._call(uri, "download", fs.get, _bare(uri), target)
        else:
            files = self._files(uri)
            if not files:
                raise StorageError(f"{uri}: no such object or prefix")
            for rel in files:
                local = os.path.join(target, *rel.split("/"))
                os.makedirs(os.path.dirname(local), exist_ok=True)
                self._call(uri, "download", fs.get, f"{_bare(uri)}/{rel}", local)
        return target

    def within(self, uri: str, root: str) -> tuple[str, str, bool]:
        a, b = _normal(uri), _normal(root)
        return a, b, a == b or a.startswith(b.rstrip("/") + "/")

    def space(self, uri: str) -> tuple[int, int] | None:
        return None


class _Guarded:
    """A file being written, whose late errors (the upload happens at ``close``) become
    the same one-line :class:`StorageError` as the others."""

    def __init__(self, handle: Any, uri: str, what: str, backend: S3Backend):
        self._handle, self._uri, self._what, self._backend = handle, uri, what, backend

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)

    def __iter__(self):
        return iter(self._handle)

    def write(self, data):
        return self._backend._call(self._uri, self._what, self._handle.write, data)

    def flush(self):
        return self._backend._call(self._uri, self._what, self._handle.flush)

    def close(self):
        return self._backend._call(self._uri, self._what, self._handle.close)

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        if kind is None:
            self.close()
        else:  # keep the first error; do not send a half-written object
            try:
                self._handle.discard() if hasattr(self._handle, "discard") else None
            except Exception:
                pass
        return False


def _normal(uri: str) -> str:
    bucket, key = _split(uri)
    return f"s3://{bucket}/{posixpath.normpath(key)}" if key else f"s3://{bucket}"


def _cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = os.path.join(base, "toolkit", "s3")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        path = os.path.join(tempfile.gettempdir(), "toolkit-s3-cache")
        os.makedirs(path, exist_ok=True)
    return path


def _missing(uri: str, exc: BaseException) -> str:
    text = str(exc)
    if "NoSuchBucket" in text or "bucket" in text.lower() and "not" in text.lower():
        return f"bucket {_split(uri)[0]!r} does not exist; create it or fix the URI"
    return "no such object"


def _reason(exc: BaseException) -> str:
    """What went wrong, in words that name no secret: the endpoint, not the request."""
    name = type(exc).__name__
    text = str(exc)
    if "Could not connect" in text or "EndpointConnectionError" in name or \
            "ConnectTimeout" in name or "ConnectionRefused" in text:
        where = endpoint_url() or "Amazon S3"
        return f"the endpoint {where} cannot be reached; check AWS_ENDPOINT_URL and the network"
    if "InvalidAccessKeyId" in text or "SignatureDoesNotMatch" in text or "NoCredentials" in name:
        return "the credentials were refused or are missing; check AWS_ACCESS_KEY_ID, " \
               "AWS_SECRET_ACCESS_KEY or AWS_PROFILE"
    if "NotADirectory" in name or "Not a directory" in text:
        return "a file is there where a prefix was expected"
    first = text.splitlines()[0] if text else name
    return f"{name}: {first[:200]}"
