"""The image build's inputs digest and cache (drbootstrap.images.build): no mmdebstrap here."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from drbootstrap.errors import SpecError
from drbootstrap.images import build
from drbootstrap.images.build import RECIPES, build_image, checkout_root, image_digest

SOURCES = "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\n"


def _copy_tree(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    for part in ("images/worker", "images/master", "recipes", "drbootstrap"):
        (root / part).mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname='drbootstrap'\n")
    (root / "images/worker/boot.sh").write_text("#!/bin/sh\n")
    (root / "images/master/boot.sh").write_text("#!/bin/sh\n")
    (root / "drbootstrap/__init__.py").write_text("")
    return root


def test_digest_follows_every_input(tmp_path: Path) -> None:
    root = _copy_tree(tmp_path)
    worker = RECIPES["worker"]
    first = image_digest(worker, SOURCES, root, ["click==8.1.7"])
    assert image_digest(worker, SOURCES, root, ["click==8.1.7"]) == first
    assert image_digest(RECIPES["master"], SOURCES, root, ["click==8.1.7"]) != first
    assert image_digest(worker, SOURCES.replace("bookworm", "trixie"), root, ["click==8.1.7"]) != first
    assert image_digest(worker, SOURCES, root, ["click==8.1.8"]) != first
    assert image_digest(dataclasses.replace(worker, packages=worker.packages + ("vim",)), SOURCES, root,
                        ["click==8.1.7"]) != first
    (root / "images/worker/boot.sh").write_text("#!/bin/sh\necho changed\n")
    assert image_digest(worker, SOURCES, root, ["click==8.1.7"]) != first
    # bytecode caches and documentation are not inputs
    changed = image_digest(worker, SOURCES, root, ["click==8.1.7"])
    (root / "images/README.md").write_text("# images\n")
    (root / "drbootstrap/__pycache__").mkdir()
    (root / "drbootstrap/__pycache__/x.pyc").write_bytes(b"\0")
    assert image_digest(worker, SOURCES, root, ["click==8.1.7"]) == changed


def test_second_build_with_same_inputs_reuses_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sources = tmp_path / "debian.sources"
    sources.write_text(SOURCES)
    digest = image_digest(RECIPES["worker"], SOURCES, checkout_root(), build._runtime_requirements())
    entry = tmp_path / "cache" / f"worker-{digest[:16]}"
    entry.mkdir(parents=True)
    (entry / "manifest.json").write_text(json.dumps({"name": "worker"}))

    def no_build(*args: object, **kwargs: object) -> None:
        raise AssertionError("an image of unchanged inputs was built again")

    monkeypatch.setattr(build, "_make", no_build)
    image = build_image("worker", cache_dir=tmp_path / "cache", sources_file=sources)
    assert image.reused and image.disk == entry / "disk.qcow2" and image.digest == digest
    other = tmp_path / "other.sources"
    other.write_text(SOURCES.replace("deb.debian.org", "mirror.example"))
    with pytest.raises(AssertionError):  # other sources: another digest, so a build
        monkeypatch.setattr(build, "_require_tools", lambda: None)
        build_image("worker", cache_dir=tmp_path / "cache", sources_file=other)


def test_unknown_image_and_unreadable_sources_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="choose master or worker"):
        build_image("db", cache_dir=tmp_path)
    with pytest.raises(SpecError, match="--apt-sources"):
        build_image("worker", cache_dir=tmp_path, sources_file=tmp_path / "missing.sources")


def test_runtime_requirements_pin_the_installed_dependencies() -> None:
    pins = build._runtime_requirements()
    names = {pin.split("==")[0] for pin in pins}
    assert {"click", "pyyaml", "pydantic", "apache-libcloud"} <= names
    assert all("==" in pin for pin in pins)
    assert "pytest" not in names  # test extras are not runtime


def test_customize_script_installs_offline_and_disables_services_boot_sh_runs() -> None:
    script = build._customize_script(RECIPES["master"], Path("/src"))
    assert "--no-index" in script and "/usr/share/drbootstrap/images" in script
    assert "puppetserver-aot --build" in script
    assert "dnsmasq.service" in script and "ssh.service" in script
    assert "puppetserver-aot" not in build._customize_script(RECIPES["worker"], Path("/src"))


def test_serial_console_is_the_last_console_so_boot_sh_output_reaches_it() -> None:
    consoles = [word for word in build.KERNEL_CMDLINE.split() if word.startswith("console=")]
    assert consoles[-1] == "console=ttyS0"  # /dev/console: cloud-init's and boot.sh's host key block
    assert f"root=LABEL={build.ROOT_LABEL}" in build.KERNEL_CMDLINE
