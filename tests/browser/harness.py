"""Drive a real JupyterLab in headless Chromium, offline, from pytest.

Reusable pieces for browser tests of notebooks and their outputs:

* :class:`JupyterServer` starts ``jupyter lab`` from this interpreter on a free
  localhost port, with a token, an isolated config/workspace/settings folder and
  a temporary root directory, so no state leaks between runs.
* :func:`launch_browser` starts Debian's Chromium through Playwright with the
  flags that keep it from talking to the network on its own.
* :class:`RequestLog` records every request a page makes; ``external`` lists the
  ones that left localhost (an offline view must make none).
* :func:`open_notebook`, :func:`run_all_cells`, :func:`wait_for_idle`,
  :func:`trust_notebook` and :func:`screenshot` are the notebook-level helpers.

Typical test, with the fixtures of ``tests/browser/conftest.py``::

    def test_notebook(page, jupyter_server, request_log):
        shutil.copy(executed_notebook, jupyter_server.root_dir / "nb.ipynb")
        panel = open_notebook(page, jupyter_server, "nb.ipynb")
        assert panel.locator(".jp-OutputArea-output").count() > 0
        screenshot(page, "nb")
        assert request_log.external == []
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Iterator
from urllib.parse import quote, urlsplit

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS_DIR = REPO_ROOT / "tests" / "artifacts"
CHROMIUM = os.environ.get("TOOLKIT_CHROMIUM", "/usr/bin/chromium")

#: Chromium flags: headless, no sandbox (root in containers), and no background
#: traffic. The resolver rule makes every host but 127.0.0.1 unresolvable, which
#: also stops Chromium's own lookups. Playwright's default --disable-features list
#: is kept on purpose: passing our own would replace it.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
#: Schemes that never reach the network.
LOCAL_SCHEMES = {"data", "blob", "about", "chrome", "chrome-extension", "devtools"}

ACTIVE_PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
#: JupyterLab settings that would make the server or the page reach the internet
#: (news feed, update check) or interrupt a test with a pop-up.
_LAB_CONFIG = {
    "LabApp": {"news_url": None,
               "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
               "extension_manager": "readonly"},
    "ServerApp": {"open_browser": False},
}
_PAGE_CONFIG = {"disabledExtensions": {
    "@jupyterlab/apputils-extension:announcements": True,
}}


def chromium_path() -> str | None:
    """The Chromium binary browser tests use, or None when it is not installed."""
    return CHROMIUM if Path(CHROMIUM).exists() else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class JupyterServer:
    """A ``jupyter lab`` process serving ``root_dir`` on 127.0.0.1.

    Kernels it starts import the repository's ``toolkit`` (the repo root is put
    on ``PYTHONPATH``). Use as a context manager or call :meth:`start` and
    :meth:`stop`.
    """

    def __init__(self, root_dir: str | Path | None = None, startup_timeout: float = 90.0):
        self._own_root = root_dir is None
        self.root_dir = Path(root_dir or tempfile.mkdtemp(prefix="toolkit-lab-root-"))
        self.state_dir = Path(tempfile.mkdtemp(prefix="toolkit-lab-state-"))
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.state_dir / "server.log"
        #: Holds the notebook-signing secret: see :func:`trust_notebook`.
        self.data_dir = self.state_dir / "data"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _environment(self) -> dict[str, str]:
        config_dir = self.state_dir / "config"
        (config_dir / "labconfig").mkdir(parents=True, exist_ok=True)
        (config_dir / "jupyter_server_config.json").write_text(json.dumps(_LAB_CONFIG))
        (config_dir / "labconfig" / "page_config.json").write_text(json.dumps(_PAGE_CONFIG))
        env = dict(os.environ)
        env["JUPYTER_CONFIG_DIR"] = str(config_dir)
        env["JUPYTER_RUNTIME_DIR"] = str(self.state_dir / "runtime")
        env["JUPYTER_DATA_DIR"] = str(self.data_dir)
        env["JUPYTERLAB_SETTINGS_DIR"] = str(self.state_dir / "settings")
        env["JUPYTERLAB_WORKSPACES_DIR"] = str(self.state_dir / "workspaces")
        env["IPYTHONDIR"] = str(self.state_dir / "ipython")
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
        return env

    def start(self) -> "JupyterServer":
        cmd = [
            sys.executable, "-m", "jupyterlab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            "--port-retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root_dir}",
            f"--LabApp.workspaces_dir={self.state_dir / 'workspaces'}",
            f"--LabApp.user_settings_dir={self.state_dir / 'settings'}",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        log = open(self.log_path, "wb")
        self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                        env=self._environment(), cwd=self.root_dir,
                                        start_new_session=True)
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        status_url = f"{self.url}/api/status?token={self.token}"
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"jupyter lab exited early; log:\n{self.log()}")
            try:
                with urllib.request.urlopen(status_url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"jupyter lab did not answer within {self.startup_timeout:.0f}s;"
                           f" log:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    def api(self, path: str, method: str = "GET") -> Any:
        """Call the server's REST API (``/api/...``) and decode the JSON answer."""
        request = urllib.request.Request(f"{self.url}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        """Stop every kernel the page started, so the next test begins clean."""
        try:
            for session in self.api("/api/sessions"):
                self.api(f"/api/sessions/{session['id']}", method="DELETE")
        except (urllib.error.URLError, OSError):
            pass

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            # The server runs in its own session: signal only that group, which
            # also holds the kernels it started.
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        self.process = None
        shutil.rmtree(self.state_dir, ignore_errors=True)
        if self._own_root:
            shutil.rmtree(self.root_dir, ignore_errors=True)

    def __enter__(self) -> "JupyterServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def trust_notebook(server: JupyterServer, path: str | Path) -> None:
    """Sign ``path`` with the server's secret, as ``jupyter trust`` would: its HTML
    outputs then render unsanitized and their scripts run."""
    import nbformat
    from nbformat.sign import NotebookNotary

    full = Path(server.root_dir, path)
    server.data_dir.mkdir(parents=True, exist_ok=True)
    notebook = nbformat.read(full, as_version=4)
    notary = NotebookNotary(data_dir=str(server.data_dir))
    notary.sign(notebook)
    nbformat.write(notebook, full)


class RequestLog:
    """Every URL a browser context requested (HTTP and WebSocket)."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def attach(self, context: Any) -> None:
        context.on("request", lambda request: self.urls.append(request.url))
        context.on("page", self._watch_page)
        for page in context.pages:
            self._watch_page(page)

    def _watch_page(self, page: Any) -> None:
        page.on("websocket", lambda ws: self.urls.append(ws.url))

    @property
    def external(self) -> list[str]:
        """Requests whose host is not localhost: each one is an offline failure."""
        return [url for url in self.urls if is_external(url)]

def is_external(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in LOCAL_SCHEMES:
        return False
    host = (parts.hostname or "").lower()
    return host not in {h.strip("[]") for h in LOCAL_HOSTS}


def browser_problem() -> str | None:
    """Why browser tests cannot run here (no Chromium, no playwright), or None."""
    if chromium_path() is None:
        return f"Chromium is not installed at {CHROMIUM}"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed"
    return None


def require_browser() -> str:
    """Chromium's path; else skip the test, or fail it when ``TOOLKIT_REQUIRE_BROWSER=1``."""
    import pytest

    problem = browser_problem()
    if problem is None:
        return chromium_path()
    if os.environ.get("TOOLKIT_REQUIRE_BROWSER", "").strip() not in ("", "0", "false"):
        pytest.fail(f"{problem} (TOOLKIT_REQUIRE_BROWSER=1 makes this a failure)", pytrace=False)
    pytest.skip(f"{problem}; install it with `apt-get install -y chromium chromium-driver` "
                "or set TOOLKIT_REQUIRE_BROWSER=1 to fail instead of skipping")


@contextmanager
def running_browser() -> Iterator[Any]:
    """A headless Chromium (see :func:`launch_browser`), closed with its Playwright."""
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        browser = launch_browser(playwright)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()


def launch_browser(playwright: Any) -> Any:
    """Chromium from Debian, through Playwright, with no network of its own."""
    path = chromium_path()
    if path is None:
        raise RuntimeError(f"Chromium not found at {CHROMIUM}")
    return playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS,
                                      headless=True)


def python_notebook(*cells: str, parameters: str | None = None) -> Any:
    """A Python 3 notebook of these code cells, after a ``parameters``-tagged cell when
    ``parameters`` is given."""
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    if parameters is not None:
        cell = nbformat.v4.new_code_cell(parameters)
        cell.metadata["tags"] = ["parameters"]
        notebook.cells.insert(0, cell)
    return notebook


def write_and_papermill(server: JupyterServer, notebook: Any, source: str, executed: str) -> Any:
    """``notebook`` saved as ``source`` in the server's folder and executed by papermill
    (untrusted output) as ``executed``, from the repository; the executed notebook."""
    import nbformat
    import papermill

    root = Path(server.root_dir)
    nbformat.write(notebook, root / source)
    papermill.execute_notebook(str(root / source), str(root / executed), kernel_name="python3",
                               cwd=str(REPO_ROOT), progress_bar=False)
    return nbformat.read(root / executed, as_version=4)


def notebook_url(server: JupyterServer, path: str) -> str:
    """URL opening ``path`` (relative to the server root) in a fresh workspace."""
    return f"{server.url}/lab/tree/{quote(path)}?reset&token={server.token}"


def active_panel(page: Any) -> Any:
    """Locator of the notebook panel currently shown (hidden tabs excluded)."""
    return page.locator(ACTIVE_PANEL)


#: True once the panel's kernel is connected and idle. The execution indicator
#: alone says "idle" before any kernel is attached ("No Kernel"), so the kernel
#: name shown in the toolbar must be a real one too.
_KERNEL_IDLE_JS = """(panelSelector) => {
  const panel = document.querySelector(panelSelector);
  if (!panel) return false;
  const indicator = panel.querySelector('.jp-Notebook-ExecutionIndicator');
  const name = panel.querySelector('.jp-KernelName, [data-jp-item-name="kernelName"]');
  return !!indicator && indicator.getAttribute('data-status') === 'idle'
    && !!name && name.textContent.trim() !== '' && !/No Kernel/i.test(name.textContent);
}"""

#: True when no cell of the panel is running or queued (prompt "[*]:").
_CELLS_DONE_JS = """(panelSelector) => {
  const panel = document.querySelector(panelSelector);
  if (!panel) return false;
  return Array.from(panel.querySelectorAll('.jp-InputPrompt'))
    .every((prompt) => !prompt.textContent.includes('*'));
}"""


def wait_for_idle(page: Any, timeout: float = 120_000) -> None:
    """Wait until the active notebook's kernel is connected and reports ``idle``."""
    page.wait_for_function(_KERNEL_IDLE_JS, arg=ACTIVE_PANEL, timeout=timeout)


def open_notebook(page: Any, server: JupyterServer, path: str,
                  timeout: float = 120_000) -> Any:
    """Open ``path`` in JupyterLab, wait for its kernel to be idle, return the panel."""
    page.goto(notebook_url(server, path), wait_until="domcontentloaded", timeout=timeout)
    panel = active_panel(page)
    panel.wait_for(state="visible", timeout=timeout)
    panel.locator(".jp-Cell").first.wait_for(state="attached", timeout=timeout)
    wait_for_idle(page, timeout)
    return panel


def run_all_cells(page: Any, timeout: float = 300_000) -> None:
    """Run every cell through JupyterLab's Run menu and wait until all have finished."""
    wait_for_idle(page, timeout)
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    page.wait_for_function(_CELLS_DONE_JS, arg=ACTIVE_PANEL, timeout=timeout)
    wait_for_idle(page, timeout)


def screenshot(page: Any, name: str, target: Any | None = None) -> Path:
    """Save a PNG under ``tests/artifacts/`` (the page, or one locator) and return its path."""
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS_DIR / f"{name}.png"
    (target or page).screenshot(path=str(path), **({} if target else {"full_page": True}))
    return path
