"""A Playground server and a headless Chromium for the page's tests."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

# The docs' pictures of the Playground are these tests' screenshots.
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "_static" / "playground"


def _chromium():
    # Playwright's own browser download cannot be fetched on our machines:
    # the tests drive the system's Chromium (Debian's package `chromium`).
    path = os.environ.get("SKDNN_CHROMIUM") or shutil.which("chromium")
    path = path or shutil.which("chromium-browser")
    if path is None:
        pytest.fail(
            "The browser tests need Chromium: install Debian's package "
            "(apt-get install chromium) or set SKDNN_CHROMIUM to its path."
        )
    return path


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server():
    """The Playground, served by its own command, as a user starts it."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "skdnn.playground", "--no-browser", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(url + "api/options", timeout=2).read()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(
                    "The Playground did not start:\n" + process.stdout.read()
                ) from None
            time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=_chromium(), args=["--no-sandbox"]
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    """A fresh tab on the Playground, failing the test on any page error."""
    context = browser.new_context(viewport={"width": 1400, "height": 760})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda message: (
            errors.append(message.text) if message.type == "error" else None
        ),
    )
    page.errors = errors
    yield page
    context.close()


@pytest.fixture(scope="session")
def screenshots():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
