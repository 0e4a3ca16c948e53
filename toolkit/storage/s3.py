"""The ``s3://`` backend of the storage seam: Amazon S3 and S3-compatible servers (MinIO,
Ceph, moto), through s3fs.

Settings are AWS's own, read where every AWS tool reads them, so a user sets them once:
``AWS_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_S3``) for a server other than Amazon's,
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``,
``AWS_DEFAULT_REGION``/``AWS_REGION`` and ``AWS_PROFILE`` with ``~/.aws/config`` and
``~/.aws/credentials``. botocore finds the credentials itself; the toolkit never copies
them anywhere. What an object store can and cannot do is in
:mod:`toolkit.storage.objects`.
"""
from __future__ import annotations

import os
import threading
from typing import IO, Any

from toolkit.storage.objects import ObjectStore, StorageError

__all__ = ["S3Backend", "StorageError", "endpoint_url", "region"]


def endpoint_url() -> str | None:
    """The S3 endpoint the standard AWS settings name, or None for Amazon's own."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def region() -> str | None:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


class S3Backend(ObjectStore):
    """Objects on S3 or an S3-compatible server, by ``s3://bucket/key`` URIs."""

    scheme = "s3"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fs: Any = None
        self._settings: tuple | None = None

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

    def endpoint(self) -> str:
        return endpoint_url() or "Amazon S3"

    def _open(self, key: str, mode: str) -> IO:
        return self.filesystem().open(key, mode)

    def _find(self, prefix: str) -> list[str]:
        fs = self.filesystem()
        fs.invalidate_cache(prefix)
        return fs.find(prefix)

    def _names(self, prefix: str) -> list[str]:
        fs = self.filesystem()
        fs.invalidate_cache(prefix)
        try:
            found = fs.ls(prefix, detail=False)  # a listing with the "/" delimiter
        except FileNotFoundError as exc:  # nothing under the prefix, or no bucket
            if self._translate(exc)[0] == "bucket":
                raise
            return []
        start = len(prefix) + 1  # an object at the prefix itself lists as itself: not a name
        return [path[start:].rstrip("/") for path in found
                if path.startswith(prefix + "/") and path[start:].strip("/")]

    def _identities(self, prefix: str) -> dict[str, Any]:
        fs = self.filesystem()
        fs.invalidate_cache(prefix)
        found = fs.find(prefix, detail=True)
        start = len(prefix) + 1
        return {key[start:]: info.get("ETag") for key, info in found.items()
                if key.startswith(prefix + "/") and info.get("type") == "file"}

    def _info(self, key: str) -> dict[str, Any] | None:
        fs = self.filesystem()
        fs.invalidate_cache(key)
        try:
            info = fs.info(key)
        except FileNotFoundError:
            return None
        if info.get("type") != "file":
            return {"type": "directory"}
        modified = info.get("LastModified")
        return {"type": "file", "size": info.get("size"),
                "mtime_ns": int(modified.timestamp() * 1e9) if modified is not None else 0,
                "identity": info.get("ETag") or info.get("VersionId")}

    def _copy(self, source: str, target: str) -> None:
        self.filesystem().copy(source, target)

    def _delete(self, keys: list[str]) -> None:
        self.filesystem().rm(keys)

    def _download(self, key: str, local: str) -> None:
        self.filesystem().get(key, local)

    def _upload(self, local: str, key: str) -> None:
        self.filesystem().put_file(local, key)

    def _bucket_exists(self, bucket: str) -> bool:
        return bool(self.filesystem().exists(bucket))

    def _translate(self, exc: BaseException) -> tuple[str, str]:
        name, text = type(exc).__name__, str(exc)
        # s3fs keeps botocore's error (its code: InvalidAccessKeyId, AccessDenied) as the cause
        cause = exc.__cause__
        if cause is not None:
            text = f"{text} {type(cause).__name__}: {cause}"
        if "NoSuchBucket" in text or "bucket does not exist" in text.lower():
            return "bucket", ""
        if isinstance(exc, FileNotFoundError):
            return "missing", ""
        if "InvalidAccessKeyId" in text or "SignatureDoesNotMatch" in text \
                or "NoCredentials" in name or "Unable to locate credentials" in text:
            return "credentials", ("check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or "
                                   "AWS_PROFILE")
        if isinstance(exc, PermissionError) or "AccessDenied" in text:
            return "denied", ("check the credentials (AWS_ACCESS_KEY_ID, AWS_PROFILE) and "
                              "the bucket's policy")
        if "Could not connect" in text or "EndpointConnectionError" in name \
                or "ConnectTimeout" in name or "Connection refused" in text:
            return "unreachable", "check AWS_ENDPOINT_URL and the network"
        if isinstance(exc, NotADirectoryError) or "Not a directory" in text:
            return "other", "a file is there where a prefix was expected"
        first = text.splitlines()[0][:200] if text else ""
        return "other", f"{name}: {first}" if first else name
