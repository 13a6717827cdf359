"""`drbootstrap watch` and `check` on the local cloud, against examples/local.yaml with a watch
block (meltdown at 3 nodes, so that three of six trips it), `standby: 1` on the web group (a sixth
node, web-standby1) and a loopback webhook receiver.

One environment for the module (the machine is slow and shared); the tests run in file order:
check OK, a killed worker resurrected (timed), a watcher SIGKILLed mid-resurrection and restarted
(one resurrection only), the active web01 killed (its name answers from the standby through the
master's dnsmasq, timed; web01 rebuilt behind it), three killed at once (paused, notified, nothing
resurrected, then `watch --resume` repairs them), and check UNKNOWN with the broker unreachable.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.integration.up.conftest import E2E_GATE, make_environment, tear_down
from tests.support.prereq import REPO_ROOT

pytestmark = [pytest.mark.integration, E2E_GATE]
NAGIOS = re.compile(r"^DRBOOTSTRAP (OK|WARNING|CRITICAL|UNKNOWN) - [^|\n]+ \| (\S+=\S+)( \S+=\S+)*$")
WATCH_BLOCK = """
watch:
  interval_seconds: 3
  silent_intervals: 2
  meltdown: {{nodes: 3, percent: 20, window_minutes: 10}}
  notify:
    webhook: http://127.0.0.1:{port}/drbootstrap
    timeout_seconds: 5
"""


class Receiver:
    """A loopback HTTP server keeping every JSON body POSTed to it."""

    def __init__(self) -> None:
        received: list[dict] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def environment():
    receiver = Receiver()
    text = (REPO_ROOT / "examples" / "local.yaml").read_text().replace(
        '    hostname_pattern: "web{n:02}"', '    standby: 1\n    hostname_pattern: "web{n:02}"', 1)
    assert "standby: 1" in text
    text += WATCH_BLOCK.format(port=receiver.server.server_port)
    env = make_environment(text, "watche2e")
    env.receiver = receiver
    env.watchers = []
    try:
        run = env.cli("up", str(env.spec_file), "--plain")
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        yield env
    finally:
        for process in env.watchers:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
        try:
            tear_down(env)
        finally:
            receiver.close()


def check(env) -> tuple[int, str]:
    done = env.cli("check", str(env.spec_file), timeout=120)
    line = done.stdout.strip()
    assert NAGIOS.match(line), done.stdout + done.stderr
    return done.returncode, line


def kill_node(env, hostname: str) -> None:
    """Kill a node from outside: every process in its network namespace ended (SIGKILL, by pid), the
    namespace removed, as a host crash would leave it. The local cloud's record remains."""
    from drbootstrap.providers.local import netns, runtime

    node = next(n for n in env.driver().list_nodes() if n.name == hostname)
    name = node.extra["namespace"]
    inode = netns.namespace_inode(netns.NETNS_DIR / name)
    assert inode is not None
    for pid in runtime.pids_in_netns(inode):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    subprocess.run(["ip", "netns", "del", name], check=True, timeout=30)


def start_watcher(env) -> subprocess.Popen:
    process = env.start("watch", str(env.spec_file))
    env.watchers.append(process)
    return process


def stop_watcher(process: subprocess.Popen, sig: int = signal.SIGTERM) -> str:
    os.killpg(process.pid, sig)
    out, _ = process.communicate(timeout=60)
    return out or ""


def watch_state(env) -> dict:
    path = env.paths.watch_state
    return json.loads(path.read_text()) if path.exists() else {}


def wait_for(predicate, timeout: float, what: str, step: float = 2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def provider_id(env, hostname: str) -> str:
    return json.loads(env.paths.journal.read_text())["nodes"][hostname]["provider_id"]


def role_file(env, hostname: str) -> str:
    return env.in_node(hostname, f"cat {env.paths.nodes / hostname / 'root'}/etc/drbootstrap/role")


def test_check_is_ok_with_every_agent_answering(environment):
    code, line = check(environment)
    assert code == 0, line
    assert line.startswith("DRBOOTSTRAP OK - ") and "agents=6;;;0;6" in line and "resurrected=0" in line


def test_a_killed_worker_comes_back_under_its_name_with_its_volume_data(environment):
    env = environment
    data = env.paths.nodes / "db01" / "root" / "srv" / "db"
    env.in_node("db01", f"echo survives > {data}/watch-marker")
    before = provider_id(env, "db01")
    boot_log = env.paths.nodes / "db01" / "var" / "boot.log"
    boot_log_before = len(boot_log.read_text())
    watcher = start_watcher(env)
    killed = time.monotonic()
    kill_node(env, "db01")
    code, line = check(env)
    assert code == 2 and "db01" in line, line
    wait_for(lambda: any(r["hostname"] == "db01" and r["ok"] for r in watch_state(env).get("resurrections", [])),
             900, "db01 resurrected")
    wait_for(lambda: check(env)[0] == 0, 120, "check OK again")
    seconds = time.monotonic() - killed
    out = stop_watcher(watcher)
    print(f"\nkill -> check OK: {seconds:.1f} s\n{out[-3000:]}")
    assert provider_id(env, "db01") != before
    assert env.in_node("db01", "hostname") == "db01"
    assert env.in_node("db01", f"cat {data}/watch-marker") == "survives"
    assert role_file(env, "db01") == "db"
    # Its boot.sh ran once, from runcmd with the new settings: not also from bootcmd with the dead
    # node's node.env, still in the node's directory on this host (two agents, one trusting stale keys).
    assert boot_log.read_text()[boot_log_before:].count("agent started as") == 1
    agents = subprocess.run(["pgrep", "-f", f"agent --config {env.paths.nodes}/db01/var/"],
                            capture_output=True, text=True, check=False).stdout.split()
    assert len(agents) == 1, agents
    status = env.cli("status", str(env.spec_file))
    assert status.returncode == 0, status.stdout + status.stderr
    code, line = check(env)
    assert "resurrected=1" in line and re.search(r"last_recovery=\d+\.\ds", line), line
    assert any(n["event"] == "resurrected" and n["nodes"] == ["db01"] for n in env.receiver.received)
    assert seconds < 900


def test_a_watcher_killed_mid_resurrection_and_restarted_resurrects_once(environment):
    env = environment
    before = provider_id(env, "mail01")
    watcher = start_watcher(env)
    kill_node(env, "mail01")
    wait_for(lambda: any(r["hostname"] == "mail01" for r in watch_state(env).get("resurrections", [])),
             300, "mail01's resurrection begun")
    time.sleep(5)  # into the relaunch
    stop_watcher(watcher, signal.SIGKILL)
    restarted = start_watcher(env)
    wait_for(lambda: any(r["hostname"] == "mail01" and r["ok"] for r in watch_state(env).get("resurrections", [])),
             900, "mail01 resurrected")
    time.sleep(10)  # a few more intervals: nothing else happens to mail01
    out = stop_watcher(restarted)
    entries = [r for r in watch_state(env)["resurrections"] if r["hostname"] == "mail01"]
    assert len(entries) == 1 and entries[0]["dead_id"] == before, entries
    assert env.live_hostnames().count("mail01") == 1
    assert role_file(env, "mail01") == "mail", out[-2000:]
    assert check(env)[0] == 0


def resolve(env, hostname: str) -> list[str]:
    """The A records of hostname.demo.internal as the master's dnsmasq answers them."""
    import dns.exception
    import dns.resolver

    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [json.loads(env.paths.journal.read_text())["nodes"]["controller"]["address"]]
    resolver.lifetime = 2.0
    try:
        return sorted(a.to_text() for a in resolver.resolve(f"{hostname}.demo.internal", "A"))
    except dns.exception.DNSException:
        return []


def web_answers(address: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://{address}:8080/", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def test_the_active_node_of_a_standby_group_killed_its_name_answers_from_the_standby(environment):
    env = environment
    journal = json.loads(env.paths.journal.read_text())["nodes"]
    spare, before = journal["web-standby1"]["address"], journal["web01"]["address"]
    assert resolve(env, "web01") == [before]
    notes_before = len(env.receiver.received)
    watcher = start_watcher(env)
    time.sleep(4)  # the watcher's first interval: web01 counted alive
    killed = time.monotonic()
    kill_node(env, "web01")
    wait_for(lambda: resolve(env, "web01") == [spare] and web_answers(spare), 120, "web01 answering from the standby",
             step=0.25)
    switched = time.monotonic() - killed
    assert resolve(env, "web-standby1") == [spare]  # the spare keeps its own name
    wait_for(lambda: any(r["hostname"] == "web01" and r["ok"] for r in watch_state(env).get("resurrections", [])),
             900, "web01 rebuilt behind the standby")
    wait_for(lambda: check(env)[0] == 0, 120, "check OK again")
    rebuilt = time.monotonic() - killed
    out = stop_watcher(watcher)
    state = watch_state(env)
    switch = [w for w in state["switches"] if w["hostname"] == "web01"]
    print(f"\nkill -> web01 answers from web-standby1: {switched:.1f} s (the move itself {switch[-1]['seconds']:.2f} s)"
          f"; kill -> rebuilt and check OK: {rebuilt:.1f} s\n{out[-3000:]}")
    assert len(switch) == 1 and switch[0]["standby"] == "web-standby1" and switch[0]["how"].startswith("dns: ")
    assert state["serving"] == {}
    now = json.loads(env.paths.journal.read_text())["nodes"]["web01"]["address"]
    assert resolve(env, "web01") == [now] and resolve(env, "web-standby1") == [spare]
    notes = [n for n in env.receiver.received[notes_before:] if n["event"] == "standby_switch"]
    assert len(notes) == 1 and notes[0]["nodes"] == ["web01", "web-standby1"]
    assert switched < 60


def test_three_killed_at_once_pause_notify_and_resume_repairs_them(environment):
    env = environment
    notes_before = len(env.receiver.received)
    count_before = len(watch_state(env).get("resurrections", []))
    watcher = start_watcher(env)
    for hostname in ("web01", "web02", "mail01"):
        kill_node(env, hostname)
    wait_for(lambda: watch_state(env).get("pause"), 120, "the meltdown pause")
    paused = wait_for(lambda: [n for n in env.receiver.received[notes_before:] if n["event"] == "paused"], 60,
                      "the pause notified")
    assert sorted(paused[0]["nodes"]) == ["mail01", "web01", "web02"]
    time.sleep(15)  # five intervals: nothing is resurrected while paused
    assert len(watch_state(env).get("resurrections", [])) == count_before
    assert check(env)[0] == 2
    resumed = env.cli("watch", str(env.spec_file), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    wait_for(lambda: check(env)[0] == 0, 1800, "all three repaired", step=5)
    out = stop_watcher(watcher)
    repaired = {r["hostname"] for r in watch_state(env)["resurrections"][count_before:] if r["ok"]}
    assert repaired == {"web01", "web02", "mail01"}, out[-3000:]
    for hostname, role in (("web01", "web"), ("web02", "web"), ("mail01", "mail")):
        assert role_file(env, hostname) == role


def test_check_is_unknown_when_the_broker_is_unreachable(environment):
    env = environment
    other = env.spec_file.with_name("wrong-port.yaml")
    other.write_text(env.spec_file.read_text().replace("port: 61613", "port: 61999"))
    done = env.cli("check", str(other), timeout=120)
    assert done.returncode == 3, done.stdout + done.stderr
    assert NAGIOS.match(done.stdout.strip()) and done.stdout.startswith("DRBOOTSTRAP UNKNOWN - ")


def test_the_printed_unit_passes_systemd_analyze_verify(tmp_path):
    import sys

    from tests.support.prereq import require_binary

    require_binary("systemd-analyze")
    unit = tmp_path / "drbootstrap-watch-demo.service"
    printed = subprocess.run([sys.executable, "-m", "drbootstrap", "watch", str(REPO_ROOT / "examples" / "local.yaml"),
                              "--state-dir", str(tmp_path / "state"), "--print-unit"],
                             capture_output=True, text=True, timeout=60, check=True)
    unit.write_text(printed.stdout)
    verified = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60,
                              check=False)
    assert verified.returncode == 0, verified.stderr
    assert f"{unit}:" not in verified.stderr  # nothing said about our unit (other units' warnings aside)
