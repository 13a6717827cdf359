"""Headless Chromium (Debian `chromium`) showing a report page the way a person sees it: a
screenshot and the DOM after rendering. Offline: the page is a local file and every background
fetch Chromium would make is switched off."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from tests.support.prereq import require_binary

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--window-size=1280,1000"]


@dataclass(frozen=True)
class Rendered:
    screenshot: Path
    dom: str


def _chromium(args: list[str], profile: Path, timeout: float) -> str:
    process = subprocess.Popen(["chromium", *FLAGS, f"--user-data-dir={profile}", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        out, _ = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:  # timed out: end its whole process group (it is ours)
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return out


def render(page: Path, out_dir: Path, *, timeout: float = 180.0) -> Rendered:
    """Screenshot PAGE into OUT_DIR/<page stem>.png and dump its rendered DOM; a fresh profile each call."""
    require_binary("chromium")
    out_dir.mkdir(parents=True, exist_ok=True)
    screenshot = out_dir / f"{page.stem}.png"
    url = page.resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="drb-chromium-") as profile:
        _chromium([f"--screenshot={screenshot}", url], Path(profile) / "shot", timeout)
        dom = _chromium(["--dump-dom", url], Path(profile) / "dom", timeout)
    return Rendered(screenshot, dom)


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")


def colours(path: Path) -> set[str]:
    """Every pixel colour of an 8-bit RGB(A) PNG as "#rrggbb" (decoded here: zlib and PNG's row filters)."""
    data = path.read_bytes()
    width, height = png_size(path)
    offset, idat, colour_type, depth = 8, b"", 0, 8
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        chunk = data[offset + 8:offset + 8 + length]
        if kind == b"IHDR":
            depth, colour_type = chunk[8], chunk[9]
        elif kind == b"IDAT":
            idat += chunk
        offset += 12 + length
    assert depth == 8 and colour_type in (2, 6), f"unexpected PNG format (depth {depth}, colour type {colour_type})"
    channels = 3 if colour_type == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * channels
    previous = bytearray(stride)
    found: set[bytes] = set()
    position = 0
    for _ in range(height):
        kind, line = raw[position], bytearray(raw[position + 1:position + 1 + stride])
        position += 1 + stride
        if kind:
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                up, corner = previous[i], (previous[i - channels] if i >= channels else 0)
                if kind == 1:
                    line[i] = (line[i] + left) & 255
                elif kind == 2:
                    line[i] = (line[i] + up) & 255
                elif kind == 3:
                    line[i] = (line[i] + (left + up) // 2) & 255
                else:
                    estimate = left + up - corner
                    pa, pb, pc = abs(estimate - left), abs(estimate - up), abs(estimate - corner)
                    line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 255
        found.update(bytes(line[i:i + 3]) for i in range(0, stride, channels))
        previous = line
    return {"#" + colour.hex() for colour in found}
