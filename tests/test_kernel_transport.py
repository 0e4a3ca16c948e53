"""How a headless run's kernel talks to this process: CurveZMQ-encrypted TCP where pyzmq
has CurveZMQ, otherwise Unix (IPC) sockets in a folder only this user can enter, removed
after the run.

Most machines have CurveZMQ, so without forcing it off the IPC fallback would never run
in a test. Here ``zmq.has("curve")`` reports False in this process, the one that chooses
the transport and starts the kernel. The kernel itself reports what it was given (its
connection file) and what it sees in the socket folder while it runs; this process
checks the folder is gone afterwards. ``tests/test_cli.py`` checks that a ``toolkit run``
prints no transport warning.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import nbformat
import pytest
import zmq

from toolkit.runner import run_notebook

#: the kernel writes what it was connected through: transport, address, whether a CurveZMQ
#: key was provisioned and, for IPC, the socket folder's mode and the sockets in it
REPORT_CELL = """\
import json, os, stat
from ipykernel.connect import get_connection_info

info = get_connection_info(unpack=True)
seen = {"transport": info["transport"], "ip": info["ip"],
        "curve": bool(info.get("curve_publickey"))}
if info["transport"] == "ipc":
    folder = os.path.dirname(info["ip"])
    seen["folder"] = folder
    seen["mode"] = stat.S_IMODE(os.stat(folder).st_mode)
    seen["sockets"] = sorted(name for name in os.listdir(folder)
                             if stat.S_ISSOCK(os.stat(os.path.join(folder, name)).st_mode))
    seen["ports"] = sorted(str(info[key]) for key in
                           ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port"))
with open(output_file, "w") as handle:
    json.dump(seen, handle)
"""


def _notebook(folder: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    params = nbformat.v4.new_code_cell('output_file: str = "transport.json"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(REPORT_CELL)]
    path = folder / "transport.ipynb"
    nbformat.write(nb, str(path))
    return path


def _run(tmp_path: Path, monkeypatch) -> tuple[dict, Path]:
    """Run the reporting notebook with this process's temp folder under ``tmp_path``;
    returns the kernel's report and that temp folder."""
    own_tmp = tmp_path / "tmp"
    own_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(own_tmp))
    report = tmp_path / "seen.json"
    result = run_notebook(_notebook(tmp_path), {"output_file": str(report)},
                          run_dir=tmp_path / "run", cwd=tmp_path)
    assert result.ok, result.reason
    return json.loads(report.read_text()), own_tmp


def test_kernel_uses_curve_encrypted_tcp_where_pyzmq_has_curve(tmp_path, monkeypatch):
    if not zmq.has("curve"):
        pytest.fail("this pyzmq has no CurveZMQ, so the default path cannot be checked: "
                    "install a pyzmq wheel built with libsodium")
    seen, own_tmp = _run(tmp_path, monkeypatch)
    assert (seen["transport"], seen["ip"], seen["curve"]) == ("tcp", "127.0.0.1", True), seen
    assert list(own_tmp.iterdir()) == []  # no socket folder is made


def test_kernel_falls_back_to_ipc_in_a_private_folder_without_curve(tmp_path, monkeypatch):
    real_has = zmq.has
    monkeypatch.setattr(zmq, "has", lambda feature: False if feature == "curve"
                        else real_has(feature))

    seen, own_tmp = _run(tmp_path, monkeypatch)

    assert seen["transport"] == "ipc" and not seen["curve"], seen
    folder = Path(seen["folder"])
    assert folder.parent == own_tmp and folder.name.startswith("toolkit-kernel-"), seen
    assert seen["mode"] == 0o700, oct(seen["mode"])
    # every channel (shell, iopub, stdin, control, heartbeat) is a socket file in that folder
    name = Path(seen["ip"]).name
    assert seen["sockets"] == sorted(f"{name}-{port}" for port in seen["ports"]), seen
    assert not folder.exists(), "the kernel's socket folder was left behind"
    assert list(own_tmp.iterdir()) == []
