"""Shared fixtures: the face data of ../shared/data (or $FACED_TEST_DATA) and one real pipeline."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    env = os.environ.get("FACED_TEST_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data() -> Path:
    root = data_root()
    if not (root / "faces").is_dir():
        pytest.skip(f"face data not found at {root}: put ../shared/data beside the repository or set "
                    "FACED_TEST_DATA")
    return root


@pytest.fixture(scope="session")
def faces_dir(data) -> Path:
    return data / "faces"


@pytest.fixture(scope="session")
def pipeline():
    from device.config import load_config
    from device.vision.pipeline import Pipeline

    # Defaults only: the environment of the person running the tests must not change what is tested.
    return Pipeline(load_config(env={}))


def run_faced(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real `faced` CLI in a subprocess (python -m device.cli, same code as the console script)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FACED_") or k == "FACED_TEST_DATA"}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "device.cli", *args], capture_output=True, text=True,
                          cwd=str(REPO), env=full_env, timeout=timeout)
