"""puppetserver's Clojure compiled ahead of time (as the master image is made) is what the JVM then
loads, instead of compiling the Debian sources again; a second build reuses the jar."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest

from drbootstrap.images import puppetserver_aot
from tests.support.prereq import require, require_binary

pytestmark = pytest.mark.integration


def test_compiled_jar_is_built_once_and_its_classes_replace_the_sources(tmp_path):
    require_binary("java")
    require(puppetserver_aot.PUPPETSERVER_JAR.exists(), "puppetserver (Debian puppetserver package)")
    cache = tmp_path / "cache"

    jar = puppetserver_aot.build(cache)

    assert puppetserver_aot.lookup(cache) == jar
    with zipfile.ZipFile(jar) as archive:
        names = set(archive.namelist())
    for namespace in puppetserver_aot.service_namespaces():
        assert namespace.replace(".", "/").replace("-", "_") + "__init.class" in names, namespace
    built_at = jar.stat().st_mtime_ns
    assert puppetserver_aot.build(cache) == jar and jar.stat().st_mtime_ns == built_at
    assert list(cache.iterdir()) == [jar]  # no build leftovers

    # Loading a service namespace takes its classes from the jar, not from the sources in /usr/share/java.
    load = subprocess.run(
        ["java", "-verbose:class", "-XX:TieredStopAtLevel=1", "-cp", f"{jar}:{puppetserver_aot.PUPPETSERVER_JAR}",
         "clojure.main", "-e", "(require 'puppetlabs.services.ca.certificate-authority-service)"],
        capture_output=True, text=True, timeout=300,
    )
    assert load.returncode == 0, load.stderr[-2000:]
    init = next(line for line in load.stdout.splitlines()
                if "certificate_authority_service__init " in line)
    assert f"source: file:{Path(jar)}" in init or f"source: jar:file:{Path(jar)}" in init, init
