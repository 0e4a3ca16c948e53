"""Process liveness, shared by the reapers of abandoned runs and abandoned push copies."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (this process counts as alive).

    A process owned by another user answers the probe with EPERM: it exists, so it is alive.
    """
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
