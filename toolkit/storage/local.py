"""The local-disk backend of the storage seam: plain paths and ``file://`` URIs.

Everything here is a thin call into ``os``/``shutil``; it exists so that the rest of the
toolkit asks the seam (``toolkit.storage``) and a second backend can answer the same
questions without the callers changing."""
from __future__ import annotations

import builtins
import errno
import glob as globbing
import os
import re
import shutil
import urllib.parse
from typing import IO, Iterator

from toolkit._paths import resolve_within
from toolkit.storage.base import Stat

#: why a hard link can fail where a copy still works (another device, a filesystem
#: without links, too many links, no permission to link)
_CANNOT_LINK = (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP,
                errno.EACCES)

#: a run of percent-escapes (a UTF-8 character may take several), decoded together
_PERCENT_RUN = re.compile(r"(?:%[0-9A-Fa-f]{2})+")


class LocalBackend:
    """Files on a mounted filesystem. Its ``commit`` is a rename, which is atomic here;
    callers never rely on that (see ``toolkit.storage``)."""

    scheme = "file"
    #: a rename publishes a whole folder at once on this backend
    atomic_commit = True

    def path(self, uri: str) -> str:
        """The filesystem path a local URI names (``file://`` URIs percent-decoded, as
        ``pathlib.Path.as_uri`` encodes them; a plain path is taken as it is)."""
        if uri.startswith("file://"):
            rest = uri[len("file://"):]
            if rest.startswith("localhost/"):
                rest = rest[len("localhost"):]
            return urllib.parse.unquote(rest)
        return uri

    def join(self, base: str, *parts: str) -> str:
        return os.path.join(base, *parts)

    def open(self, uri: str, mode: str = "rb", **kwargs) -> IO:
        return builtins.open(self.path(uri), mode, **kwargs)

    def exists(self, uri: str, follow_links: bool = True) -> bool:
        path = self.path(uri)
        return os.path.exists(path) if follow_links else os.path.lexists(path)

    def is_dir(self, uri: str, follow_links: bool = True) -> bool:
        path = self.path(uri)
        if follow_links:
            return os.path.isdir(path)
        return os.path.isdir(path) and not os.path.islink(path)

    def is_file(self, uri: str) -> bool:
        return os.path.isfile(self.path(uri))

    def listdir(self, uri: str) -> list[str]:
        return os.listdir(self.path(uri))

    def glob(self, root: str, pattern: str, recursive: bool = True) -> list[str]:
        """Under a ``file://`` root, ``pattern`` and the paths returned are URI-encoded as
        the root is (a ``%5B`` in the pattern is a literal ``[``, not a wildcard), so
        ``join(root, path)`` is a URI of the same form; under a plain path, plain names."""
        encoded = root.startswith("file://")
        if encoded:
            pattern = _PERCENT_RUN.sub(
                lambda run: globbing.escape(urllib.parse.unquote(run.group())), pattern)
        found = {rel.replace(os.sep, "/").rstrip("/") for rel in globbing.glob(
            pattern, root_dir=self.path(root) or os.curdir, recursive=recursive)} - {""}
        return sorted(urllib.parse.quote(rel) for rel in found) if encoded else sorted(found)

    def walk(self, uri: str) -> Iterator[str]:
        folder = self.path(uri)
        for root, dirs, names in os.walk(folder):
            dirs.sort()
            for name in sorted(names):
                yield os.path.relpath(os.path.join(root, name), folder)

    def folders(self, uri: str) -> Iterator[str]:
        folder = self.path(uri)
        for root, dirs, _ in os.walk(folder):
            dirs.sort()
            for name in dirs:
                if not os.path.islink(os.path.join(root, name)):
                    yield os.path.relpath(os.path.join(root, name), folder)

    def stat(self, uri: str) -> Stat:
        st = os.stat(self.path(uri))
        return Stat(size=st.st_size, mtime_ns=st.st_mtime_ns, identity=st.st_ino,
                    changed_ns=st.st_ctime_ns)

    def makedirs(self, uri: str, exist_ok: bool = True) -> None:
        os.makedirs(self.path(uri), exist_ok=exist_ok)

    def remove(self, uri: str) -> None:
        os.remove(self.path(uri))

    def remove_tree(self, uri: str) -> None:
        shutil.rmtree(self.path(uri), ignore_errors=True)

    def copy(self, source: str, target: str, keep_times: bool = False) -> None:
        (shutil.copy2 if keep_times else shutil.copyfile)(self.path(source), self.path(target))

    def link_or_copy(self, source: str, target: str, try_link: bool = True) -> bool:
        if try_link:
            try:
                os.link(self.path(source), self.path(target))
                return True
            except OSError as exc:
                if exc.errno not in _CANNOT_LINK:
                    raise
        shutil.copy2(self.path(source), self.path(target))
        return False

    def move(self, source: str, target: str) -> None:
        os.replace(self.path(source), self.path(target))

    def commit(self, staged: str, final: str) -> str:
        os.replace(self.path(staged), self.path(final))
        return final

    def local_path(self, uri: str) -> str:
        return self.path(uri)

    def within(self, uri: str, root: str) -> tuple[str, str, bool]:
        return resolve_within(self.path(uri), self.path(root))

    def space(self, uri: str) -> tuple[int, int] | None:
        try:
            usage = shutil.disk_usage(self.path(uri))
        except OSError:
            return None
        return usage.free, usage.total
