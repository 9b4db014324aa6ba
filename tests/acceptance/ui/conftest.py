"""Browser fixtures: Debian's Chromium driven by Playwright against a real `legato serve`.

No browser is ever downloaded: Playwright launches `/usr/bin/chromium` (scripts/test installs it
with apt when missing). Every page records its console messages and page errors; a test fails
if the browser logged an error it did not announce with `console.expect(...)`.
Screenshots go to `test-artifacts/ui/`.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.conftest import Server, start_server, stop_server

CHROMIUM = os.environ.get("LEGATO_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "ui"
VIEWPORT = {"width": 1440, "height": 900}


@dataclass
class ConsoleLog:
    """What the page said on its console, and which errors the test announced in advance."""

    messages: list[tuple[str, str]] = field(default_factory=list)
    expected: list[re.Pattern[str]] = field(default_factory=list)

    def expect(self, pattern: str) -> None:
        """Allow one error matching `pattern` (e.g. the 401 a wrong key provokes)."""
        self.expected.append(re.compile(pattern))

    def unexpected_errors(self) -> list[str]:
        """Errors nobody announced (each announcement excuses one matching error)."""
        allowance = list(self.expected)
        left: list[str] = []
        for kind, text in self.messages:
            if kind not in {"error", "pageerror"}:
                continue
            match = next((p for p in allowance if p.search(text)), None)
            if match is not None:
                allowance.remove(match)
            else:
                left.append(f"{kind}: {text}")
        return left


def _launchable() -> bool:
    return shutil.which(CHROMIUM) is not None or Path(CHROMIUM).exists()


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the whole session."""
    if not _launchable():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{CHROMIUM} is missing and CI=true (scripts/test installs it with apt)")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`legato serve` on SQLite with one workspace, shared by a test module."""
    workdir = tmp_path_factory.mktemp("console")
    server = start_server(f"sqlite:///{workdir / 'legato.db'}", workdir)
    try:
        yield server
    finally:
        stop_server(server)


@dataclass
class Browsing:
    """A fresh browser context and page, with its console log."""

    page: Page
    console: ConsoleLog
    base_url: str


@pytest.fixture
def browsing(browser: Browser, console_server: Server) -> Iterator[Browsing]:
    """A new context (empty storage) and page; fails the test on unannounced console errors."""
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    page = context.new_page()
    log = ConsoleLog()
    page.on("console", lambda m: log.messages.append((m.type, m.text)))
    page.on("pageerror", lambda e: log.messages.append(("pageerror", str(e))))
    page.set_default_timeout(15_000)
    try:
        yield Browsing(page, log, console_server.url)
    finally:
        errors = log.unexpected_errors()
        context.close()
    assert not errors, "the browser console logged errors:\n" + "\n".join(errors)


def shot(page: Page, name: str, *, full_page: bool = False) -> Path:
    """Save a screenshot under test-artifacts/ui/."""
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path
