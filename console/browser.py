"""A headless Chromium for the console's screenshots (the demo) and its browser tests:
Debian's chromium driven through its chromedriver with selenium (installed by
`make browser`; paths overridable with SLUICEGATE_CHROMIUM and SLUICEGATE_CHROMEDRIVER).

The flags keep Chromium off the network beyond the page it is pointed at (no background
updates, sync or component downloads), so it starts the same on a closed machine."""

from __future__ import annotations

import os
import tempfile
from typing import Any

__all__ = ["headless_chromium", "sign_in"]

_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
)


def headless_chromium() -> Any:
    """A started ``selenium.webdriver.Chrome``; ``quit()`` it when done."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("SLUICEGATE_CHROMIUM", "/usr/bin/chromium")
    for flag in _FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='sg-chromium-')}")
    service = Service(os.environ.get("SLUICEGATE_CHROMEDRIVER", "/usr/bin/chromedriver"))
    return webdriver.Chrome(options=options, service=service)


def sign_in(driver: Any, base_url: str, token: str) -> None:
    """Sign ``driver`` in to the console at ``base_url`` with ``token``."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{base_url}/ui/login")
    WebDriverWait(driver, 30).until(ec.presence_of_element_located((By.ID, "token")))
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.ID, "sign-in").click()
    WebDriverWait(driver, 30).until(lambda d: "/ui/login" not in d.current_url)
