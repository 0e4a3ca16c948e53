"""Running a process in a PID namespace of its own, as a container does, for the tests of
host identity (a module of its own: the unit and reliability tests both use it).

``unshare`` (util-linux) needs root, or a kernel that lets this user create namespaces.
Where it cannot run, the tests that need it are skipped on a developer machine and fail
under ``TOOLKIT_REQUIRE_UNSHARE=1`` (CI sets it): a container without namespaces is where
two runs would otherwise misjudge each other, so the check must not vanish quietly.
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess

import pytest

REQUIRE_ENV = "TOOLKIT_REQUIRE_UNSHARE"
#: a new PID namespace with its own /proc (what a container gets); the command run is pid 1
#: there and is killed with unshare, so a test that dies leaves nothing behind
NEW_PID_NAMESPACE = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"]
#: a new PID namespace that still sees the parent's /proc (a misconfigured container)
NEW_PID_NAMESPACE_OLD_PROC = ["unshare", "--pid", "--fork", "--kill-child"]


@functools.lru_cache(maxsize=None)
def _problem() -> str | None:
    """Why no process can be started in a new PID namespace here, or None."""
    if not shutil.which("unshare"):
        return "`unshare` is not installed (Debian: apt-get install -y util-linux)"
    try:
        probe = subprocess.run(NEW_PID_NAMESPACE + ["true"], capture_output=True, text=True,
                               timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"`unshare --pid --fork --mount-proc true` could not run ({exc})"
    if probe.returncode != 0:
        who = "root" if os.geteuid() == 0 else f"uid {os.geteuid()}, not root"
        return (f"`unshare --pid --fork --mount-proc true` failed as {who}: "
                f"{(probe.stderr or probe.stdout).strip() or f'exit {probe.returncode}'}")
    return None


def require_unshare() -> None:
    """Skip the test where no PID namespace can be made, or fail it under
    ``TOOLKIT_REQUIRE_UNSHARE=1``."""
    problem = _problem()
    if problem is None:
        return
    if os.environ.get(REQUIRE_ENV, "").strip().lower() not in ("", "0", "false"):
        pytest.fail(f"{problem} ({REQUIRE_ENV}=1 makes this a failure); run as root where "
                    "unshare works", pytrace=False)
    pytest.skip(f"{problem}; run as root where unshare works, or set {REQUIRE_ENV}=1 to "
                "fail instead of skipping")
