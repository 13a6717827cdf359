"""`drbootstrap images build`: the master and worker images as qcow2 disks from Debian packages.

One definition (the package lists below, images/*/boot.sh, recipes/, this checkout of drbootstrap
as a wheel with its runtime dependencies, the apt sources) makes one image: mmdebstrap fills a
directory, `mkfs.ext4 -d` turns it into a filesystem without mounting anything, `qemu-img`
makes it a qcow2. The kernel and initrd are copied next to the disk: the disk is the root
filesystem itself (no partition table, no boot loader), booted by direct kernel boot with
`root=LABEL=drbroot` (manifest.json says so). A digest of every input names the cache entry;
a second build with the same inputs returns that entry without building.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from drbootstrap.errors import DrbError, PrerequisiteError, SpecError

# Bumped when the build steps below change what an image holds (part of every digest).
BUILD_VERSION = "1"
SUITE = "bookworm"
ROOT_LABEL = "drbroot"
KERNEL_CMDLINE = f"root=LABEL={ROOT_LABEL} ro console=tty0 console=ttyS0"  # the last: /dev/console
CACHE_ENV = "DRB_IMAGE_CACHE"
SOURCES_ENV = "DRB_IMAGE_APT_SOURCES"
HOST_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
DEFAULT_SOURCE_DATE_EPOCH = 1716163200  # 2024-05-20: fixed, so file times do not vary by build

# Every image: a cloud kernel, cloud-init (NoCloud, ConfigDrive, OpenStack, Ec2) with ifupdown for
# the network it renders, and what both boot scripts run (sh, ip, dig, python3 with drbootstrap).
BASE_PACKAGES = (
    "linux-image-cloud-amd64", "initramfs-tools", "systemd", "systemd-sysv", "udev", "dbus",
    "cloud-init", "cloud-guest-utils", "ifupdown", "isc-dhcp-client", "netbase", "openssh-server",
    "iproute2", "procps", "psmisc", "util-linux", "e2fsprogs", "kmod", "ca-certificates",
    "bind9-dnsutils", "python3", "python3-pip", "sqlite3",
)
# The master: dnsmasq, both brokers boot.sh can run, puppetserver (its AOT jar made in the image).
MASTER_PACKAGES = BASE_PACKAGES + ("dnsmasq", "activemq", "rabbitmq-server", "puppetserver", "puppet-agent")
WORKER_PACKAGES = BASE_PACKAGES + ("puppet-agent",)
# Services the packages enable that boot.sh starts itself, with its own configuration.
DISABLED_UNITS = ("ssh.service", "dnsmasq.service", "activemq.service", "rabbitmq-server.service",
                  "puppetserver.service", "puppet.service")
# A starting point for the disk's size over what the files take (cloud-init grows the filesystem
# to a bigger disk at first boot: resize_rootfs).
FREE_SPACE_MIB = {"master": 1536, "worker": 1024}
MIN_MEMORY_MIB = {"master": 2048, "worker": 512}


class ImageBuildError(DrbError):
    """A step of the image build failed (mmdebstrap, mkfs, qemu-img, pip)."""


@dataclass(frozen=True)
class ImageRecipe:
    """What goes into one image."""

    name: str  # master | worker
    packages: tuple[str, ...]


RECIPES = {"master": ImageRecipe("master", MASTER_PACKAGES), "worker": ImageRecipe("worker", WORKER_PACKAGES)}


@dataclass(frozen=True)
class BuiltImage:
    """One image in the cache: its disk, kernel, initrd and manifest (what a provider boots)."""

    name: str
    digest: str
    directory: Path
    disk: Path
    kernel: Path
    initrd: Path
    manifest: Path
    reused: bool
    seconds: float


def default_cache_dir() -> Path:
    """$DRB_IMAGE_CACHE, else /var/cache/drbootstrap/images as root, else ~/.cache/drbootstrap/images."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    if os.geteuid() == 0:
        return Path("/var/cache/drbootstrap/images")
    return Path.home() / ".cache" / "drbootstrap" / "images"


def checkout_root() -> Path:
    """The source tree drbootstrap runs from (its wheel is built from it; images/ and recipes/ too)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file() or not (root / "images").is_dir():
        raise PrerequisiteError(f"images build needs drbootstrap's source checkout; {root} is not one",
                                hint="run it from a clone (pip install -e .)")
    return root


def apt_sources(path: Path | None) -> str:
    """The deb822 sources the image installs from: PATH, $DRB_IMAGE_APT_SOURCES, or this host's."""
    chosen = path or (Path(os.environ[SOURCES_ENV]) if os.environ.get(SOURCES_ENV) else HOST_SOURCES)
    try:
        return chosen.read_text()
    except OSError as error:
        raise SpecError([f"{chosen}: cannot read the apt sources for the image ({error.strerror}); "
                         f"give a deb822 .sources file with --apt-sources"]) from None


def _runtime_requirements() -> list[str]:
    """name==version of every installed distribution drbootstrap needs at run time, recursively."""
    pinned: dict[str, str] = {}
    pending = ["drbootstrap"]
    while pending:
        name = pending.pop()
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for requirement in dist.requires or []:
            if ";" in requirement and "extra ==" in requirement.split(";", 1)[1]:
                continue
            dep = requirement.split(";")[0].strip()
            for stop in "<>=!~[( ":
                dep = dep.split(stop)[0]
            key = dep.lower().replace("_", "-")
            if key and key not in pinned:
                try:
                    pinned[key] = metadata.version(dep)
                except metadata.PackageNotFoundError:
                    continue
                pending.append(dep)
    return sorted(f"{name}=={version}" for name, version in pinned.items())


def _tree_files(root: Path, parts: tuple[str, ...]) -> list[Path]:
    files: list[Path] = []
    for part in parts:
        base = root / part
        if base.is_file():
            files.append(base)
            continue
        # Documentation is neither an input nor in the image (see _customize_script).
        files += [p for p in base.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".md"]
    return sorted(files)


def image_digest(recipe: ImageRecipe, sources: str, root: Path, requirements: list[str]) -> str:
    """The digest of everything an image is made from: it names the image's cache entry."""
    digest = hashlib.sha256()
    for line in (f"build {BUILD_VERSION}", f"suite {SUITE}", f"image {recipe.name}", *recipe.packages,
                 "sources", sources, "requirements", *requirements):
        digest.update(line.encode() + b"\n")
    digest.update(Path(__file__).read_bytes())
    for path in _tree_files(root, ("pyproject.toml", "drbootstrap", "images", "recipes")):
        digest.update(f"{path.relative_to(root)}\n".encode() + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _run(command: list[str], what: str, log: Path, env: dict[str, str] | None = None) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env, check=False)
    if result.returncode != 0:
        tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
        kept = log.parent.parent / f"failed-{log.parent.name.split('-')[0].lstrip('.')}.log"
        raise ImageBuildError(f"image build: {what} failed (exit {result.returncode}): {tail}",
                              hint=f"full output in {kept}")


def _require_tools() -> None:
    missing = [tool for tool in ("mmdebstrap", "mkfs.ext4", "qemu-img") if shutil.which(tool) is None]
    if missing:
        raise PrerequisiteError(f"images build needs {', '.join(missing)} on this machine",
                                hint="apt-get install mmdebstrap e2fsprogs qemu-utils")
    if os.geteuid() != 0:
        raise PrerequisiteError("images build runs as root (mmdebstrap's chroot, file ownership)",
                                hint="run it with sudo")


def _customize_script(recipe: ImageRecipe, root: Path) -> str:
    """The shell hook mmdebstrap runs once the packages are in ($1: the image's root directory)."""
    units = " ".join(DISABLED_UNITS)
    lines = [
        "set -eu",
        # Nothing of the build machine's environment (its pip settings, locale) reaches the image.
        "CLEAN='env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8'",
        # drbootstrap and its dependencies, offline, for the system python3 boot.sh runs.
        "chroot \"$1\" $CLEAN python3 -m pip install --quiet --no-index --no-cache-dir --break-system-packages "
        "--find-links /tmp/drb-wheels -r /tmp/drb-wheels/requirements.txt",
        "rm -rf \"$1/tmp/drb-wheels\"",
        "mkdir -p \"$1/usr/share/drbootstrap\"",
        f"cp -r {root}/images \"$1/usr/share/drbootstrap/images\"",
        f"cp -r {root}/recipes \"$1/usr/share/drbootstrap/recipes\"",
        "find \"$1/usr/share/drbootstrap\" -name '*.md' -delete",
        f"echo 'LABEL={ROOT_LABEL} / ext4 defaults,errors=remount-ro 0 1' >\"$1/etc/fstab\"",
        # boot.sh runs sshd, dnsmasq, the broker and puppetserver itself, with its own configuration.
        f"for unit in {units}; do chroot \"$1\" systemctl disable \"$unit\" >/dev/null 2>&1 || true; done",
        "rm -f \"$1\"/etc/ssh/ssh_host_*",
        "cat >\"$1/etc/cloud/cloud.cfg.d/90-drbootstrap.cfg\" <<'EOF'",
        "datasource_list: [NoCloud, ConfigDrive, OpenStack, Ec2, None]",
        # The console's SSH HOST KEY KEYS block is boot.sh's sshd (the one the controller pins);
        # the system sshd is disabled, so cloud-init prints no keys of its own.
        "ssh:",
        "  emit_keys_to_console: false",
        "no_ssh_fingerprints: true",
        "locale: false",
        "EOF",
        ": >\"$1/etc/machine-id\"",
        "echo localhost >\"$1/etc/hostname\"",
    ]
    if recipe.name == "master":
        lines.append("chroot \"$1\" $CLEAN python3 -m drbootstrap.images.master_services puppetserver-aot --build "
                     ">/dev/null")
    lines.append("rm -rf \"$1\"/var/lib/apt/lists/* \"$1\"/var/cache/apt/*.bin")
    return "\n".join(lines) + "\n"


def _build_wheels(root: Path, requirements: list[str], out: Path, log: Path) -> None:
    import sys

    out.mkdir(parents=True)
    (out / "requirements.txt").write_text("\n".join(["drbootstrap", *requirements]) + "\n")
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(root)],
         "building drbootstrap's wheel", log)
    if requirements:
        _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), *requirements],
             "fetching the wheels of drbootstrap's dependencies", log)


def build_image(name: str, *, cache_dir: Path | None = None, sources_file: Path | None = None,
                force: bool = False) -> BuiltImage:
    """Build image NAME (master|worker), or return the cached one made from the same inputs."""
    if name not in RECIPES:
        raise SpecError([f"image {name!r}: choose master or worker"])
    started = time.monotonic()
    recipe = RECIPES[name]
    root = checkout_root()
    sources = apt_sources(sources_file)
    requirements = _runtime_requirements()
    digest = image_digest(recipe, sources, root, requirements)
    cache = cache_dir or default_cache_dir()
    entry = cache / f"{name}-{digest[:16]}"
    if (entry / "manifest.json").is_file() and not force:
        return _built(name, digest, entry, reused=True, started=started)
    _require_tools()
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=cache))
    log = work / "build.log"
    try:
        _make(recipe, root, sources, requirements, digest, cache, work, log)
        manifest = _manifest(recipe, digest, work)
        (work / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if entry.exists():
            shutil.rmtree(entry)
        for leftover in ("rootfs", "drb-wheels", "disk.raw", "customize.sh", "sources"):
            target = work / leftover
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
        work.chmod(0o755)  # a hypervisor running as its own user reads the disk, kernel and initrd
        work.rename(entry)
    except BaseException:
        _unmount_below(work / "rootfs")
        kept = cache / f"failed-{name}.log"
        if log.exists():
            shutil.copyfile(log, kept)
        shutil.rmtree(work, ignore_errors=True)
        raise
    return _built(name, digest, entry, reused=False, started=started)


def _make(recipe: ImageRecipe, root: Path, sources: str, requirements: list[str], digest: str,
          cache: Path, work: Path, log: Path) -> None:
    wheels = work / "drb-wheels"
    _build_wheels(root, requirements, wheels, log)
    sources_path = work / "sources"
    sources_path.write_text(sources)
    rootfs = work / "rootfs"
    customize = work / "customize.sh"
    customize.write_text(_customize_script(recipe, root))
    debs = cache / "debs"
    debs.mkdir(exist_ok=True)
    epoch = os.environ.get("SOURCE_DATE_EPOCH", str(DEFAULT_SOURCE_DATE_EPOCH))
    env = dict(os.environ, SOURCE_DATE_EPOCH=epoch)
    _run(["mmdebstrap", "--variant=apt", "--mode=root", "--format=directory",
          "--aptopt=APT::Install-Recommends \"false\"",
          f"--include={','.join(recipe.packages)}",
          # Packages already fetched by an earlier build are reused (the digest still decides).
          "--setup-hook=mkdir -p \"$1/var/cache/apt/archives\"",
          f"--setup-hook=sync-in {debs} /var/cache/apt/archives/",
          f"--essential-hook=copy-in {wheels} /tmp",
          f"--customize-hook=sync-out /var/cache/apt/archives {debs}",
          "--customize-hook=rm -f \"$1\"/var/cache/apt/archives/*.deb",
          f"--customize-hook=sh {customize} \"$1\"",
          SUITE, str(rootfs), str(sources_path)], "mmdebstrap", log, env)
    _unmount_below(rootfs)
    boot = rootfs / "boot"
    kernels = sorted(boot.glob("vmlinuz-*"))
    initrds = sorted(boot.glob("initrd.img-*"))
    if not kernels or not initrds:
        raise ImageBuildError(f"image build: no kernel or initrd in {boot}", hint="check linux-image-cloud-amd64")
    shutil.copyfile(kernels[-1], work / "vmlinuz")
    shutil.copyfile(initrds[-1], work / "initrd.img")
    used_mib = int(subprocess.run(["du", "-sm", "--exclude=./proc", "--exclude=./sys", str(rootfs)],
                                  capture_output=True, text=True, check=True).stdout.split()[0])
    size_mib = -(-(used_mib * 12 // 10 + FREE_SPACE_MIB[recipe.name]) // 256) * 256
    raw = work / "disk.raw"
    with raw.open("wb") as disk:
        disk.truncate(size_mib * 1024 * 1024)
    uuid = f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"
    _run(["mkfs.ext4", "-q", "-F", "-L", ROOT_LABEL, "-U", uuid, "-E", f"hash_seed={uuid},root_owner=0:0",
          "-d", str(rootfs), str(raw)], "mkfs.ext4", log, dict(env, E2FSPROGS_FAKE_TIME=epoch))
    _run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(work / "disk.qcow2")], "qemu-img convert", log)


def _unmount_below(rootfs: Path) -> None:
    """Unmount whatever mmdebstrap left mounted in the image's directory (it warns when it cannot)."""
    prefix = str(rootfs.resolve()) + "/"
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1] for line in mounts if line.split()[1].startswith(prefix)]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)


def _manifest(recipe: ImageRecipe, digest: str, work: Path) -> dict:
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(work / "disk.qcow2")],
                                     capture_output=True, text=True, check=True).stdout)
    return {"name": recipe.name, "digest": digest, "format": "qcow2", "disk": "disk.qcow2",
            "virtual_size": info["virtual-size"], "kernel": "vmlinuz", "initrd": "initrd.img",
            "cmdline": KERNEL_CMDLINE, "root_device": f"LABEL={ROOT_LABEL}", "console": "ttyS0",
            "boot": "direct-kernel", "user_data": "cloud-init: NoCloud (cidata), ConfigDrive, OpenStack, Ec2",
            "min_memory_mib": MIN_MEMORY_MIB[recipe.name], "packages": list(recipe.packages),
            "build_version": BUILD_VERSION}


def _built(name: str, digest: str, entry: Path, *, reused: bool, started: float) -> BuiltImage:
    return BuiltImage(name=name, digest=digest, directory=entry, disk=entry / "disk.qcow2",
                      kernel=entry / "vmlinuz", initrd=entry / "initrd.img", manifest=entry / "manifest.json",
                      reused=reused, seconds=round(time.monotonic() - started, 1))


def describe(image: BuiltImage) -> dict:
    """The built image as JSON-ready data (paths as strings)."""
    return {key: str(value) if isinstance(value, Path) else value for key, value in asdict(image).items()}
