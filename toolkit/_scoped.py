"""Temporary changes to process-wide mappings (``os.environ``, ``sys.modules``)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, MutableMapping


@contextmanager
def temporarily(mapping: MutableMapping[str, Any], updates: dict[str, Any]) -> Iterator[None]:
    """Set ``updates`` in ``mapping`` for the ``with`` block, then put back what was there
    before: earlier values are restored and keys that were absent are removed again."""
    absent = object()
    saved = {key: mapping.get(key, absent) for key in updates}
    mapping.update(updates)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is absent:
                mapping.pop(key, None)
            else:
                mapping[key] = value
