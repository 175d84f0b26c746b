"""pyproject.toml builds without deprecation warnings (setuptools turns several into errors
on a fixed date)."""

from __future__ import annotations

import subprocess
import sys

from tests.support import REPO

PROBE = """
import os, sys, tempfile, warnings
warnings.simplefilter("error")  # a deprecation while reading pyproject.toml fails the build
from setuptools import build_meta
with tempfile.TemporaryDirectory() as out:
    name = build_meta.prepare_metadata_for_build_wheel(out)
    meta = open(os.path.join(out, name, "METADATA")).read()
print(meta)
"""


def test_pyproject_metadata_builds_with_warnings_as_errors(tmp_path):
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True,
                            text=True, timeout=120, env={"PATH": "/usr/bin:/bin",
                                                         "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "License-Expression: Apache-2.0" in result.stdout
    assert "Name: fed-dns" in result.stdout
