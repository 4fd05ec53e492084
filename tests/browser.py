"""The HTML report seen in a real browser: a page rendered headless in Chromium, and the
pixels of a colour on its screenshot (tests/sessions/test_reports.py,
tests/unit/test_report_training.py)."""

import shutil
import subprocess

import pytest


def chromium():
    """Chromium's path; skips the test on a machine without it, or without Pillow to read
    the screenshot."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            pytest.importorskip("PIL.Image")
            return found
    pytest.skip("no chromium on this machine (apt-get install chromium)")


def screenshot(browser, url, shot, window):
    """The page at ``url`` rendered in a ``window`` ("width,height") and saved to ``shot``:
    each colour of the screenshot -> its number of pixels."""
    from PIL import Image

    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--window-size={window}",
            f"--screenshot={shot}",
            url,
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    colors = Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 20)
    return {rgb: n for n, rgb in colors}


def near(counts, target, tol=12):
    """Pixels of ``counts`` within ``tol`` of the colour ``target`` on every channel."""
    return sum(
        n
        for rgb, n in counts.items()
        if all(abs(a - b) <= tol for a, b in zip(rgb, target, strict=True))
    )
