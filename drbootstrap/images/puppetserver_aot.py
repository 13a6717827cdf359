"""puppetserver's Clojure code compiled ahead of time, once per image, so the master starts faster.

Debian ships puppetserver and its Clojure libraries as source: every start compiles them again
(about 10 s of CPU here, half of the server's start). `build` compiles every service namespace of
puppetserver's bootstrap config into one jar in a cache directory, when the master image is made
(.ci/install on the local cloud); images/master/boot.sh puts `lookup`'s jar first on the classpath.

The jar's name carries a digest of every jar on puppetserver's classpath (path, size, mtime): after
a package upgrade the digest changes, `lookup` finds nothing and the server compiles from source
as before, never running stale code.

    python3 -m drbootstrap.images.master_services puppetserver-aot --build   # image time
    python3 -m drbootstrap.images.master_services puppetserver-aot           # boot: the jar, or exit 1
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

from drbootstrap.errors import PrerequisiteError

DEFAULT_CACHE_DIR = Path("/var/cache/drbootstrap/puppetserver")
PUPPETSERVER_JAR = Path("/usr/share/puppetserver/puppetserver.jar")
SERVICES_DIR = Path("/etc/puppet/puppetserver/services.d")
JRUBY_LIB = "/usr/share/jruby/lib"
MAIN_NAMESPACE = "puppetlabs.trapperkeeper.main"


def classpath_jars(main_jar: Path = PUPPETSERVER_JAR) -> list[Path]:
    """MAIN_JAR and every jar its manifest's Class-Path reaches, transitively, as the JVM does."""
    found: list[Path] = []
    pending = [main_jar.resolve()]
    while pending:
        jar = pending.pop(0)
        if jar in found:
            continue
        found.append(jar)
        for entry in _manifest_class_path(jar):
            pending.append((jar.parent / entry).resolve())
    return found


def cache_key(jars: list[Path]) -> str:
    """A digest of each jar's path, size and mtime (a missing jar counts as missing)."""
    digest = hashlib.sha256()
    for jar in jars:
        try:
            stat = jar.stat()
            digest.update(f"{jar} {stat.st_size} {int(stat.st_mtime)}\n".encode())
        except OSError:
            digest.update(f"{jar} missing\n".encode())
    return digest.hexdigest()[:16]


def cached_jar_path(cache_dir: Path = DEFAULT_CACHE_DIR, main_jar: Path = PUPPETSERVER_JAR) -> Path:
    """Where the compiled jar for the installed puppetserver is, or would be."""
    return cache_dir / f"aot-{cache_key(classpath_jars(main_jar))}.jar"


def lookup(cache_dir: Path = DEFAULT_CACHE_DIR, main_jar: Path = PUPPETSERVER_JAR) -> Path | None:
    """The compiled jar matching the installed puppetserver, or None (then the server compiles)."""
    if not main_jar.exists():
        return None
    jar = cached_jar_path(cache_dir, main_jar)
    return jar if jar.is_file() else None


def service_namespaces(services_dir: Path = SERVICES_DIR) -> list[str]:
    """The namespaces of every service line (`namespace/service`) in the bootstrap config files."""
    namespaces: list[str] = []
    for cfg in sorted(services_dir.glob("*.cfg")):
        for line in cfg.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if "/" in line and line.split("/", 1)[0] not in namespaces:
                namespaces.append(line.split("/", 1)[0])
    return namespaces


def build(cache_dir: Path = DEFAULT_CACHE_DIR, main_jar: Path = PUPPETSERVER_JAR,
          services_dir: Path = SERVICES_DIR, java: str = "java") -> Path:
    """Compile puppetserver's namespaces into CACHE_DIR/aot-KEY.jar (kept if already there).

    Older jars in CACHE_DIR are removed. Raises PrerequisiteError when java or puppetserver is
    missing or the compilation fails."""
    if not main_jar.exists():
        raise PrerequisiteError(f"puppetserver is not installed: {main_jar} is missing",
                                hint="install the Debian puppetserver package (.ci/install does)")
    if shutil.which(java) is None:
        raise PrerequisiteError(f"{java} not found on PATH", hint="install a Java runtime (openjdk-17-jre-headless)")
    target = cached_jar_path(cache_dir, main_jar)
    if target.is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    namespaces = [MAIN_NAMESPACE, *service_namespaces(services_dir)]
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".build-") as work:
        classes = Path(work) / "classes"
        classes.mkdir()
        forms = (f'(binding [*compile-path* "{classes}"] '
                 f"(doseq [n '[{' '.join(namespaces)}]] (compile n)))")
        command = [java, "-XX:TieredStopAtLevel=1", f"-Djruby.lib={JRUBY_LIB}",
                   "-cp", f"{classes}:{main_jar}", "clojure.main", "-e", forms]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise PrerequisiteError(f"compiling puppetserver ahead of time failed (exit {done.returncode}): {last}",
                                    hint="puppetserver then compiles at each start, as without this cache")
        partial = Path(work) / target.name
        _zip_tree(classes, partial)
        os.replace(partial, target)
    for old in cache_dir.glob("aot-*.jar"):
        if old != target:
            old.unlink(missing_ok=True)
    return target


def _manifest_class_path(jar: Path) -> list[str]:
    try:
        with zipfile.ZipFile(jar) as archive:
            manifest = archive.read("META-INF/MANIFEST.MF").decode("utf-8", "replace")
    except (OSError, KeyError, zipfile.BadZipFile):
        return []
    # Manifest lines wrap at 72 bytes; a continuation line starts with one space.
    unwrapped = manifest.replace("\r\n", "\n").replace("\n ", "")
    for line in unwrapped.splitlines():
        if line.startswith("Class-Path:"):
            return line.split(":", 1)[1].split()
    return []


def _zip_tree(root: Path, out: Path) -> None:
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(root).as_posix())
