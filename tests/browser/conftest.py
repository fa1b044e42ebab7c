"""The browser check's machinery: a headless JupyterLab on loopback and a headless Chromium.

These tests run only when asked for by path (``pytest tests/browser``, as ``.ci/run`` does) or
with ``NERQA_BROWSER=1``; a plain ``pytest`` / ``make test`` reports them as skipped. They need
Playwright (``pip install -c constraints.txt playwright``) and Debian's Chromium at
``/usr/bin/chromium`` (or ``$NERQA_CHROMIUM``): no browser is downloaded.

JupyterLab runs from this Python (the repository's ``.venv``) with throw-away config, settings
and workspace folders, so nothing of the user's own JupyterLab set-up leaks in or is changed.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPOSITORY_ROOT = HERE.parents[1]
CHROMIUM = Path(os.environ.get("NERQA_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
NOTEBOOK_ENVIRONMENT = {"NERQA_TINY": "1", "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1",
                        "TOKENIZERS_PARALLELISM": "false"}
# JupyterLab user settings: no news feed or update check (no pop-up covers the notebook), and no
# autosave, so running the notebook never writes its outputs into the repository's copy.
LAB_SETTINGS = {"@jupyterlab/apputils-extension/notification.jupyterlab-settings":
                {"fetchNews": "false", "checkForUpdates": False},
                "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False}}
SERVER_START_SECONDS = 90


# -- only when asked for ---------------------------------------------------------------------------
def _asked_for(config) -> bool:
    """True when a command-line path points into this folder, or ``NERQA_BROWSER=1``."""
    if os.environ.get("NERQA_BROWSER", "").strip() == "1":
        return True
    start = Path(config.invocation_params.dir)
    for argument in config.invocation_params.args:
        if argument.startswith("-"):
            continue
        path = (start / argument.split("::")[0]).resolve()
        if path == HERE or HERE in path.parents:
            return True
    return False


def pytest_collection_modifyitems(config, items):
    if _asked_for(config):
        return
    skip = pytest.mark.skip(reason="browser check: run `pytest tests/browser` (.ci/run does)")
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(skip)


# -- JupyterLab ------------------------------------------------------------------------------------
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_lab_folders(folder: Path) -> dict[str, str]:
    """Empty Jupyter config/runtime/workspace folders and the user settings above; their variables."""
    variables = {}
    for name, variable in (("config", "JUPYTER_CONFIG_DIR"), ("runtime", "JUPYTER_RUNTIME_DIR"),
                           ("settings", "JUPYTERLAB_SETTINGS_DIR"), ("workspaces", "JUPYTERLAB_WORKSPACES_DIR"),
                           ("ipython", "IPYTHONDIR")):
        (folder / name).mkdir(parents=True, exist_ok=True)
        variables[variable] = str(folder / name)
    for relative, values in LAB_SETTINGS.items():
        path = folder / "settings" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    return variables


def _log_tail(path: Path, characters: int = 4000) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return text[-characters:]


def _wait_until_serving(process: subprocess.Popen, status_url: str, log: Path) -> None:
    """Poll ``/api/status`` until the server answers; fail with its log if it exits or never answers."""
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with code {process.returncode}:\n{_log_tail(log)}")
        try:
            with urllib.request.urlopen(status_url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"JupyterLab did not answer within {SERVER_START_SECONDS} s:\n{_log_tail(log)}")


def _stop(process: subprocess.Popen, shutdown_url: str) -> None:
    """Ask the server to shut down (it stops its kernels too); kill its process group if it lingers."""
    if process.poll() is None:
        try:
            request = urllib.request.Request(shutdown_url, method="POST")
            urllib.request.urlopen(request, timeout=10).close()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    try:  # the server's session: its kernels as well, should any outlive it
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


class Lab:
    """A running JupyterLab: ``url(path)`` gives a page address with the token."""

    def __init__(self, port: int, token: str, log: Path):
        self.port, self.token, self.log = port, token, log
        self.base = f"http://127.0.0.1:{port}"

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}?token={self.token}"

    def log_tail(self) -> str:
        return _log_tail(self.log)


def pretrain_tiny_model() -> None:
    """Train (or find) the tiny workbook model, so the notebook only loads it.

    In a child process with the notebooks' environment: ``workbook.settings()`` reads it, and the
    test process keeps neither torch nor the model in memory while the browser and kernel run.
    """
    code = ("from nerqa_helpers import workbook\n"
            "s = workbook.settings()\n"
            "if workbook.saved_run(s) is None:\n"
            "    workbook.load_or_train(s)\n")
    env = {**os.environ, **NOTEBOOK_ENVIRONMENT}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPOSITORY_ROOT, env=env,
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, f"training the tiny model failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"


@pytest.fixture(scope="session")
def jupyter_lab():
    """A headless JupyterLab serving the repository root on a free loopback port, with a random token."""
    pretrain_tiny_model()
    with tempfile.TemporaryDirectory(prefix="nerqa-lab-") as folder:
        folder = Path(folder)
        port, token, log = free_port(), secrets.token_hex(16), folder / "jupyterlab.log"
        env = {**os.environ, **NOTEBOOK_ENVIRONMENT, **write_lab_folders(folder)}
        command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
                   "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
                   f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={REPOSITORY_ROOT}",
                   "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        with open(log, "wb") as log_file:
            process = subprocess.Popen(command, cwd=REPOSITORY_ROOT, env=env, stdin=subprocess.DEVNULL,
                                       stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
        lab = Lab(port, token, log)
        try:
            _wait_until_serving(process, lab.url("api/status"), log)
            yield lab
        finally:
            _stop(process, lab.url("api/shutdown"))


# -- Chromium --------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, headless, driven by Playwright (never a downloaded browser)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture()
def page(browser):
    """A fresh page, 1280 × 900, with generous waits (the kernel trains nothing, but CPUs are slow)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        yield page
    finally:
        context.close()
