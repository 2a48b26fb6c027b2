"""A real browser for tests of the class web page: headless Chromium driven by selenium (Debian's ``chromium``
and ``chromium-driver``, installed by ``scripts/setup-host --test``), and an app served by uvicorn in a thread.

    with serve_in_thread(create_app("k8s-0412")) as base, chromium() as browser:
        browser.get(f"{base}/?token={token}")
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import uvicorn
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait
from starlette.types import ASGIApp

from labkit.web.serving import listening_socket

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WINDOW = (1280, 900)
SERVER_START_TIMEOUT = 10.0


def missing_browser() -> str | None:
    """Why no browser test can run here, or None."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not path.exists():
            return f"{path} is missing (apt-get install {package}, or scripts/setup-host --test)"
    return None


@contextlib.contextmanager
def chromium(download_dir: Path | None = None) -> Iterator[webdriver.Chrome]:
    """Headless Chromium, 1280x900; files it downloads go to ``download_dir`` without asking."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    options.add_argument("--headless=new")
    options.add_argument(f"--window-size={WINDOW[0]},{WINDOW[1]}")
    options.add_argument("--disable-dev-shm-usage")  # a container's /dev/shm is too small for its renderer
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")  # Chromium refuses to run its sandbox as root
    if download_dir is not None:
        prefs = {"download.default_directory": str(download_dir), "download.prompt_for_download": False}
        options.add_experimental_option("prefs", prefs)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


def wait_until(
    browser: webdriver.Chrome, condition: Callable[[webdriver.Chrome], bool], seconds: float
) -> None:
    """Wait for ``condition``, asked again while the page is being replaced (a pressed button's POST and its
    redirect, the grid's poll re-rendering its cells): an element found a moment ago may be gone by the
    time its text is read, or not there yet."""
    WebDriverWait(
        browser, seconds, ignored_exceptions=(StaleElementReferenceException, NoSuchElementException)
    ).until(condition)


@contextlib.contextmanager
def serve_in_thread(app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread on ``host:port`` (0: a free port, bound before the thread starts,
    so no other process can take it meanwhile); yields the base URL, then stops the server."""
    sock = listening_socket(host, port)
    bound = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=bound, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on {host}:{bound}")
            time.sleep(0.02)
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(SERVER_START_TIMEOUT)
        sock.close()
