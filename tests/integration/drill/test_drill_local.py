"""Fire drills on the local cloud, next to a production `demo` environment that stays up throughout:
a drill passes and leaves nothing; SIGTERM and SIGKILL midway leave nothing once cleaned; a drill
with a failing check exits 14, reaps the killed one at its start and notifies a loopback receiver;
production's journal, DNS answers and nodes are byte for byte the same; `history` lists the drills.
Production's db01 holds a known file on its `backup:` volume and is backed up first: the drill
restores that backup, verified, onto its own db01 and records the RPO; production's backups all stay.

One production environment serves every test (module-scoped: `up` takes minutes here).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from tests.integration.up.conftest import E2E_GATE, Environment, make_environment, tear_down
from tests.support.chromium import colours, png_size, render
from tests.support.prereq import REPO_ROOT
from tests.support.secrets_scan import environment_secrets, scan_for_secrets

pytestmark = [pytest.mark.integration, E2E_GATE, pytest.mark.timeout(3600)]
ARTEFACTS = Path(tempfile.gettempdir()) / "drbootstrap-test-artefacts"
WORKERS = ["db01", "web01", "web02", "mail01"]
KNOWN_FILE = "drill-known.txt"  # on db01's data volume (mounted at /srv/db), backed up before the drills


class Receiver:
    """A webhook receiver on loopback: every POSTed JSON body, in order."""

    def __init__(self) -> None:
        received = self.bodies = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/drill"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def production():
    text = (REPO_ROOT / "examples" / "local.yaml").read_text()
    env = make_environment(text, "demo")
    receiver = Receiver()
    try:
        run = env.cli("up", str(env.spec_file), "--json")
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        env.known = f"written by production at {time.time():.3f}"
        volume = env.paths.nodes / "db01" / "root" / "srv" / "db"
        env.in_node("db01", f"printf '%s\\n' '{env.known}' >{volume / KNOWN_FILE} && sync")
        backup = env.cli("backup", str(env.spec_file))
        assert backup.returncode == 0, backup.stdout[-3000:] + backup.stderr[-3000:]
        env.backups = production_backups(env)
        assert [(b["hostname"], b["name"], b["good"]) for b in env.backups] == [("db01", "data", True)]
        env.receiver = receiver
        env.baseline = production_view(env)
        env.plumbing = plumbing_view(env)
        yield env
    finally:
        receiver.close()
        tear_down(env)


def drill_spec_file(env: Environment, name: str, *, extra_check: str = "", teardown: str = "on_success") -> Path:
    """The production spec with a notify block (and a check that fails, when asked)."""
    text = env.spec_file.read_text().replace("teardown: on_success", f"teardown: {teardown}")
    text += f"  notify:\n    webhook: {env.receiver.url}\n    timeout_seconds: 5\n"
    if extra_check:
        text = text.replace("      classes: [role::mail]\n",
                            f"      classes: [role::mail]\n    checks:\n      - command: {extra_check}\n"
                            "        timeout_seconds: 2\n")
    path = env.home / name
    path.write_text(text)
    return path


def production_view(env: Environment) -> dict:
    """Production as a person would compare it: its journal's bytes, its dnsmasq's answers, its nodes."""
    import dns.resolver
    import dns.reversename

    journal = env.paths.journal.read_bytes()
    nodes = json.loads(journal)["nodes"]
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [nodes["controller"]["address"]]
    answers = {}
    for hostname in ["controller", *WORKERS]:
        fqdn = f"{hostname}.demo.internal"
        answers[fqdn] = sorted(a.to_text() for a in resolver.resolve(fqdn, "A"))
        address = nodes[hostname]["address"]
        answers[address] = sorted(p.to_text() for p in resolver.resolve(dns.reversename.from_address(address), "PTR"))
    listed = sorted((n.id, n.name, str(n.state), tuple(n.private_ips), json.dumps(n.extra["tags"], sort_keys=True),
                     n.extra["boot_count"]) for n in env.driver().list_nodes()
                    if n.extra["tags"].get("drbootstrap:environment") == "demo")
    return {"journal": journal, "dns": answers, "nodes": listed}


def production_backups(env: Environment) -> list[dict]:
    """Production's backup catalog as `backups --json` lists it, oldest first."""
    run = env.cli("backups", str(env.spec_file), "--json", timeout=120)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return sorted(json.loads(run.stdout)["backups"], key=lambda b: b["created_at"])


def drill_node_file(env: Environment, drill_environment: str, hostname: str, path: str) -> str:
    """A file as the drill's node HOSTNAME sees it (entering that node, found by its environment tag)."""
    from drbootstrap.paths import EnvironmentPaths
    from drbootstrap.providers.nodes import ENVIRONMENT_TAG, HOSTNAME_TAG, node_tags

    driver = env.driver()
    (node,) = [n for n in driver.list_nodes() if node_tags(n).get(ENVIRONMENT_TAG) == drill_environment
               and node_tags(n).get(HOSTNAME_TAG) == hostname]
    full = EnvironmentPaths(env.home / "state", drill_environment).nodes / hostname / "root" / path.lstrip("/")
    argv = driver.ex_enter_command(node, ["cat", str(full)])
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout.strip()


def plumbing_view(env: Environment) -> dict:
    from drbootstrap.providers.local.cleanup import own_mounts

    driver = env.driver()
    return {"namespaces": driver.plumbing.own_namespaces(), "links": driver.plumbing.own_links(),
            "mounts": own_mounts(driver.store.root)}


def drill_leftovers(env: Environment) -> list[str]:
    """Anything of any drill: state, cloud nodes, volumes, processes, and plumbing beyond production's."""
    state = env.home / "state"
    left = [f"state {p.name}" for p in (state / "environments").iterdir() if p.name.startswith("drill-")]
    driver = env.driver()
    left += [f"node {n.name} {n.id}" for n in driver.list_nodes() if "drbootstrap:drill" in n.extra["tags"]]
    left += [f"volume {v.name}" for v in driver.list_volumes() if v.name.startswith("drb-drill-")]
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if re.search(r"environments/drill-demo-", cmdline) and " drill " not in cmdline:
                left.append(f"process {proc.name}: {cmdline[:120]}")
    now = plumbing_view(env)
    for kind in ("namespaces", "links", "mounts"):
        left += [f"{kind[:-1]} {x}" for x in sorted(set(now[kind]) - set(env.plumbing[kind]))]
    return left


def assert_production_untouched(env: Environment) -> None:
    now = production_view(env)
    assert now["journal"] == env.baseline["journal"]
    assert now["dns"] == env.baseline["dns"]
    assert now["nodes"] == env.baseline["nodes"]
    # Every production snapshot still there (a drill may tag one verified, never delete one).
    assert {b["id"] for b in env.backups} <= {s.id for s in env.driver().list_snapshots()}


def start_drill(env: Environment, spec_file: Path) -> subprocess.Popen:
    return env.start("drill", str(spec_file), "--json")


def wait_for_launches(process: subprocess.Popen, count: int, limit: float = 600) -> list[str]:
    """Read the drill's JSON events until COUNT nodes have launched."""
    lines, launched = [], set()
    deadline = time.monotonic() + limit
    assert process.stdout is not None
    while len(launched) < count and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        event = json.loads(line) if line.startswith("{") else {}
        if event.get("step") == "launch" and event.get("state") == "done":
            launched.add(event["node"])
    assert len(launched) >= count, "".join(lines)[-3000:]
    return lines


def run_drill_keeping_its_secrets(env: Environment, spec_file: Path) -> tuple[int, list[str], list, str | None]:
    """Run a drill to its end; its exit status, its output lines, the secrets its `up` made and
    the known file as its db01 holds it (both read once it recovered, before its teardown)."""
    process = start_drill(env, spec_file)
    lines, secrets, known = [], [], None
    assert process.stdout is not None
    try:
        for line in process.stdout:
            lines.append(line)
            event = json.loads(line) if line.startswith("{") else {}
            if event.get("step") == "drill" and event.get("detail", "").startswith("drill "):
                drill_environment = event["detail"].split(": ", 1)[1].split(" ", 1)[0].rstrip(",")
            if event.get("step") == "drill" and event.get("detail", "").startswith("recovered"):
                secrets = environment_secrets(env.home / "state", drill_environment)
                known = drill_node_file(env, drill_environment, "db01", f"/srv/db/{KNOWN_FILE}")
        process.wait(timeout=2400)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode, lines, secrets, known


def test_a_drill_passes_isolated_and_leaves_nothing_behind(production, tmp_path):
    spec_file = drill_spec_file(production, "drill-pass.yaml")
    returncode, lines, drill_secrets, known = run_drill_keeping_its_secrets(production, spec_file)
    assert returncode == 0, "".join(lines)[-4000:]
    record = json.loads(lines[-1])
    # Production's newest backup, restored onto the drill's own db01 and verified there; its age recorded.
    assert known == production.known
    restored = [b for b in json.loads(Path(record["report_json"]).read_text())["backups"] if b["kind"] == "snapshot"]
    assert [(b["hostname"], b["volume"], b["backup_id"], b["verified"]) for b in restored] == [
        ("db01", "data", production.backups[-1]["id"], "ok")]
    assert isinstance(record["rpo_seconds"], int | float) and record["rpo_seconds"] >= 0
    assert {b["id"] for b in production_backups(production)} == {b["id"] for b in production.backups}
    print(f"\ndrill: time to recovery {record['time_to_recovery_seconds']} s "
          f"(target {record['rto_target_seconds']} s), steady state {record['steady_state']['seconds']} s, whole drill "
          f"{record['finished_at'] - record['started_at']:.1f} s")
    assert record["result"] == "passed" and record["rto_met"] is True
    assert record["steady_state"]["ok"] and sorted(record["steady_state"]["rebooted"]) == sorted(
        ["controller", *WORKERS])
    assert record["network"] != production.network and record["teardown"]["clean"]
    assert record["teardown"]["before"] and record["teardown"]["after"] == []
    events = [json.loads(line) for line in lines[:-1] if line.startswith("{")]
    addresses = {e["address"] for e in events if e.get("address")}
    drill_network = ipaddress.ip_network(record["network"])
    assert addresses and all(ipaddress.ip_address(a) in drill_network for a in addresses)
    assert not drill_network.overlaps(ipaddress.ip_network(production.network))
    assert drill_leftovers(production) == []
    assert_production_untouched(production)

    rendered = render(Path(record["report_html"]), tmp_path)
    kept = ARTEFACTS / "report-drill-local.png"
    kept.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(rendered.screenshot, kept)
    print(f"\nscreenshot of the drill's report: {kept}")
    assert '<svg class="gantt"' in rendered.dom and "drill of demo" in rendered.dom
    assert "Drill: PASSED" in rendered.dom
    assert png_size(rendered.screenshot) == (1280, 1000)
    from drbootstrap.report.html import STEP_COLOURS

    assert {STEP_COLOURS["launch"], STEP_COLOURS["puppet_run"]} <= colours(rendered.screenshot)
    # The drill's own secrets (its PSK, tokens, keys) and production's: in no trace the drill left
    # (its history: record and reports), no file others can read, no process's arguments.
    assert {s.name for s in drill_secrets} >= {"the PSK", "the ed25519 signing key keys/operator.pem"}
    secrets = drill_secrets + environment_secrets(production.home / "state", "demo")
    findings = scan_for_secrets(secrets, production.home / "state")
    assert findings == [], "\n".join(findings)


def test_sigterm_midway_tears_down_before_exit(production):
    process = start_drill(production, drill_spec_file(production, "drill-term.yaml"))
    try:
        wait_for_launches(process, 2)
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=600)  # reading on: the teardown's events must not block on a full pipe
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 14, rest[-4000:]
    assert drill_leftovers(production) == [], rest[-6000:]
    assert_production_untouched(production)


def _kill_midway(production: Environment, name: str) -> None:
    process = start_drill(production, drill_spec_file(production, name))
    try:
        wait_for_launches(process, 2)
    finally:
        process.kill()  # SIGKILL to the drill itself: nothing of it runs its teardown
        process.wait()
    assert drill_leftovers(production), "the killed drill should have left its nodes"


def test_sigkill_midway_is_reaped_by_drill_cleanup(production):
    _kill_midway(production, "drill-kill.yaml")
    state = production.home / "state"
    (killed,) = [p.name for p in (state / "environments").iterdir() if p.name.startswith("drill-")]
    findings = scan_for_secrets(environment_secrets(state, killed), state)  # its nodes still run
    assert findings == [], "\n".join(findings)
    run = production.cli("drill", str(production.spec_file), "--cleanup", "--json", timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(run.stdout)
    assert len(result["reaped"]) == 1 and "is gone" in result["reaped"][0]["reason"]
    assert result["reaped"][0]["before"] and result["reaped"][0]["after"] == []
    assert drill_leftovers(production) == []
    assert_production_untouched(production)


def test_a_failing_check_fails_the_drill_notifies_and_the_drill_reaps_a_killed_one_first(production):
    _kill_midway(production, "drill-kill-2.yaml")
    spec_file = drill_spec_file(production, "drill-fail.yaml", extra_check="'false'", teardown="always")
    before = len(production.receiver.bodies)
    run = production.cli("drill", str(spec_file), "--json", timeout=2400)
    assert run.returncode == 14, run.stdout[-4000:] + run.stderr[-3000:]
    record = json.loads(run.stdout.splitlines()[-1])
    assert record["result"] == "failed" and any("mail01" in reason for reason in record["reasons"])
    assert len(record["reaped_at_start"]) == 1 and record["reaped_at_start"][0]["after"] == []
    bodies = production.receiver.bodies[before:]
    assert [b["event"] for b in bodies] == ["drill_failed"] and bodies[0]["drill_id"] == record["drill_id"]
    assert record["notified"] == [f"webhook {production.receiver.url}: HTTP 204"]
    assert drill_leftovers(production) == []
    assert_production_untouched(production)


def test_history_shows_the_drills_with_rto_against_target_and_a_trend(production):
    run = production.cli("history", str(production.spec_file), "--json", timeout=120)
    assert run.returncode == 0, run.stderr
    history = json.loads(run.stdout)
    assert history["schema_version"] == 1
    assert [d["result"] for d in history["drills"]] == ["passed", "interrupted", "failed"]
    assert history["drills"][0]["rto_target_seconds"] == 900 and history["drills"][0]["time_to_recovery_seconds"] > 0
    assert isinstance(history["drills"][0]["rpo_seconds"], int | float)
    table = production.cli("history", str(production.spec_file), timeout=120)
    assert table.returncode == 0 and "RTO / target" in table.stdout and "trend:" in table.stdout
    assert table.stdout.count("passed") == 1 and "interrupted" in table.stdout
    (header,) = [line for line in table.stdout.splitlines() if "RPO restored" in line]
    column = [c.strip() for c in re.split("[│┃]", header)].index("RPO restored")
    (passed,) = [line for line in table.stdout.splitlines() if " passed " in line]
    assert re.fullmatch(r"\d+ s", [c.strip() for c in re.split("[│┃]", passed)][column]), table.stdout
    # After every drill: production's backups all still listed, none deleted.
    assert {b["id"] for b in production_backups(production)} == {b["id"] for b in production.backups}
