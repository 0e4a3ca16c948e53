"""Real object-store servers for tests, each in its own process on 127.0.0.1: moto's
server mode for S3 and gcp-storage-emulator for Google Cloud Storage.

Tests reach them through each store's standard settings (``AWS_ENDPOINT_URL`` and keys,
``STORAGE_EMULATOR_HOST``), as a user points the toolkit at MinIO, Ceph or an emulator."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def _serve(command: list[str], ready_url: str):
    # the servers log every request; into a pipe nobody drains, a few hundred requests
    # fill it and the server stops answering, so the log goes to a file
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(ready_url, timeout=2).read()
                break
            except urllib.error.HTTPError:
                break  # it answers
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"{command[0]} did not start: "
                                       + log.read().decode(errors="replace")[-500:])
                time.sleep(0.2)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@contextlib.contextmanager
def moto_server():
    """The endpoint URL of a fresh moto S3 server."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with _serve([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                url + "/moto-api/"):
        yield url


@contextlib.contextmanager
def gcs_emulator():
    """The ``host:port`` of a fresh in-memory GCS emulator."""
    port = free_port()
    emulator = os.path.join(os.path.dirname(sys.executable), "gcp-storage-emulator")
    with _serve([emulator, "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory"],
                f"http://127.0.0.1:{port}/storage/v1/b"):
        yield f"http://127.0.0.1:{port}"


def aws_settings(endpoint: str) -> dict[str, str]:
    """The standard settings for ``endpoint``, with a secret unique to this run, so a
    test can search every byte written for it."""
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing-key",
            "AWS_SECRET_ACCESS_KEY": f"secret-{uuid.uuid4().hex}", "AWS_DEFAULT_REGION": "us-east-1"}


def make_s3_bucket(endpoint: str, name: str) -> None:
    import boto3

    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing-key",
                 aws_secret_access_key="any", region_name="us-east-1").create_bucket(Bucket=name)


def make_gcs_bucket(endpoint: str, name: str) -> None:
    request = urllib.request.Request(f"{endpoint}/storage/v1/b", method="POST",
                                     data=('{"name": "%s"}' % name).encode(),
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).read()
