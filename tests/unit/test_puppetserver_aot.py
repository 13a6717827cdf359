"""The master image's compiled puppetserver jar is found only for the exact classpath it was made from."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from drbootstrap.images import puppetserver_aot
from drbootstrap.images.master_services import main


def make_jar(path: Path, class_path: list[str] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    manifest = "Manifest-Version: 1.0\r\n"
    if class_path is not None:
        # Wrapped as the JDK writes it: 72-byte lines, continuations start with one space.
        line = "Class-Path: " + " ".join(class_path)
        chunks = [line[:70]] + [line[i:i + 69] for i in range(70, len(line), 69)]
        manifest += "\r\n ".join(chunks) + "\r\n"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("META-INF/MANIFEST.MF", manifest)
    return path


def test_classpath_follows_wrapped_manifest_class_paths_transitively(tmp_path):
    libs = tmp_path / "java"
    make_jar(libs / "clojure.jar")
    make_jar(libs / "trapperkeeper-webserver-jetty9-with-a-long-name.jar", [str(libs / "clojure.jar")])
    main_jar = make_jar(tmp_path / "server.jar", [str(libs / "trapperkeeper-webserver-jetty9-with-a-long-name.jar"),
                                                  "java/clojure.jar", "java/absent.jar"])

    jars = puppetserver_aot.classpath_jars(main_jar)

    assert jars == [main_jar, libs / "trapperkeeper-webserver-jetty9-with-a-long-name.jar",
                    libs / "clojure.jar", libs / "absent.jar"]


def test_a_changed_library_changes_the_key_so_a_stale_jar_is_not_used(tmp_path):
    lib = make_jar(tmp_path / "lib.jar")
    main_jar = make_jar(tmp_path / "server.jar", ["lib.jar"])
    cache = tmp_path / "cache"
    cache.mkdir()
    jar = puppetserver_aot.cached_jar_path(cache, main_jar)
    jar.write_bytes(b"compiled")
    assert puppetserver_aot.lookup(cache, main_jar) == jar

    os.utime(lib, (1_000_000_000, 1_000_000_000))  # an upgraded package: another mtime

    assert puppetserver_aot.lookup(cache, main_jar) is None


def test_no_puppetserver_no_jar(tmp_path):
    assert puppetserver_aot.lookup(tmp_path, tmp_path / "absent.jar") is None


def test_service_namespaces_come_from_every_bootstrap_file_without_comments(tmp_path):
    (tmp_path / "bootstrap.cfg").write_text("a.b/one\n# c.d/commented\na.b/two\n\nx.y/z # why\n")
    (tmp_path / "ca.cfg").write_text("#e.f/disabled\ng.h/ca\n")

    assert puppetserver_aot.service_namespaces(tmp_path) == ["a.b", "x.y", "g.h"]


def test_lookup_command_exits_1_when_the_image_has_no_jar(tmp_path, capsys):
    try:
        code = main(["puppetserver-aot", "--cache-dir", str(tmp_path)])
    except SystemExit as done:
        code = done.code
    assert code == 1
    assert capsys.readouterr().out == ""
