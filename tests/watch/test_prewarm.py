"""The kubernetes client's API modules load lazily (~0.9 s of CPU): the daemon loads them at
start (`stream.prewarm`), not in the middle of a restart's member lists."""

from __future__ import annotations

import subprocess
import sys

from tests.support import REPO

MODULES = ("kubernetes.client.api.core_v1_api", "kubernetes.client.api.discovery_v1_api")


def test_prewarm_loads_the_api_modules_the_lists_use():
    script = (
        "import sys\n"
        "from fed_dns.watch import stream\n"
        f"modules = {MODULES!r}\n"
        "assert not any(m in sys.modules for m in modules), 'loaded before prewarm'\n"
        "stream.prewarm()\n"
        "assert all(m in sys.modules for m in modules), 'not loaded by prewarm'\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
