"""The master's own state as one archive, on the master: made for `backup` (the dumps agent runs
`archive` as the master's built-in dump `master-state`), and put back by images/master/boot.sh
before puppetserver starts when the spec asks (`master.restore`), so a rebuilt master keeps its
Puppet CA and every agent's certificate stays valid.

    python3 -m drbootstrap.images.master_state archive --node-dir DIR        (tar.gz on stdout)
    python3 -m drbootstrap.images.master_state restore --node-dir DIR --fetch-file FILE
        (FILE, 0600, from the user-data: a short-lived URL, the archive's data key when sealed, its
        sha256 and size, the parts to put back; removed once read, whatever happens)

Parts, under the node directory boot.sh uses: `ca` (puppet/ca and the master's own puppet/ssl:
key material, kept 0600 as Puppet made it), `code` (puppet/code, the environments served),
`config` (dns/dnsmasq.conf, dns/hosts, activemq/conf: kept for the record and for an operator;
boot.sh writes them again from the spec, so they are never restored). Nothing here prints a file's
content; the archive itself goes only to stdout (the agent's 0600 spool).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tarfile
from pathlib import Path, PurePosixPath
from typing import IO

from drbootstrap.errors import DrbError

PARTS: dict[str, tuple[str, ...]] = {
    "ca": ("puppet/ca", "puppet/ssl"),
    "code": ("puppet/code",),
    "config": ("dns/dnsmasq.conf", "dns/hosts", "activemq/conf"),
}
RESTORABLE = ("ca", "code")
FETCH_SECONDS = 120.0  # the whole download of the archive (a few hundred KiB at most)


class MasterStateError(DrbError):
    """The master-state archive cannot be made or put back."""


def write_archive(node_dir: Path, out: IO[bytes]) -> list[str]:
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


def restore_fetched(fetch_file: Path, node_dir: Path) -> list[str]:
    """Fetch the archive FETCH_FILE names into a 0600 file, open it, check its digest and size, put
    its parts back (restore_archive); the paths restored. The URL and key never leave FETCH_FILE."""
    from drbootstrap.agent.actions.dumps import fetch_object

    try:
        wanted = json.loads(fetch_file.read_text())
    finally:
        fetch_file.unlink(missing_ok=True)
    archive = node_dir / "master-state.tar.gz"
    try:
        fd = os.open(archive, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            digest, size = fetch_object(str(wanted["url"]), out, int(wanted["size"]), FETCH_SECONDS,
                                        str(wanted.get("key") or "") or None)
        if digest != wanted["sha256"] or size != wanted["size"]:
            raise MasterStateError(f"master state: refused, sha256 {digest[:16]}... ({size} bytes) is not the "
                                   f"recorded {str(wanted['sha256'])[:16]}... ({wanted['size']} bytes)")
        return restore_archive(archive, node_dir, digest, [str(p) for p in wanted["parts"]])
    finally:
        archive.unlink(missing_ok=True)


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
    put = commands.add_parser("restore", help="fetch a master-state archive, check it, put its parts back")
    put.add_argument("--node-dir", required=True)
    put.add_argument("--fetch-file", required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "archive":
            archived = write_archive(Path(args.node_dir), sys.stdout.buffer)
            print(f"master state: archived {', '.join(archived) or 'nothing'}", file=sys.stderr)
            return 0
        restored = restore_fetched(Path(args.fetch_file), Path(args.node_dir))
        print(f"master state: restored {', '.join(restored) or 'nothing'}")
        return 0
    except (DrbError, OSError, tarfile.TarError, ValueError, KeyError) as error:
        message = (f"master state: {error.message}" if isinstance(error, DrbError) and not
                   error.message.startswith("master state") else error.message if isinstance(error, DrbError)
                   else f"master state: {type(error).__name__}: {error}")
        print(f"drbootstrap: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
