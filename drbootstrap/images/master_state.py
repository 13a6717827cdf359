"""The master's own state as one archive, on the master: made for `backup` (the dumps agent runs
`archive` as the master's built-in dump `master-state`), and put back by images/master/boot.sh
before puppetserver starts when the spec asks (`master.restore`), so a rebuilt master keeps its
Puppet CA and every agent's certificate stays valid.

    python3 -m drbootstrap.images.master_state archive --node-dir DIR        (tar.gz on stdout)
    python3 -m drbootstrap.images.master_state restore --node-dir DIR --archive FILE \
        --sha256 HEX --parts ca,code                                       (then FILE is removed)

Parts, under the node directory boot.sh uses: `ca` (puppet/ca and the master's own puppet/ssl:
key material, kept 0600 as Puppet made it), `code` (puppet/code, the environments served),
`config` (dns/dnsmasq.conf, dns/hosts, activemq/conf: kept for the record and for an operator;
boot.sh writes them again from the spec, so they are never restored). Nothing here prints a file's
content; the archive itself goes only to stdout (the agent's 0600 spool).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import tarfile
from pathlib import Path, PurePosixPath

from drbootstrap.errors import DrbError

PARTS: dict[str, tuple[str, ...]] = {
    "ca": ("puppet/ca", "puppet/ssl"),
    "code": ("puppet/code",),
    "config": ("dns/dnsmasq.conf", "dns/hosts", "activemq/conf"),
}
RESTORABLE = ("ca", "code")


class MasterStateError(DrbError):
    """The master-state archive cannot be made or put back."""


def write_archive(node_dir: Path, out: io.BufferedIOBase) -> list[str]:
    """Every part that exists under NODE_DIR, as a gzipped tar written to OUT; the paths archived."""
    archived = []
    with tarfile.open(fileobj=out, mode="w|gz") as tar:
        for paths in PARTS.values():
            for relative in paths:
                if (node_dir / relative).exists():
                    tar.add(node_dir / relative, arcname=relative, recursive=True)
                    archived.append(relative)
    return archived


def restore_archive(archive: Path, node_dir: Path, sha256: str, parts: list[str]) -> list[str]:
    """Check ARCHIVE's digest, then extract PARTS of it into NODE_DIR (a part's old content removed
    first, so the CA is exactly the one backed up); the paths restored. Raises MasterStateError."""
    unknown = [p for p in parts if p not in RESTORABLE]
    if unknown:
        raise MasterStateError(f"master state: cannot restore part(s) {', '.join(unknown)}",
                               hint=f"restorable parts: {', '.join(RESTORABLE)}")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    if digest != sha256:
        raise MasterStateError(f"master state {archive}: refused, its sha256 {digest[:16]}... is not the "
                               f"recorded {sha256[:16]}...", hint="the archive is damaged: back up the master again")
    wanted = tuple(path for part in parts for path in PARTS[part])
    with tarfile.open(archive, mode="r:gz") as tar:
        members = [m for m in tar.getmembers() if _under(m.name, wanted)]
        restored = [path for path in wanted if any(_under(m.name, (path,)) for m in members)]
        for path in restored:
            _remove_tree(node_dir / path)
        tar.extractall(node_dir, members=members, filter="data")
    return restored


def _under(name: str, roots: tuple[str, ...]) -> bool:
    path = PurePosixPath(name)
    return not path.is_absolute() and ".." not in path.parts and any(
        name == root or name.startswith(root + "/") for root in roots)


def _remove_tree(path: Path) -> None:
    import shutil

    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m drbootstrap.images.master_state")
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("archive", help="the master's state as tar.gz on stdout")
    make.add_argument("--node-dir", required=True)
    put = commands.add_parser("restore", help="put parts of a master-state archive back, by digest")
    put.add_argument("--node-dir", required=True)
    put.add_argument("--archive", required=True)
    put.add_argument("--sha256", required=True)
    put.add_argument("--parts", required=True, help="comma-separated: ca, code")
    args = parser.parse_args(argv)
    try:
        if args.command == "archive":
            archived = write_archive(Path(args.node_dir), sys.stdout.buffer)
            print(f"master state: archived {', '.join(archived) or 'nothing'}", file=sys.stderr)
            return 0
        archive = Path(args.archive)
        try:
            restored = restore_archive(archive, Path(args.node_dir), args.sha256,
                                       [p for p in args.parts.split(",") if p])
        finally:
            archive.unlink(missing_ok=True)
        print(f"master state: restored {', '.join(restored) or 'nothing'}")
        return 0
    except (DrbError, OSError, tarfile.TarError) as error:
        message = error.message if isinstance(error, DrbError) else f"master state: {type(error).__name__}: {error}"
        print(f"drbootstrap: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
