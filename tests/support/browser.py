"""Headless Chromium for tests that look at pages as a person would.

Debian's Chromium (installed by scripts/browser.sh, found through DIZUO_TEST_CHROMIUM or PATH) is
driven by Playwright; a test without it is skipped, as PostgreSQL tests are without a server.
Screenshots go to ``test-artifacts/screenshots/`` (or DIZUO_TEST_ARTIFACTS) for a person to read.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.shared import REPO

CHROMIUM = os.environ.get("DIZUO_TEST_CHROMIUM") or shutil.which("chromium")
ARTIFACTS = Path(os.environ.get("DIZUO_TEST_ARTIFACTS") or REPO / "test-artifacts") / "screenshots"


@pytest.fixture
def browser() -> Iterator[Any]:
    """A headless Chromium for one test (about 0.5 s to start).

    Not shared across tests: Playwright's sync API runs its own event loop in this thread while it is
    open, and pytest-asyncio's tests that follow would find it running."""
    if not CHROMIUM:
        pytest.skip("no Chromium here (scripts/browser.sh installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot of *page* as ``NAME.png`` among the test artifacts."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


PASSWORD = "correct horse battery"  # of the members the console tests make


def sign_in(browser: Any, url: str, username: str, password: str = PASSWORD) -> Any:
    """A new zh-CN page of *browser*, signed in to the console at *url* as *username*."""
    page = browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN").new_page()
    page.goto(f"{url}/console/")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    return page
