"""A real headless Chromium for the Web UI tests: found, installed when missing, launched.

Playwright comes from PyPI, but its own browser download (``playwright install``) needs the
internet, so the browser is the distribution's ``chromium`` package. The test machines are
Debian-like and run the tests as root with the package registry reachable, so a missing Chromium
is installed with apt; only where that cannot be done do the browser tests skip, saying why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from playwright.async_api import Browser, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
INSTALL_TIMEOUT = 300  # seconds for one apt-get run; a cold install fetches about 100 MB
# The machines' network is closed: Chromium's background services (updates, sync, field trials,
# QUIC probes) would only hang on refused connections, so they are all switched off.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # root in a container has no user namespace for the sandbox
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class ChromiumUnavailable(Exception):
    """No Chromium here, and none can be installed; the message says why."""


def ensure_chromium() -> Path:
    """``/usr/bin/chromium``, installing Debian's package first when it is missing."""
    if CHROMIUM.exists():
        return CHROMIUM
    apt_get = shutil.which("apt-get")
    if apt_get is None:
        raise ChromiumUnavailable(f"{CHROMIUM} is missing and there is no apt-get to install it")
    if os.geteuid() != 0:
        raise ChromiumUnavailable(
            f"{CHROMIUM} is missing and installing it needs root: apt-get install chromium"
        )
    install = [apt_get, "install", "-y", "--no-install-recommends", "chromium"]
    failure = _apt(install)
    if failure is not None:
        # A fresh machine often has no package lists yet: fetch them and try once more.
        failure = _apt([apt_get, "update"]) or _apt(install)
    if failure is not None or not CHROMIUM.exists():
        raise ChromiumUnavailable(
            f"{CHROMIUM} is missing and `apt-get install chromium` failed: {failure}"
        )
    return CHROMIUM


def _apt(command: list[str]) -> str | None:
    """Run one apt-get command; ``None`` when it succeeds, else the tail of its output."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        done = subprocess.run(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"`{' '.join(command)}` took more than {INSTALL_TIMEOUT} s"
    if done.returncode == 0:
        return None
    tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
    return f"`{' '.join(command)}` exited {done.returncode}: " + " / ".join(tail)


@asynccontextmanager
async def chromium(executable: Path) -> AsyncIterator[Browser]:
    """A headless Chromium driven by Playwright, closed on exit."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(executable), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()
