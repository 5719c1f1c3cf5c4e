"""The independent clients tests use to prove media plays: ffmpeg, ffprobe, headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]


def require(binary: str) -> str:
    """Path of a client binary; missing is a failure in CI (make installs it), a skip elsewhere."""
    path = shutil.which(binary) or (binary if Path(binary).exists() else None)
    if path:
        return path
    if os.environ.get("CI"):
        pytest.fail(f"{binary} is not installed; `make install` should have installed it")
    pytest.skip(f"{binary} is not installed (make install)")


def ffprobe_frames(path_or_url: str | Path, timeout: float = 120) -> list[dict]:
    """Decoded video frames ffprobe reports (best-effort pts, key flag), in order."""
    out = subprocess.run(
        [require("ffprobe"), "-v", "error", "-select_streams", "v:0", "-show_entries",
         "frame=best_effort_timestamp_time,key_frame,pts_time", "-of", "json", str(path_or_url)],
        capture_output=True, text=True, timeout=timeout, check=True)
    return json.loads(out.stdout).get("frames", [])


def ffmpeg_plays(url: str, seconds: float = 6, timeout: float = 120) -> subprocess.CompletedProcess:
    """Decode ``seconds`` of a URL with ffmpeg to null; errors show in stderr."""
    return subprocess.run(
        [require("ffmpeg"), "-hide_banner", "-v", "error", "-i", url, "-t", str(seconds),
         "-f", "null", "-"], capture_output=True, text=True, timeout=timeout)


def browser():
    """(playwright, browser) driving Debian's chromium headless; caller closes both."""
    from playwright.sync_api import sync_playwright

    require(CHROMIUM)
    pw = sync_playwright().start()
    return pw, pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
