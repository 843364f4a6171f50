"""systemd/faced.service passes `systemd-analyze verify` with ExecStart pointing at this test's install of faced
(the venv running the tests), and carries the hardening the README promises."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

UNIT = REPO / "systemd" / "faced.service"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def test_unit_verifies(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        if _in_ci():
            pytest.fail("systemd-analyze is missing: .ci/run installs systemd")
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    faced = Path(sys.executable).with_name("faced")
    assert faced.exists(), "faced is not installed in this venv"
    text = UNIT.read_text()
    for key in ("Type=notify", "User=faced", "StateDirectory=faced", "ProtectSystem=strict", "NoNewPrivileges=yes",
                "WatchdogSec=", "Restart=on-failure", "SupplementaryGroups=video"):
        assert key in text
    text = text.replace("/opt/faced/.venv/bin/faced", str(faced))
    unit = tmp_path / "faced.service"
    unit.write_text(text)
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=120)
    # Lines about other units on this machine (or a missing documentation file) are not this unit's problems.
    problems = [line for line in (result.stdout + result.stderr).splitlines()
                if "faced.service" in line and "Documentation" not in line]
    assert result.returncode == 0 and not problems, result.stdout + result.stderr
