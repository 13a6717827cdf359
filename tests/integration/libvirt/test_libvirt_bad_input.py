"""`up` on the libvirt provider with an unreachable URI or a missing image: one line on stderr,
exit 4 or 5, and nothing made (no domain, no network, no bridge, no files)."""

from __future__ import annotations

import pytest

from tests.integration.libvirt.conftest import leftovers, make_environment, tear_down
from tests.support.prereq import REPO_ROOT

pytestmark = [pytest.mark.integration]
EXAMPLE = (REPO_ROOT / "examples" / "libvirt.yaml").read_text()


def test_an_unreachable_uri_is_one_line_exit_5_and_nothing_is_made(libvirtd, tmp_path):
    for name in ("master", "worker"):  # images that are there: the URI is what fails
        (tmp_path / f"{name}-0").mkdir()
        (tmp_path / f"{name}-0" / "disk.qcow2").write_bytes(b"")
        (tmp_path / f"{name}-0" / "manifest.json").write_text('{"disk": "disk.qcow2"}')
    text = EXAMPLE.replace("uri: qemu:///system", "uri: qemu+unix:///system?socket=/nonexistent/libvirt-sock")
    env = make_environment(text, "virtnouri", image_cache=tmp_path)
    try:
        run = env.cli("up", str(env.spec_file), timeout=300)
        assert run.returncode == 5, run.stderr
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and "is unreachable" in lines[0] and "libvirtd" in lines[0], run.stderr
        assert leftovers("virtnouri") == []
    finally:
        tear_down(env)
        assert leftovers("virtnouri") == []


def test_a_missing_image_is_one_line_exit_4_and_nothing_is_made(libvirtd, tmp_path):
    env = make_environment(EXAMPLE, "virtnoimg", image_cache=tmp_path)  # an empty image cache
    try:
        run = env.cli("up", str(env.spec_file), timeout=300)
        assert run.returncode == 4, run.stderr
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and "not found" in lines[0] and "images build" in lines[0], run.stderr
        assert leftovers("virtnoimg") == []
    finally:
        tear_down(env)
