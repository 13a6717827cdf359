"""Benchmark: `drbootstrap images build` from nothing (an empty cache: every .deb downloaded), then
again with unchanged inputs (the cache entry reused), per image; the disk's size on the host.

    DRB_BENCH_IMAGES="worker master" python -m pytest tests/bench/bench_image_build.py -s   (root)

The cache directory is a fresh temporary one, so the first build really starts from nothing; the
machine's own cache (/var/cache/drbootstrap/images) is left alone.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tests.support.prereq import require_binary, require_root, run_cli


def test_image_build_from_nothing_then_cached(tmp_path: Path) -> None:
    require_root()
    require_binary("mmdebstrap", "qemu-img", "mkfs.ext4")
    for name in os.environ.get("DRB_BENCH_IMAGES", "worker").split():
        timings = []
        for _ in range(2):
            started = time.monotonic()
            result = run_cli("images", "build", name, "--cache-dir", str(tmp_path), "--json")
            assert result.exit_code == 0, result.stderr
            timings.append(time.monotonic() - started)
            image = json.loads(result.stdout)["images"][0]
        assert image["reused"]
        disk = Path(image["disk"])
        manifest = json.loads(Path(image["manifest"]).read_text())
        boot_files = Path(image["kernel"]).stat().st_size + Path(image["initrd"]).stat().st_size
        print(f"\n{name}: from nothing {timings[0]:.0f} s, unchanged inputs {timings[1]:.2f} s; "
              f"disk.qcow2 {disk.stat().st_size / 2**20:.0f} MiB (virtual {manifest['virtual_size'] / 2**30:.1f} GiB), "
              f"kernel+initrd {boot_files / 2**20:.0f} MiB")
