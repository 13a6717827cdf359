"""`drbootstrap local status|cleanup` without touching the machine: empty state, not root."""

from drbootstrap.exit_status import ExitStatus
from drbootstrap.providers.local import netns


def test_status_of_an_empty_state_dir_says_no_nodes(cli, tmp_path):
    result = cli("local", "status", "--state-dir", str(tmp_path))
    assert result.exit_code == 0
    assert "0 node(s)" in result.stdout


def test_cleanup_when_not_root_is_a_one_line_prerequisite_error(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    result = cli("local", "cleanup", "--state-dir", str(tmp_path), "--yes")
    assert result.exit_code == ExitStatus.PREREQUISITE
    assert result.stderr.count("\n") == 1 and "needs root" in result.stderr
