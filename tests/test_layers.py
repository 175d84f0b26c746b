"""The layering of ARCHITECTURE.md, checked by import-linter: a wrong import fails CI."""

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_import_contracts_hold():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert lint, "import-linter is a test dependency; `make test` installs it"
    result = subprocess.run([lint, "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout
    assert "KEPT" in result.stdout


def test_cli_lists_every_command_of_operations_md():
    out = subprocess.run([sys.executable, "-m", "fed_dns.cli", "--help"],
                         capture_output=True, text=True, cwd=REPO, timeout=60).stdout
    for command in ("run", "serve", "demo", "check-config", "status", "records",
                    "kubeconfig", "sim", "version"):
        assert f"    {command} " in out, command
