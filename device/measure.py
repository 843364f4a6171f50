"""What the benchmarks share: worker processes of their own, and peak memory measured honestly."""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path


def run_worker(module: str, argv: list[str], what: str, env: dict | None = None) -> dict:
    """Run `python -m module argv...` in a process of its own (from the directory holding this package, so
    that the worker imports the same faced) and return the JSON of its last line of output."""
    process = subprocess.run([sys.executable, "-m", module, *argv], capture_output=True, text=True, env=env,
                             cwd=str(Path(__file__).resolve().parents[1]))
    if process.returncode != 0:
        tail = process.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(f"{what} worker failed: {tail[0]}")
    return json.loads(process.stdout.strip().splitlines()[-1])


def peak_rss_mb() -> float:
    """Peak RSS of this process alone. Not ru_maxrss: Linux carries the parent's peak into a child across
    fork and exec, so a worker started by a driver that holds a million vectors would report the driver's."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def data_file(relative: str) -> Path:
    """A file of the shared face data: $FACED_TEST_DATA, else ../shared/data beside the source tree or the
    current directory."""
    env = os.environ.get("FACED_TEST_DATA")
    roots = [Path(env)] if env else []
    roots.append(Path(__file__).resolve().parents[1].parent / "shared" / "data")
    roots.append(Path.cwd().parent / "shared" / "data")
    for root in roots:
        if (root / relative).exists():
            return root / relative
    return roots[0] / relative
