"""Where a path really leads: the containment check behind every "outside the root" refusal."""

from __future__ import annotations

import os


def resolve_within(path: str, root: str) -> tuple[str, str, bool]:
    """``(real path, real root, whether the real path is the root or inside it)``, with
    every symlink and ``..`` resolved on both sides."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    return real, real_root, os.path.commonpath([real, real_root]) == real_root
