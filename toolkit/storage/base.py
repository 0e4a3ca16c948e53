"""What a storage backend answers, in terms an object store can honour too: no operation
here needs an atomic rename, a directory entry or an inode."""
from __future__ import annotations

import dataclasses
import re
from typing import IO, Iterator, Protocol


@dataclasses.dataclass(frozen=True)
class Stat:
    """One file's size and times, and what tells one version of it from another."""
    size: int
    mtime_ns: int
    #: the file's identity: the inode on local disk, the ETag or generation on an object
    #: store; a new identity means the bytes may have changed
    identity: object
    #: when the file's metadata last changed (local ctime), or None where there is none
    changed_ns: int | None = None


class Backend(Protocol):
    """The operations the toolkit's artifact I/O needs, for one URI scheme.

    ``commit(staged, final)`` publishes a staged output and returns the URI it now lives
    at: a backend with atomic rename may move it to ``final``; one without may copy it
    there or leave it where it was staged and return that URI. Either way the output
    counts as written only once its manifest is there and the metadata store has recorded
    it, so a commit that is not atomic is still never seen half done.

    ``glob(root, pattern)`` answers with the paths relative to ``root`` (``/``-separated,
    sorted) of what lies under ``root`` and matches ``pattern``: ``root`` is a fixed
    prefix, taken literally, and only ``pattern`` has wildcards, so an object store
    answers it by listing the prefix ``root`` and matching the rest of each key."""

    scheme: str
    atomic_commit: bool

    def join(self, base: str, *parts: str) -> str: ...
    def open(self, uri: str, mode: str = "rb", **kwargs) -> IO: ...
    def exists(self, uri: str, follow_links: bool = True) -> bool: ...
    def is_dir(self, uri: str, follow_links: bool = True) -> bool: ...
    def is_file(self, uri: str) -> bool: ...
    def listdir(self, uri: str) -> list[str]: ...
    def glob(self, root: str, pattern: str, recursive: bool = True) -> list[str]: ...
    def walk(self, uri: str) -> Iterator[str]: ...
    def folders(self, uri: str) -> Iterator[str]: ...
    def stat(self, uri: str) -> Stat: ...
    def makedirs(self, uri: str, exist_ok: bool = True) -> None: ...
    def remove(self, uri: str) -> None: ...
    def remove_tree(self, uri: str) -> None: ...
    def copy(self, source: str, target: str, keep_times: bool = False) -> None: ...
    def link_or_copy(self, source: str, target: str, try_link: bool = True) -> bool: ...
    def move(self, source: str, target: str) -> None: ...
    def commit(self, staged: str, final: str) -> str: ...
    def local_path(self, uri: str) -> str: ...
    def within(self, uri: str, root: str) -> tuple[str, str, bool]: ...
    def space(self, uri: str) -> tuple[int, int] | None: ...


def glob_by_listing(backend: Backend, root: str, pattern: str,
                    recursive: bool = True) -> list[str]:
    """``glob`` for a backend that can list but has no pattern search of its own (an object
    store): every file and folder under ``root``, matched against ``pattern`` with the
    local backend's rules (``*``, ``?``, ``[...]`` within one name, ``**`` across folders,
    no wildcard matching a leading dot)."""
    regex = glob_regex(pattern, recursive)
    names = set(backend.walk(root)) | set(backend.folders(root))
    return sorted(name for name in names if regex.fullmatch(name))


def glob_regex(pattern: str, recursive: bool = True) -> re.Pattern:
    """A ``/``-separated glob pattern as a regex over relative paths."""
    parts = pattern.split("/")
    out = []
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if recursive and part == "**":
            visible = r"(?!\.)[^/]+"
            if not last:
                out.append(f"(?:{visible}/)*")
            elif out:  # "folder/**": the folder itself and everything under it
                out[-1] = out[-1][:-1] + f"(?:/{visible})*"
            else:
                out.append(f"{visible}(?:/{visible})*")
            continue
        lead = "" if part.startswith(".") else r"(?!\.)"
        out.append(lead + _name_regex(part) + ("" if last else "/"))
    return re.compile("".join(out), re.DOTALL)


def _name_regex(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and "]" in text[i + 2:]:
            end = text.index("]", i + 2)
            body = text[i + 1:end].replace("\\", "\\\\")
            if body.startswith("!"):
                body = "^" + body[1:]
            elif body.startswith("^"):
                body = "\\" + body
            out.append(f"[{body}]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)
