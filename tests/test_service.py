"""`faced run` serves GET /health on the real threaded server, and refuses to expose itself without keys."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

from tests.conftest import REPO, run_faced


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_run_serves_health(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACED_")}
    env.update({"FACED_API_PORT": str(port), "FACED_DB": str(tmp_path / "faced.db")})
    process = subprocess.Popen([sys.executable, "-m", "device.cli", "run"], cwd=str(REPO), env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        body = None
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    body = json.loads(response.read())
                    break
            except OSError:
                time.sleep(0.1)
        assert body is not None, process.stderr.read1().decode() if process.poll() is not None else "no answer"
        assert body["status"] == "ok"
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/nowhere", timeout=2)
        except urllib.error.HTTPError as error:
            assert error.code == 404
            assert json.loads(error.read())["error"]["code"] == "NOT_FOUND"
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


def test_refuses_lan_bind_without_keys():
    result = run_faced("run", "--host", "0.0.0.0", "--port", str(_free_port()))
    assert result.returncode == 1
    assert "refusing" in result.stderr and "NO_API_KEYS" in result.stderr and "Traceback" not in result.stderr
