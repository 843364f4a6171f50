#!/usr/bin/env python3
"""Same as `faced bench`: per-stage latency, frames per second and peak RSS (see device/bench.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from device.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
