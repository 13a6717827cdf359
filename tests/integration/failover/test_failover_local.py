"""Failover on the local cloud with two sites (two networks) and a real BIND 9 serving the public
zone: the record moves to site b only after b's checks pass, data written before the last backup
is at b, the old site's nodes are stopped, a failover killed after the DNS switch completes without
a second update, failback returns it with the data written at b, and a target whose checks fail
leaves the records untouched (exit 15)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time

import pytest

from tests.integration.failover.conftest import (
    B_TARGET,
    PRIMARY_TARGET,
    DnsWatch,
    app_data,
    cleanup_sites,
    point_www_at,
    serial,
    site_node_states,
    two_site_environment,
    www,
)
from tests.integration.up.conftest import E2E_GATE
from tests.support.secrets_scan import KnownSecret, scan_for_secrets

pytestmark = [pytest.mark.integration, E2E_GATE]

NOT_SWITCHED = 15


def _network_b(env) -> str:
    return next(line.split("network: ")[1].rstrip("}") for line in env.spec_file.read_text().splitlines()
                if "name: b" in line)


def _figures(what: str, report: dict) -> None:
    """Seconds from the start to each phase (shown with -s; the machine is shared, figures are noisy)."""
    ordered = sorted(report["phases"].items(), key=lambda item: item[1])
    phases = ", ".join(f"{name} +{at - report['started_at']:.1f} s" for name, at in ordered)
    print(f"\n{what}: {phases}")


def _kill_after_switch(env, *args: str) -> list[dict]:
    """Start the command, SIGKILL it once its events say the public records are switched; its events."""
    process = env.start(*args, "--json")
    events: list[dict] = []
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("{"):
            events.append(json.loads(line))
            if events[-1].get("step") == "dns_switched" and events[-1].get("state") == "done":
                os.killpg(process.pid, signal.SIGKILL)
                break
    process.wait(timeout=60)
    return events


def test_failover_switches_after_checks_survives_a_kill_and_failback_returns(bind):
    env = two_site_environment(bind, "fo")
    network_b = _network_b(env)
    try:
        up = env.cli("up", str(env.spec_file), "--plain")
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-2000:]
        point_www_at(bind, PRIMARY_TARGET)
        serial_before = serial(bind)
        app_data(env, "primary", env.network, "written-at-a")
        backed_up = env.cli("backup", str(env.spec_file))
        assert backed_up.returncode == 0, backed_up.stdout + backed_up.stderr
        [taken] = [line.split()[1] for line in backed_up.stdout.splitlines() if line.startswith("app01/data: ")
                   and " good," in line]
        # copy_backups: true at b, but one snapshot store both local sites see: nothing to copy, said so.
        assert f"app01/data: {taken} is already at site b (one snapshot store both sites see): nothing copied" \
            in backed_up.stdout, backed_up.stdout

        dry = env.cli("failover", str(env.spec_file), "--to", "b", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert f"site b: app01/data would be restored from {taken} (taken " in dry.stdout, dry.stdout
        assert f"-> {B_TARGET}" in dry.stdout and "site primary: 2 running node(s) would be stopped" in dry.stdout
        assert www(bind) == [PRIMARY_TARGET] and serial(bind) == serial_before

        with DnsWatch(bind) as watch:
            killed_events = _kill_after_switch(env, "failover", str(env.spec_file), "--to", "b")
            time.sleep(1.0)  # the watch sees the answer the killed run left
        checks_done = [e["at"] for e in killed_events
                       if e.get("node") == "app01" and e.get("step") == "checks" and e.get("state") == "done"]
        assert checks_done, "\n".join(f"{e.get('node')} {e.get('step')} {e.get('state')}: {e.get('detail')}"
                                       for e in killed_events[-8:])
        moved_at = watch.first_time_at(B_TARGET)
        assert moved_at is not None and moved_at >= checks_done[-1], (watch.seen, checks_done)
        assert serial(bind) == serial_before + 1  # one update

        resumed = env.cli("failover", str(env.spec_file), "--to", "b", "--plain")
        assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-2000:]
        assert "not sent again" in resumed.stdout
        assert www(bind) == [B_TARGET] and serial(bind) == serial_before + 1  # no second switch
        assert set(site_node_states(env, "fo", env.network).values()) == {"stopped"}
        assert set(site_node_states(env, "fo.b", network_b).values()) == {"running"}
        report = json.loads((env.paths.root / "failover-report.json").read_text())
        assert report["records_before"][0]["values"] == [PRIMARY_TARGET] and report["old_ttl"] == 120
        assert report["records_after"][0]["values"] == [B_TARGET]
        assert report["clients_moved_by"] == pytest.approx(report["switch_time"] + 120)
        assert report["fence"]["state"] == "fenced"
        _figures("failover to b (killed after the switch, resumed)", report)
        assert app_data(env, "b", network_b) == "written-at-a"  # the newest backup, restored at b
        app_data(env, "b", network_b, "written-at-b")
        backed_up_at_b = env.cli("backup", str(env.spec_file), "--site", "b")
        assert backed_up_at_b.returncode == 0, backed_up_at_b.stdout + backed_up_at_b.stderr
        # Pruning at b deletes the environment's backups, whichever site took them (3 kept by none).
        env.spec_file.write_text(env.spec_file.read_text().replace(
            "backup: {pre_snapshot: sync}", "backup: {pre_snapshot: sync, keep_last: 1}"))
        pruned_at_b = env.cli("backup", str(env.spec_file), "--site", "b", "--prune")
        assert pruned_at_b.returncode == 0, pruned_at_b.stdout + pruned_at_b.stderr
        assert "pruned " in pruned_at_b.stdout, pruned_at_b.stdout

        again = env.cli("failover", str(env.spec_file), "--to", "b")
        assert again.returncode == 0 and "already active at b" in again.stdout
        assert serial(bind) == serial_before + 1

        back = env.cli("failback", str(env.spec_file), "--to", "primary", "--plain")
        assert back.returncode == 0, back.stdout[-3000:] + back.stderr[-2000:]
        assert www(bind) == [PRIMARY_TARGET] and serial(bind) == serial_before + 2
        assert set(site_node_states(env, "fo", env.network).values()) == {"running"}
        assert set(site_node_states(env, "fo.b", network_b).values()) == {"stopped"}
        assert app_data(env, "primary", env.network) == "written-at-b"  # carried back by b's backup
        _figures("failback to primary (its stopped nodes rebuilt)",
                 json.loads((env.paths.root / "failover-report.json").read_text()))

        # A target whose checks fail: exit 15 in one line, the record untouched.
        spec = env.spec_file.read_text().replace('{command: "true", timeout_seconds: 5}',
                                                 '{command: "false", timeout_seconds: 3}')
        env.spec_file.write_text(spec)
        refused = env.cli("failover", str(env.spec_file), "--to", "b", "--plain")
        assert refused.returncode == NOT_SWITCHED, refused.stdout[-3000:] + refused.stderr[-2000:]
        assert refused.stderr.count("\n") == 1 and "public DNS not switched" in refused.stderr
        assert www(bind) == [PRIMARY_TARGET] and serial(bind) == serial_before + 2

        gone = env.cli("down", str(env.spec_file), "--site", "b", "--yes")
        assert gone.returncode == 0 and "destroyed 2 node(s)" in gone.stdout, gone.stdout + gone.stderr
        assert site_node_states(env, "fo.b", network_b) == {}
        assert set(site_node_states(env, "fo", env.network).values()) == {"running"}

        secret = KnownSecret("the TSIG key", bind.key.secret)
        assert scan_for_secrets([secret], env.home / "state") == []
        for name in ("failover.json", "failover-report.json", "failover-report.md"):
            assert bind.key.secret not in (env.paths.root / name).read_text()
        for output in (up, dry, resumed, back, refused):
            assert bind.key.secret not in output.stdout + output.stderr
    finally:
        cleanup_sites(env)


@pytest.mark.parametrize("case", ["unknown site", "no target for the site", "key refused"])
def test_bad_input_is_one_line_and_switches_nothing(bind, case):
    from tests.support.bind import random_tsig_key

    secret = random_tsig_key("drb-update-key").secret if case == "key refused" else None
    env = two_site_environment(bind, "fobad", secret=secret)
    to = "nowhere" if case == "unknown site" else "b"
    if case == "no target for the site":
        env.spec_file.write_text(env.spec_file.read_text().replace(", b: 198.51.100.10}", "}"))
    try:
        point_www_at(bind, PRIMARY_TARGET)
        before = serial(bind)
        result = env.cli("failover", str(env.spec_file), "--to", to)
        expected = {"unknown site": (2, "--to nowhere: no site of that name"),
                    "no target for the site": (3, "www has no target for site b"),
                    "key refused": (1, "refused the key")}[case]
        assert (result.returncode, result.stderr.count("\n")) == (expected[0], 1), result.stderr
        assert expected[1] in result.stderr
        assert www(bind) == [PRIMARY_TARGET] and serial(bind) == before
        assert not (env.paths.root / "failover.json").exists()
        assert site_node_states(env, "fobad.b", env.network) == {}
        leaked = [s for s in (bind.key.secret, secret) if s is not None and s in result.stderr + result.stdout]
        assert not leaked, "a TSIG secret is in the output"
    finally:
        shutil.rmtree(env.home, ignore_errors=True)
