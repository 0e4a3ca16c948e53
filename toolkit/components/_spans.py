"""Spans and versions of ExampleGen inputs, with TFX's conventions.

A split pattern of ``input_config`` may name where the span and version of the data
sit in its path: ``{SPAN}`` and ``{VERSION}`` (``{SPAN:2}`` for exactly two digits),
or a date, ``{YYYY}``, ``{MM}`` and ``{DD}`` together, whose span is the number of days
since 1970-01-01 as in TFX. ``range_config`` chooses the spans: without it the latest
span; ``static_range`` the spans ``start_span_number..end_span_number`` (each must
exist); ``rolling_range`` the latest ``num_spans`` span numbers, none below
``start_span_number``. Each span is read at its latest version.

:func:`resolve` turns patterns into the files to read; the resolution's
:attr:`Resolution.fingerprint` (names, sizes and modification times of exactly those
files) is what enters ExampleGen's cache key, so a new span changes the key only when
it changes which files are read.
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import os
import re
from typing import Any

from toolkit import storage
from toolkit.errors import InputDataError

_SPEC = re.compile(r"\{(SPAN|VERSION)(?::(\d+))?\}|\{(YYYY|MM|DD)\}")
_DATE_WIDTH = {"YYYY": 4, "MM": 2, "DD": 2}
_EPOCH = datetime.date(1970, 1, 1)


@dataclasses.dataclass(frozen=True)
class Resolution:
    """What a set of span patterns resolves to now."""
    #: the latest span read
    span: int
    #: its version, or None when the patterns have no ``{VERSION}``
    version: int | None
    #: every span read, oldest first (one unless a range covers several)
    spans: tuple[int, ...]
    #: split name -> the files to read, sorted
    files: dict[str, list[str]]
    #: names, sizes and modification times of the files, for the cache key
    fingerprint: str


def has_spec(pattern: str) -> bool:
    """Whether ``pattern`` names a span, version or date."""
    return _SPEC.search(pattern) is not None


def date_to_span(year: int, month: int, day: int) -> int:
    """The span of a date: days since 1970-01-01 (TFX's ``date_to_span_number``)."""
    return (datetime.date(year, month, day) - _EPOCH).days


def span_to_date(span: int) -> datetime.date:
    """The date whose span is ``span`` (TFX's ``span_number_to_date``)."""
    return _EPOCH + datetime.timedelta(days=int(span))


def resolve(base: str, patterns: list[tuple[str, str]],
            range_config: dict[str, Any] | None = None) -> Resolution:
    """The files of the chosen spans (each at its latest version) for every split pattern.

    Raises :class:`InputDataError` with one line naming the pattern and ``input_base``
    when a pattern is malformed or matches nothing, or a chosen span is missing."""
    if not storage.is_dir(base):
        raise InputDataError(f"input_base {base} does not exist or is not a folder")
    found = {name: _scan(base, name, pattern) for name, pattern in patterns}
    every = sorted(set().union(*(set(spans) for spans in found.values())))
    chosen = _choose(every, range_config, base, patterns)
    files: dict[str, list[str]] = {name: [] for name, _ in patterns}
    version = None
    for span in chosen:
        versions = None
        for name, pattern in patterns:
            if span not in found[name]:
                raise InputDataError(f"input_base {base}: span {span} has no files matching "
                                     f"pattern {pattern!r} (split {name!r})")
            here = set(found[name][span])
            versions = here if versions is None else versions & here
        if not versions:
            raise InputDataError(f"input_base {base}: span {span} has no version common to "
                                 f"all split patterns ({_names(patterns)})")
        latest = max(versions, key=lambda v: -1 if v is None else v)
        for name, _ in patterns:
            files[name].extend(found[name][span][latest])
        version = latest
    files = {name: sorted(paths) for name, paths in files.items()}
    return Resolution(span=chosen[-1], version=version, spans=tuple(chosen), files=files,
                      fingerprint=_fingerprint(base, chosen, version, files))


# -- patterns ----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Pattern:
    glob: str
    regex: re.Pattern
    #: group name -> spec name (SPAN, VERSION, YYYY, MM, DD)
    groups: dict[str, str]


def _compile(base: str, pattern: str) -> _Pattern:
    specs = [m.group(1) or m.group(3) for m in _SPEC.finditer(pattern)]
    where = f"input_base {base}: pattern {pattern!r}"
    for spec in set(specs):
        if specs.count(spec) > 1:
            raise InputDataError(f"{where} has {{{spec}}} more than once")
    dates = [s for s in specs if s in _DATE_WIDTH]
    if dates and len(dates) != 3:
        raise InputDataError(f"{where} needs all of {{YYYY}}, {{MM}} and {{DD}} for a date span")
    if dates and "SPAN" in specs:
        raise InputDataError(f"{where} has both {{SPAN}} and a date; use one")
    if "VERSION" in specs and not (dates or "SPAN" in specs):
        raise InputDataError(f"{where} has {{VERSION}} without {{SPAN}} or a date")
    if not specs:
        raise InputDataError(f"{where} has no {{SPAN}} or date spec, which range_config needs")
    globs, regex, groups, at = [], [], {}, 0
    for number, match in enumerate(_SPEC.finditer(pattern)):
        literal = pattern[at:match.start()]
        globs.append(literal)
        regex.append(_glob_regex(literal))
        spec = match.group(1) or match.group(3)
        width = match.group(2) or _DATE_WIDTH.get(spec)
        globs.append("[0-9]" * int(width) if width else "[0-9]*")
        regex.append(f"(?P<g{number}>\\d{{{int(width)}}})" if width else f"(?P<g{number}>\\d+)")
        groups[f"g{number}"] = spec
        at = match.end()
    globs.append(pattern[at:])
    regex.append(_glob_regex(pattern[at:]))
    return _Pattern("".join(globs), re.compile("".join(regex) + r"\Z", re.DOTALL), groups)


def _glob_regex(text: str) -> str:
    """A glob fragment as a regex: ``*`` and ``?`` stay within a folder name, ``**`` not."""
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if text.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and "]" in text[i + 2:]:
            end = text.index("]", i + 2)
            body = text[i + 1:end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def _scan(base: str, split: str, pattern: str) -> dict[int, dict[int | None, list[str]]]:
    """span -> version -> files of one split pattern."""
    compiled = _compile(base, pattern)
    found: dict[int, dict[int | None, list[str]]] = {}
    for rel in storage.glob_under(base, compiled.glob):
        path = storage.join(base, rel)
        if os.path.basename(rel).startswith(".") or not storage.is_file(path):
            continue
        match = compiled.regex.match(rel)
        if match is None:
            continue
        values = {compiled.groups[g]: int(v) for g, v in match.groupdict().items()}
        if "SPAN" in values:
            span = values["SPAN"]
        else:
            try:
                span = date_to_span(values["YYYY"], values["MM"], values["DD"])
            except ValueError:
                raise InputDataError(f"input_base {base}: {rel} matches pattern {pattern!r} "
                                     "but its date does not exist") from None
        found.setdefault(span, {}).setdefault(values.get("VERSION"), []).append(path)
    if not found:
        raise InputDataError(f"input_base {base}: no file matches pattern {pattern!r} "
                             f"(split {split!r})")
    return found


# -- ranges ------------------------------------------------------------------------------
def _choose(every: list[int], range_config: dict[str, Any] | None, base: str,
            patterns: list[tuple[str, str]]) -> list[int]:
    """The spans to read, oldest first."""
    config = dict(range_config or {})
    unknown = set(config) - {"static_range", "rolling_range"}
    if unknown:
        raise InputDataError(f"range_config: unknown field {min(unknown)!r}; it takes "
                             "static_range or rolling_range")
    static, rolling = config.get("static_range"), config.get("rolling_range")
    if static is not None and rolling is not None:
        raise InputDataError("range_config: give static_range or rolling_range, not both")
    if static is not None:
        start = int(static.get("start_span_number", 0) or 0)
        end = int(static.get("end_span_number", start) or 0)
        if end < start:
            raise InputDataError(f"range_config static_range: end_span_number {end} is below "
                                 f"start_span_number {start}")
        missing = [s for s in range(start, end + 1) if s not in set(every)]
        if missing:
            raise InputDataError(f"input_base {base}: span {missing[0]} (range_config "
                                 f"static_range) matches no file of pattern "
                                 f"{_names(patterns)}; spans found: {_span_list(every)}")
        return list(range(start, end + 1))
    if rolling is not None:
        start = int(rolling.get("start_span_number", 0) or 0)
        count = int(rolling.get("num_spans", 0) or 0)
        if count < 1:
            raise InputDataError("range_config rolling_range: num_spans must be at least 1")
        latest = every[-1]
        chosen = [s for s in every if max(start, latest - count + 1) <= s <= latest]
        if not chosen:
            raise InputDataError(f"input_base {base}: no span from {start} on (range_config "
                                 f"rolling_range) for pattern {_names(patterns)}; spans "
                                 f"found: {_span_list(every)}")
        return chosen
    return [every[-1]]


def _names(patterns: list[tuple[str, str]]) -> str:
    return ", ".join(repr(p) for _, p in patterns)


def _span_list(spans: list[int]) -> str:
    if len(spans) > 6:
        return f"{', '.join(map(str, spans[:3]))}, ..., {', '.join(map(str, spans[-2:]))}"
    return ", ".join(map(str, spans))


def _fingerprint(base: str, spans: list[int], version: int | None,
                 files: dict[str, list[str]]) -> str:
    digest = hashlib.sha256(f"spans={spans} version={version}\n".encode())
    for name in sorted(files):
        for path in files[name]:
            st = storage.stat(path)
            digest.update(f"{name}\0{os.path.relpath(path, base)}\0{st.size}\0"
                          f"{st.mtime_ns}\n".encode())
    return digest.hexdigest()
