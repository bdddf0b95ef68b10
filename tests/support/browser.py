"""The ops board in a real headless Chromium (Debian's, driven by Playwright), for tests."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(
    os.environ.get("LINEAGE_TEST_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts")
)
needs_chromium = pytest.mark.skipif(
    not CHROMIUM, reason="Debian's chromium is not installed (make test installs it)"
)
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def board_page(credentials: tuple[str, str] | None = None, **context: Any) -> Iterator[Any]:
    """A fresh browser page (HTTP Basic credentials if given), closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            if credentials:
                user, password = credentials
                context["http_credentials"] = {"username": user, "password": password}
            yield browser.new_context(**context).new_page()
        finally:
            browser.close()
