"""The ``gs://`` backend of the storage seam: Google Cloud Storage and its emulators,
through pyarrow's ``GcsFileSystem`` (gcsfs cannot be installed beside this stack's
protobuf).

Settings are Google's own: credentials come from Application Default Credentials
(``GOOGLE_APPLICATION_CREDENTIALS`` naming a key file, or the metadata server on Google
Cloud), found by pyarrow itself; ``STORAGE_EMULATOR_HOST`` (``http://host:port``), the
setting Google's own client libraries read, points at an emulator instead, without
credentials. What an object store can and cannot do is in :mod:`toolkit.storage.objects`.

pyarrow reports no object generation, so a file's identity here is its size and update
time: a rewrite within the same update time and size would go unseen by the cache.
"""
from __future__ import annotations

import datetime
import os
import shutil
import threading
from typing import IO, Any
from urllib.parse import urlsplit

from toolkit.storage.objects import ObjectStore, StorageError

__all__ = ["GcsBackend", "StorageError", "emulator_host"]

#: how long a transient error (an unreachable endpoint among them) is retried
RETRY_SECONDS = 15


def emulator_host() -> str | None:
    return os.environ.get("STORAGE_EMULATOR_HOST") or None


class GcsBackend(ObjectStore):
    """Objects on Google Cloud Storage, by ``gs://bucket/key`` URIs."""

    scheme = "gs"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fs: Any = None
        self._settings: tuple | None = None

    def filesystem(self) -> Any:
        """pyarrow's GCS filesystem for the current settings."""
        settings = (emulator_host(), os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"))
        with self._lock:
            if self._fs is None or settings != self._settings:
                from pyarrow import fs as pafs

                kwargs: dict[str, Any] = {
                    "retry_time_limit": datetime.timedelta(seconds=RETRY_SECONDS)}
                if settings[0]:
                    parts = urlsplit(settings[0] if "://" in settings[0] else f"http://{settings[0]}")
                    kwargs.update(anonymous=True, scheme=parts.scheme or "http",
                                  endpoint_override=parts.netloc)
                self._fs = pafs.GcsFileSystem(**kwargs)
                self._settings = settings
            return self._fs

    def endpoint(self) -> str:
        return emulator_host() or "Google Cloud Storage"

    def _open(self, key: str, mode: str) -> IO:
        fs = self.filesystem()
        return fs.open_output_stream(key) if "w" in mode else fs.open_input_file(key)

    def _find(self, prefix: str) -> list[str]:
        from pyarrow import fs as pafs

        infos = self.filesystem().get_file_info(
            pafs.FileSelector(prefix, recursive=True, allow_not_found=True))
        return [info.path for info in infos if info.type == pafs.FileType.File]

    def _identities(self, prefix: str) -> dict[str, Any]:
        from pyarrow import fs as pafs

        infos = self.filesystem().get_file_info(
            pafs.FileSelector(prefix, recursive=True, allow_not_found=True))
        start = len(prefix) + 1
        return {info.path[start:]: (info.size, info.mtime_ns) for info in infos
                if info.type == pafs.FileType.File and info.path.startswith(prefix + "/")}

    def _info(self, key: str) -> dict[str, Any] | None:
        from pyarrow import fs as pafs

        info = self.filesystem().get_file_info(key)
        if info.type == pafs.FileType.NotFound:
            return None
        if info.type != pafs.FileType.File:
            return {"type": "directory"}
        return {"type": "file", "size": info.size, "mtime_ns": info.mtime_ns or 0,
                "identity": (info.size, info.mtime_ns)}

    def _copy(self, source: str, target: str) -> None:
        self.filesystem().copy_file(source, target)

    def _delete(self, keys: list[str]) -> None:
        fs = self.filesystem()
        for key in keys:
            fs.delete_file(key)

    def _download(self, key: str, local: str) -> None:
        with self.filesystem().open_input_stream(key) as source, open(local, "wb") as target:
            shutil.copyfileobj(source, target, 1 << 20)

    def _upload(self, local: str, key: str) -> None:
        with open(local, "rb") as source, self.filesystem().open_output_stream(key) as target:
            shutil.copyfileobj(source, target, 1 << 20)

    def _bucket_exists(self, bucket: str) -> bool:
        from pyarrow import fs as pafs

        return self.filesystem().get_file_info(bucket).type != pafs.FileType.NotFound

    def _translate(self, exc: BaseException) -> tuple[str, str]:
        text = str(exc)
        if isinstance(exc, FileNotFoundError) or "NOT_FOUND" in text:
            return "missing", ""
        if "PERMISSION_DENIED" in text or isinstance(exc, PermissionError):
            return "denied", "check the credentials (GOOGLE_APPLICATION_CREDENTIALS) and " \
                             "the bucket's permissions"
        if "UNAUTHENTICATED" in text:
            return "credentials", "check GOOGLE_APPLICATION_CREDENTIALS"
        if "UNAVAILABLE" in text or "Couldn't connect" in text:
            return "unreachable", "check STORAGE_EMULATOR_HOST and the network"
        first = text.splitlines()[0][:200] if text else ""
        return "other", f"{type(exc).__name__}: {first}" if first else type(exc).__name__
