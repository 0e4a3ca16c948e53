"""Who owns a piece of work, and when another process may declare it abandoned.

Several machines may share one metadata store (MySQL), one pipeline root or one push
destination. A pid means something only in the PID namespace (container), machine and
boot that issued it, so running work records its owner: host identity, pid, the
process's start time, a heartbeat it renews while it runs, and the lease that heartbeat
grants. Another process declares the work abandoned only when it can prove it
(:func:`abandoned_reason`): on the same host, the process is gone or its pid now belongs
to another process; from anywhere, the heartbeat is older than the lease. Everything
else is left alone, so a live run on another machine or in another container is never
marked failed or has its folders deleted.

Hosts compare their own clock with the heartbeat another host wrote, so their clocks
must agree to well within a lease (NTP does this).
"""
from __future__ import annotations

import dataclasses
import os
import socket
import threading
import time
import uuid
from typing import Callable

from toolkit import _env
from toolkit._text import error_line, show_controls

#: overrides the host identity (tests; machines that cannot be told apart otherwise)
HOST_ID_ENV = _env.HOST_ID
#: default lease length in seconds for executions and push copies
LEASE_ENV = _env.LEASE_SECONDS
#: Long enough that a process on a busy 2-core machine (TensorFlow and Beam saturating
#: both cores, a slow shared MySQL) renews its heartbeat in time: it renews every third
#: of the lease, so two renewals in a row may be late by up to 40 s each before anyone
#: may reap it. Short enough that the work of a crashed cluster job is recovered within
#: two minutes of its last heartbeat.
DEFAULT_LEASE_SECONDS = 120.0

_BOOT_ID = "/proc/sys/kernel/random/boot_id"
#: the PID namespace this process lives in; its pids mean nothing in another one
_PID_NAMESPACE = "/proc/self/ns/pid"
#: makes the identity of a process whose process table cannot be read unique to it
_PRIVATE_TOKEN = uuid.uuid4().hex[:12]


def host_identity() -> str:
    """``"<hostname>/<boot id>/pid:[<inode>]"``: names the process table a pid belongs to.

    A pid names one process only within one PID namespace of one boot of one machine.
    Containers on one kernel often share a hostname (sidecars, ``--network host``,
    ``hostNetwork: true``, a fixed ``--hostname``) but not a PID namespace, so the
    namespace (the inode of ``/proc/self/ns/pid``) is part of the identity: two
    processes share an identity only where a pid means the same process to both.
    Identities recorded by older versions (``"<hostname>/<boot id>"``) never equal it,
    so their work is judged by its lease alone.

    ``$TOOLKIT_HOST_ID`` replaces it. Without a boot id (no ``/proc``: not Linux, and no
    PID namespaces), the hostname alone. Where the namespace cannot be read, or ``/proc``
    belongs to another PID namespace (``unshare --pid`` without ``--mount-proc``, so
    start times read there are another process's), the identity names this process
    alone: no other process trusts its own process table to judge this one's work.
    """
    override = os.environ.get(HOST_ID_ENV, "").strip()
    if override:
        return override
    host = socket.gethostname()
    try:
        with open(_BOOT_ID, encoding="ascii") as handle:
            boot = handle.read().strip()
    except OSError:
        return host
    if not boot:
        return host
    pid = os.getpid()
    try:
        namespace = os.readlink(_PID_NAMESPACE)
        own_proc = os.readlink("/proc/self") == str(pid)
    except OSError:
        namespace, own_proc = "", False
    if not namespace or not own_proc:
        return f"{host}/{boot}/private:{pid}-{_PRIVATE_TOKEN}"
    return f"{host}/{boot}/{namespace}"


def process_start_time(pid: int) -> str:
    """When process ``pid`` started, in clock ticks since boot (``/proc/<pid>/stat``
    field 22), or ``""`` when that cannot be read (no such process, no ``/proc``).

    With the pid it names one process for the whole boot: a pid reused by a later
    process comes with another start time."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            stat = handle.read()
    except OSError:
        return ""
    # the command name (field 2) is in parentheses and may itself hold spaces or ")"
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 else ""


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine (this process counts as alive).

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


def lease_seconds(value: float | None = None) -> float:
    """The lease length to use: ``value`` if given, else ``$TOOLKIT_LEASE_SECONDS``, else
    :data:`DEFAULT_LEASE_SECONDS`."""
    source = "lease_seconds"
    if value is None:
        text = os.environ.get(LEASE_ENV, "").strip()
        if not text:
            return DEFAULT_LEASE_SECONDS
        source = f"${LEASE_ENV}"
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{source} must be a number of seconds, got {text!r}") from None
    if not value > 0:
        raise ValueError(f"{source} must be a positive number of seconds, got {value!r}")
    return float(value)


@dataclasses.dataclass(frozen=True)
class Owner:
    """The process that owns running work, as recorded beside the work."""
    host: str
    pid: int
    pid_started: str
    heartbeat_at: float
    lease_s: float

    @classmethod
    def current(cls, lease_s: float) -> "Owner":
        """This process, with a heartbeat of now."""
        pid = os.getpid()
        return cls(host_identity(), pid, process_start_time(pid), time.time(), lease_s)


def abandoned_reason(owner: Owner, now: float | None = None) -> str | None:
    """Why the work of ``owner`` is provably abandoned, or None while it may be alive.

    On the owner's own host, the process table decides: a pid that is gone, or that now
    belongs to a process with another start time, is abandoned at once; a live process
    with the recorded start time is alive however old its heartbeat (it may be stopped
    or starved, not dead). Where the process table cannot answer (another host, no start
    time), only an expired lease counts.
    """
    if owner.host == host_identity() and owner.pid:
        if not pid_alive(owner.pid):
            return f"process {owner.pid} on host {owner.host} ended"
        started = process_start_time(owner.pid)
        if started and owner.pid_started:
            if started != owner.pid_started:
                return (f"process {owner.pid} on host {owner.host} ended (the pid now belongs "
                        "to another process)")
            return None
    silent = (time.time() if now is None else now) - owner.heartbeat_at
    if silent > owner.lease_s:
        return f"lease expired (no heartbeat from host {owner.host} for {silent:.0f} s)"
    return None


class Heartbeat:
    """Calls ``renew`` every ``interval`` seconds on a daemon thread until :meth:`stop`.

    A renewal that fails is reported once (``what`` names the work) and tried again at
    the next interval: a store that is briefly unreachable must not fail the run it
    keeps alive. After :meth:`stop` returns, no renewal is running or will start.
    """

    def __init__(self, renew: Callable[[], None], interval: float, what: str):
        self._renew = renew
        self._interval = interval
        self._what = what
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat {what}",
                                        daemon=True)

    def start(self) -> "Heartbeat":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def _loop(self) -> None:
        reported = False
        while not self._stopped.wait(self._interval):
            try:
                self._renew()
            except Exception as exc:
                if not reported:
                    reported = True
                    print(show_controls(f"[{self._what}] could not renew the heartbeat "
                                        f"({error_line(exc, 300)}); still trying"), flush=True)
