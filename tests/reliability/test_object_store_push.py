"""A push to an object store killed mid-upload: S3 has no rename, so a version appears
object by object; it must not be listed until its ``toolkit-push.json`` (written last)
is there, and a push in a new process removes it (its abandoned copy names it) and
publishes a complete version.

moto's S3 server runs for the test; the metadata store is SQLite on local disk."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reliability_helpers import (REPO, assert_abandoned, assert_completed_once, assert_killed,
                                 child_args, child_env, kill_at, run_child)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import object_servers  # noqa: E402

SERVING = "s3://bucket/serving"
#: the stand-in model's files are uploaded to the hidden copy, then copied under the
#: version's prefix one by one (``S3Backend._copy``), by name; the first three copies move
#: the owner file and the report's two files into place in the hidden copy, so after the
#: 9th the version holds 6 of its 15 files (saved_model.pb, the report, 3 variables)
MID_UPLOAD = "toolkit.storage.s3:S3Backend._copy:after@9"


def _models_list(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "toolkit.cli", "models", SERVING],
                          capture_output=True, text=True, env=child_env(**env), cwd=REPO,
                          timeout=120)


@pytest.mark.slow
def test_push_killed_mid_upload_is_never_listed(tmp_path, monkeypatch):
    from toolkit import storage
    from toolkit.components.pusher import VERSION_RECORD, versions
    from toolkit.model_report import REPORT_DATA, REPORT_FILE

    with object_servers.moto_server() as endpoint:
        settings = object_servers.aws_settings(endpoint)
        object_servers.make_s3_bucket(endpoint, "bucket")
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN", "AWS_REGION"):
            monkeypatch.delenv(name, raising=False)
        for name, value in settings.items():
            monkeypatch.setenv(name, value)
        root = tmp_path / "root"
        args = child_args(root, tmp_path, pipeline="push")
        args += ["--serving", SERVING]

        pid = kill_at(args, "Pusher", MID_UPLOAD, tmp_path, timeout=120, env=settings)
        killed = assert_killed(root, "Pusher", pid)
        # some, not all, of the version's objects are there, and no record
        started = [n for n in storage.listdir(SERVING) if n.isdigit()]
        assert len(started) == 1, started
        partial = storage.join(SERVING, started[0])
        uploaded = set(storage.walk(partial))
        assert "saved_model.pb" in uploaded and VERSION_RECORD not in uploaded, uploaded
        assert 0 < len([n for n in uploaded if n.startswith("variables/")]) < 12, uploaded
        assert versions(SERVING) == []
        listed = _models_list(settings)
        assert listed.returncode != 0 and "no numbered version folders" in listed.stderr, \
            (listed.returncode, listed.stdout, listed.stderr)

        report = run_child(args + ["--report", str(tmp_path / "r.json")], tmp_path / "rerun.log",
                           timeout=120, env=settings)
        assert_abandoned(root, "Pusher", killed)
        assert_completed_once(root, "Pusher")
        pushed = report["results"]["Pusher"]["properties"]["pushed_model"][0]
        [version] = versions(SERVING)
        assert pushed["pushed"] == 1 and pushed["pushed_version"] == str(version)
        # the half-uploaded version was removed with its abandoned copy
        assert [n for n in storage.listdir(SERVING) if n.isdigit()] == [str(version)]
        # every file of the model, byte for byte, plus the record and the report
        model = Path(report["results"]["FakeTrainer"]["outputs"]["model"][0]) / "Format-Serving"
        want = {p.relative_to(model).as_posix(): p.read_bytes()
                for p in model.rglob("*") if p.is_file()}
        folder = storage.join(SERVING, str(version))
        got = {rel: storage.read_bytes(storage.join(folder, rel)) for rel in storage.walk(folder)}
        for extra in (VERSION_RECORD, REPORT_FILE, REPORT_DATA):
            assert got.pop(extra, b""), f"{extra} missing from version {version}"
        assert got == want
        assert not [n for n in storage.listdir(SERVING) if n.startswith(".pushing-")]
        listed = _models_list(settings)
        assert listed.returncode == 0, listed.stderr
        rows = [line.split()[0] for line in listed.stdout.splitlines()
                if line.split() and line.split()[0].isdigit()]
        assert rows == [str(version)], listed.stdout
