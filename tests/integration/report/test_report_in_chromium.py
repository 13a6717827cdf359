"""The HTML report as a person sees it: headless Chromium renders a report of a run and screenshots it.

The run is the unit tests' fake run (fake cloud and broker, the real report code), so this test
needs no cloud; the end-to-end test screenshots the report of its real `up` the same way.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from drbootstrap.executor import run_up
from drbootstrap.journal import Journal
from drbootstrap.report import build_report, write_report
from drbootstrap.report.html import STEP_COLOURS
from tests.support.chromium import colours, png_size, render
from tests.unit.executor_fakes import FakeAccess, FakeBroker, FakeCloud, load_spec_text, make_context

pytestmark = [pytest.mark.integration]
ARTEFACTS = Path(tempfile.gettempdir()) / "drbootstrap-test-artefacts"


def test_html_report_renders_its_timeline_chart_in_chromium(monkeypatch, tmp_path):
    spec = load_spec_text(monkeypatch)
    cloud = FakeCloud()
    cloud.fail_boot.add("mail01")
    ctx = make_context(spec, tmp_path, cloud, FakeBroker(cloud), FakeAccess())
    result = run_up(ctx)
    journal = Journal.open(tmp_path, "demo")
    report = build_report(journal, result.outcomes, run_started=result.started_at, run_finished=result.finished_at,
                          plan=ctx.plan, rto_seconds=1800)
    paths = write_report(report, journal)
    rendered = render(paths.html, tmp_path / "shots")
    kept = ARTEFACTS / "report-fake-run.png"
    kept.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(rendered.screenshot, kept)
    print(f"\nscreenshot of the rendered report: {kept}")

    assert '<svg class="gantt"' in rendered.dom
    bars = rendered.dom.count('class="bar ')
    assert bars == sum(len(node["steps"]) for node in report["nodes"]) and bars > 20
    assert 'class="bar step-boot failed' in rendered.dom and "critical" in rendered.dom
    for hostname in ("controller", "db01", "web01", "web02", "mail01"):
        assert f">{hostname}</text>" in rendered.dom
    width, height = png_size(rendered.screenshot)
    assert (width, height) == (1280, 1000)
    seen = colours(rendered.screenshot)
    drawn = {STEP_COLOURS["launch"], STEP_COLOURS["puppet_run"], STEP_COLOURS["checks"], "#d62728"}
    assert drawn <= seen, f"bars not drawn in the screenshot: missing {sorted(drawn - seen)}"
