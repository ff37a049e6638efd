"""Fixtures for the browser tests: the demo served on fresh SQLite files, and
Debian's Chromium driven by Playwright.

These tests sit outside ``testpaths``: ``./runtests`` does not collect them,
``./runtests tests_e2e`` (as ``.ci/run`` does) runs them. They need the
``e2e`` extra (Playwright) and ``/usr/bin/chromium`` (Debian's ``chromium``
package); Playwright's own browser downloads are never used.
"""

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from crossfk.pytest_plugin import guard_enabled

REPO = Path(__file__).resolve().parent.parent
MANAGE = REPO / "demo" / "manage.py"

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps trying to reach
# Google's hosts, which a closed network refuses.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

SERVER_START_SECONDS = 60
# The demo's superuser (blog/management/commands/demo.py).
USERNAME = "admin"
PASSWORD = "admin"


@dataclass
class DemoServer:
    url: str
    var_dir: Path
    log: Path

    @property
    def primary(self) -> Path:
        return self.var_dir / "primary.sqlite3"

    @property
    def secondary(self) -> Path:
        return self.var_dir / "secondary.sqlite3"


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_answering(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"the demo server exited with {process.returncode}:\n{log.read_text()}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    pytest.fail(
        f"the demo server did not answer {url} within {SERVER_START_SECONDS}s:\n"
        f"{log.read_text()}"
    )


@pytest.fixture
def demo_server(tmp_path: Path, pytestconfig: pytest.Config) -> Iterator[DemoServer]:
    """``manage.py demo --serve`` on a free loopback port, its databases in
    ``tmp_path``: seeded, with the demo superuser, stopped after the test.

    Under ``--crossfk-guard`` (``crossfk_guard = true`` in pyproject.toml)
    each request runs inside ``guard_cross_database()``, and a
    ``CrossDatabaseError`` in the server's log fails the test."""
    var_dir = tmp_path / "var"
    log = tmp_path / "server.log"
    port = free_loopback_port()
    guarded = guard_enabled(pytestconfig)
    env = {
        **os.environ,
        "CROSSFK_DEMO_GUARD": "1" if guarded else "",
        "CROSSFK_DEMO_VAR": str(var_dir),
        # pytest-django has set the test suite's settings in os.environ.
        "DJANGO_SETTINGS_MODULE": "demo_site.settings",
        "PYTHONUNBUFFERED": "1",
    }
    with log.open("w") as log_file:
        process = subprocess.Popen(
            [sys.executable, str(MANAGE), "demo", "--serve", f"127.0.0.1:{port}"],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_answering(f"{url}/", process, log)
        yield DemoServer(url=url, var_dir=var_dir, log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if guarded and "CrossDatabaseError" in log.read_text():
        pytest.fail(f"the demo crossed databases:\n{log.read_text()}")


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page in a fresh browser context: no cookies, no cache."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


@pytest.fixture
def failed_responses(page: Page) -> list[str]:
    """The responses of ``page`` with an error status, and the requests that
    got none: a test asserts it empty to know the admin's CSS and JavaScript
    loaded."""
    failures = []

    def check(response) -> None:
        # Chromium asks for /favicon.ico on its own; the demo has none.
        if response.status >= 400 and not response.url.endswith("/favicon.ico"):
            failures.append(f"{response.status} {response.url}")

    def unanswered(request) -> None:
        # Select2 aborts its pending autocomplete request when the next key
        # comes: the page cancelled it, the server did not fail it.
        if request.failure != "net::ERR_ABORTED":
            failures.append(f"no answer {request.url} ({request.failure})")

    page.on("response", check)
    page.on("requestfailed", unanswered)
    return failures


@pytest.fixture
def admin_page(
    page: Page, failed_responses: list[str], demo_server: DemoServer
) -> Page:
    """``page``, logged in to the demo's admin as its superuser."""
    page.goto(f"{demo_server.url}/admin/")
    page.fill("#id_username", USERNAME)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{demo_server.url}/admin/")
    assert page.locator("#user-tools").inner_text().upper().startswith("WELCOME")
    return page
