"""A production environment's drill history: one directory per drill under
EnvironmentPaths.drill_history, holding drill.json (the DrillRecord), the recovery report's JSON and
its HTML page; read back as a list with a trend of time to recovery against the target."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from drbootstrap.paths import EnvironmentPaths, write_private_file

SCHEMA_VERSION = 1
RECORD_FILE = "drill.json"
PASSED, FAILED, INTERRUPTED = "passed", "failed", "interrupted"


@dataclass
class DrillRecord:
    """What one drill found: the figures people compare from drill to drill."""

    drill_id: str
    environment: str  # production's
    drill_environment: str
    started_at: float
    finished_at: float = 0.0
    result: str = FAILED
    reasons: list[str] = field(default_factory=list)  # why it failed, one line each
    rto_target_seconds: float | None = None
    time_to_recovery_seconds: float | None = None  # drill start to every node recovered and checked
    rto_met: bool | None = None
    rpo_seconds: float | None = None  # age of the newest backup restored, when the drill restored one
    slowest_step: dict[str, Any] | None = None  # {"node", "step", "seconds"}
    checks_after_recovery: bool | None = None
    steady_state: dict[str, Any] | None = None  # {"ok", "seconds", "rebooted", "problems"}
    network: str | None = None
    teardown: dict[str, Any] = field(default_factory=dict)  # {"policy", "done", "before", "after", "removed"}
    reaped_at_start: list[dict[str, Any]] = field(default_factory=list)
    notified: list[str] = field(default_factory=list)  # where the notification went, or why it did not
    report_json: str = ""
    report_html: str = ""

    @property
    def passed(self) -> bool:
        return self.result == PASSED

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DrillRecord:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def drill_directory(state_dir: Path, environment: str, record: DrillRecord) -> Path:
    import time

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(record.started_at))
    return EnvironmentPaths(state_dir, environment).drill_history / f"{stamp}-{record.drill_id}"


def keep_reports(record: DrillRecord, state_dir: Path, report_json: Path | None, report_html: Path | None) -> Path:
    """Copy the drill's reports into its history directory (before its state directory goes); its directory."""
    directory = drill_directory(state_dir, record.environment, record)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    for source, name, attribute in ((report_json, "report.json", "report_json"),
                                    (report_html, "report.html", "report_html")):
        if source is not None and source.is_file():
            shutil.copyfile(source, directory / name)
            (directory / name).chmod(0o600)
            setattr(record, attribute, str(directory / name))
    return directory


def verdict_lines(record: DrillRecord) -> list[str]:
    """The drill's verdict for people: result, time to recovery against the target, steady state."""
    ttr = "-" if record.time_to_recovery_seconds is None else f"{record.time_to_recovery_seconds:.0f} s"
    target = "-" if record.rto_target_seconds is None else f"{record.rto_target_seconds:.0f} s"
    met = {True: "met", False: "MISSED", None: "not decided"}[record.rto_met]
    lines = [f"{record.result.upper()} (drill {record.drill_id} of {record.environment})",
             f"time to recovery {ttr} against the RTO target {target}: {met}"]
    if record.steady_state is not None:
        lines.append(f"after a reboot of every node ({len(record.steady_state['rebooted'])}): "
                     + ("checks passed again" if record.steady_state["ok"] else "FAILED"))
    return lines + [f"why: {reason}" for reason in record.reasons]


def annotate_reports(record: DrillRecord) -> None:
    """Put the drill's verdict at the head of its kept reports (JSON and HTML)."""
    from drbootstrap.report import render_html

    if not record.report_json:
        return
    path = Path(record.report_json)
    report = json.loads(path.read_text())
    report["drill"] = {"drill_id": record.drill_id, "result": record.result, "lines": verdict_lines(record)}
    write_private_file(path, json.dumps(report, indent=1) + "\n")
    if record.report_html:
        write_private_file(Path(record.report_html), render_html(report) + "\n")


def save_record(record: DrillRecord, state_dir: Path) -> Path:
    """Write drill.json in the drill's history directory (0600: it names the environment's nodes)."""
    path = drill_directory(state_dir, record.environment, record) / RECORD_FILE
    write_private_file(path, json.dumps(record.to_json(), indent=1) + "\n")
    return path


def load_history(state_dir: Path, environment: str) -> list[DrillRecord]:
    """Every recorded drill of ENVIRONMENT, oldest first; a damaged record is skipped."""
    root = EnvironmentPaths(state_dir, environment).drill_history
    records = []
    for path in sorted(root.glob(f"*/{RECORD_FILE}")) if root.is_dir() else []:
        try:
            records.append(DrillRecord.from_json(json.loads(path.read_text())))
        except (OSError, ValueError, TypeError):
            continue
    return sorted(records, key=lambda r: r.started_at)


def trend(records: list[DrillRecord]) -> str:
    """Time to recovery over the recorded drills: improving, worsening or steady (first half
    against the second), and how many met the target."""
    timed = [r.time_to_recovery_seconds for r in records if r.time_to_recovery_seconds is not None]
    met = sum(1 for r in records if r.rto_met)
    tail = f"{met} of {len(records)} met the RTO target"
    if len(timed) < 2:
        return f"not enough timed drills for a trend; {tail}"
    half = len(timed) // 2
    early, late = sum(timed[:half]) / half, sum(timed[-half:]) / half
    change = (late - early) / early if early else 0.0
    word = "steady" if abs(change) < 0.1 else ("worsening" if change > 0 else "improving")
    return f"time to recovery {word} ({early:.0f} s -> {late:.0f} s on average); {tail}"
