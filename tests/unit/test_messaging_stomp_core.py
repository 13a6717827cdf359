"""The lean stomp.py import: the transport loads no websocket/multicast adapter, and `import stomp`
elsewhere still gets the whole package (fresh interpreters, since sys.modules is process-wide)."""

from __future__ import annotations

import subprocess
import sys

from tests.support.prereq import REPO_ROOT


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_transport_imports_stomp_core_without_its_adapters():
    loaded = _run(
        "import sys, drbootstrap.messaging.transport\n"
        "print(sorted(m for m in sys.modules if m.startswith(('websocket', 'stomp.adapter'))))"
    )
    assert loaded == "[]"


def test_plain_import_stomp_after_the_lean_import_still_has_the_whole_package():
    out = _run(
        "import drbootstrap.messaging.stomp_core as core, stomp\n"
        "print(stomp.Connection12 is core.StompConnection12, stomp.__version__ != '', hasattr(stomp, 'WSConnection'))"
    )
    assert out == "True True True"
