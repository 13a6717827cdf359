"""recipes/ applied by a real `puppet apply` per role, into a temp root (drb_root fact)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.prereq import REPO_ROOT, require, require_binary
from tests.support.server_process import free_port

pytestmark = pytest.mark.integration

RECIPES = REPO_ROOT / "recipes"


@dataclass
class Applied:
    root: Path
    certname: str
    exit_code: int
    output: str


def start_apply(base: Path, certname: str, facts: dict[str, str]) -> tuple[Path, subprocess.Popen]:
    """One `puppet apply` with its own confdir/vardir/codedir; facts via FACTER_ variables."""
    root = base / "root"
    root.mkdir(parents=True, exist_ok=True)
    dirs = {name: base / name for name in ("conf", "var", "code", "log", "run")}
    env = dict(os.environ, FACTER_drb_root=str(root), **{f"FACTER_{k}": v for k, v in facts.items()})
    command = [
        "puppet", "apply", "--detailed-exitcodes", "--color=false",
        "--confdir", str(dirs["conf"]), "--vardir", str(dirs["var"]), "--codedir", str(dirs["code"]),
        "--logdir", str(dirs["log"]), "--rundir", str(dirs["run"]),
        "--modulepath", str(RECIPES / "modules"), "--certname", certname, str(RECIPES / "manifests" / "site.pp"),
    ]
    return root, subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(root: Path, certname: str, process: subprocess.Popen) -> Applied:
    output, _ = process.communicate(timeout=300)
    return Applied(root, certname, process.returncode, output)


def kill_daemon(pid_file: Path) -> None:
    if pid_file.exists():
        try:
            os.kill(int(pid_file.read_text()), signal.SIGTERM)
        except (ProcessLookupError, ValueError):
            pass


@pytest.fixture(scope="module")
def web_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def applied(tmp_path_factory, web_port):
    """db01 and web01 classified by name, node7 classified as mail by the drb_role fact: in parallel."""
    require(os.geteuid() == 0, "root (puppet apply writes its own state dirs)")
    require_binary("puppet", "python3")
    base = tmp_path_factory.mktemp("puppet")
    runs = {
        "db": ("db01.drb-test.internal", {}),
        "web": ("web01.drb-test.internal", {"drb_web_port": str(web_port), "drb_web_bind": "127.0.0.1"}),
        "mail": ("node7.drb-test.internal", {"drb_role": "mail"}),
    }
    started = {role: (certname, *start_apply(base / role, certname, facts)) for role, (certname, facts) in runs.items()}
    results = {role: finish(root, certname, process) for role, (certname, root, process) in started.items()}
    yield results
    kill_daemon(results["web"].root / "var/lib/drbootstrap/roles/web.pid")


def changed_without_failure(result: Applied) -> None:
    # --detailed-exitcodes: 2 means changes applied and no failures; 4 or 6 mean failures.
    assert result.exit_code == 2, result.output


def test_db_role_by_name_writes_its_config_and_ready_marker(applied):
    db = applied["db"]
    changed_without_failure(db)

    assert (db.root / "srv/db/ready").read_text() == "ready\n"
    assert f"data_dir = {db.root}/srv/db" in (db.root / "etc/db/db.conf").read_text()
    assert (db.root / "etc/drbootstrap/role").read_text() == "db\n"


def test_web_role_by_name_serves_its_page_over_http(applied, web_port):
    web = applied["web"]
    changed_without_failure(web)

    body = ""
    for _ in range(50):  # the server binds just after Puppet returns: poll, bounded
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/", timeout=2) as response:
                body = response.read().decode()
                break
        except OSError:
            time.sleep(0.1)
    assert "web01.drb-test.internal (web) is up" in body


def test_web_role_second_run_keeps_the_running_server(applied, tmp_path, web_port):
    web = applied["web"]
    pid_file = web.root / "var/lib/drbootstrap/roles/web.pid"
    pid_before = pid_file.read_text()
    base = web.root.parent

    root, process = start_apply(base, web.certname, {"drb_web_port": str(web_port), "drb_web_bind": "127.0.0.1"})
    again = finish(root, web.certname, process)

    assert again.exit_code == 0, again.output  # 0: nothing to change
    assert pid_file.read_text() == pid_before


def test_mail_role_chosen_by_the_drb_role_fact(applied):
    mail = applied["mail"]
    changed_without_failure(mail)

    assert (mail.root / "etc/mailname").read_text() == "node7.drb-test.internal\n"
    assert "postmaster: root" in (mail.root / "etc/mail/aliases").read_text()
    assert (mail.root / "etc/drbootstrap/role").read_text() == "mail\n"
    assert not (mail.root / "srv").exists()
