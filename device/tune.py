"""`faced models tune`: time every shipped precision of each model on this machine and keep the fastest.

Which precision is fastest depends on the CPU, not only on the file (on an AVX2 host without VNNI, SFace's
dynamic-range file was slower than fp16; with VNNI it was the fastest), and emulation cannot time a Pi. So the
device measures itself: every shipped variant that passes its fidelity bar (models/manifest.toml) is timed with
the configured thread count, in alternating rounds so that a busy moment hits all alike, and the fastest by
median is written to `tuned.toml` next to the database (writable under systemd's ProtectSystem=strict, where
the state directory is). The configuration loads it between the defaults and the config file, so an explicit
choice in the file, the environment or a flag still wins. A variant that fails its bar is never chosen.

A new embedder precision changes the vectors: collections made with another one are refused until
`faced reembed`, as after any embedder change.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

from .config import PRECISION_KEYS, TUNED_NAME, Config
from .errors import FacedError
from .vision.manifest import Manifest
from .vision.runtime import TFLiteModel

# YuNet takes any input size: time it at the size a 720p frame is detected at (640x360, padded to 640x384).
DYNAMIC_INPUT = {"yunet": (1, 384, 640, 3)}


def candidates(manifest: Manifest, model: str) -> list:
    """The variants that may be chosen: shipped, and passing the fidelity bar."""
    return [v for v in manifest.variants(model) if v.shipped and v.passes]


def time_variants(manifest: Manifest, threads: int, rounds: int = 5, calls: int = 10) -> dict[str, dict]:
    """model -> {precision: median ms per call} for every choosable variant of each model with a precision key."""
    rng = np.random.default_rng(0)
    results: dict[str, dict] = {}
    for model in PRECISION_KEYS:
        if model not in manifest.models():
            continue
        loaded = []
        for variant in candidates(manifest, model):
            runner = TFLiteModel(variant, threads)
            shape = DYNAMIC_INPUT.get(model) or runner.input_shape
            if DYNAMIC_INPUT.get(model):
                runner.resize_input(shape)
            tensor = rng.uniform(0, 255, shape).astype(np.float32)
            for _ in range(3):
                runner.run(tensor)  # warm-up: the first calls pack weights
            loaded.append((variant, runner, tensor))
        samples: dict[str, list[float]] = {v.precision: [] for v, _, _ in loaded}
        for _ in range(rounds):
            for variant, runner, tensor in loaded:
                start = time.perf_counter()
                for _ in range(calls):
                    runner.run(tensor)
                samples[variant.precision].append((time.perf_counter() - start) * 1000 / calls)
        results[model] = {precision: round(statistics.median(times), 3) for precision, times in samples.items()}
    return results


def choose(timings: dict[str, dict]) -> dict[str, str]:
    """model -> its fastest precision."""
    return {model: min(by_precision, key=by_precision.get) for model, by_precision in timings.items() if by_precision}


def tuned_path(config: Config) -> Path:
    return config.db_path.parent / TUNED_NAME


def write_tuned(path: Path, chosen: dict[str, str], timings: dict[str, dict], threads: int) -> None:
    """tuned.toml: one key per model's precision, with the timings it was chosen from as comments."""
    import tomli_w

    sections: dict[str, dict[str, str]] = {}
    for model, precision in chosen.items():
        section, key = PRECISION_KEYS[model].split(".")
        sections.setdefault(section, {})[key] = precision
    lines = [f"# Written by `faced models tune` on {time.strftime('%Y-%m-%d %H:%M:%S')} ({threads} thread(s)).",
             "# Median ms per call of every shipped precision that passes its fidelity bar:"]
    lines += [f"#   {model}: " + ", ".join(f"{p} {ms}" for p, ms in by_precision.items())
              for model, by_precision in timings.items()]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text("\n".join(lines) + "\n" + tomli_w.dumps(sections))
        temporary.replace(path)  # a power cut leaves the old file or the new one, never half of one
    except OSError as exc:
        raise FacedError(f"cannot write {path}: {exc.strerror or exc}", "OUTPUT_ERROR") from None


def tune(config: Config, rounds: int = 5) -> dict:
    manifest = Manifest(config.vision.models_dir or None)
    timings = time_variants(manifest, config.vision.threads, rounds)
    chosen = choose(timings)
    path = tuned_path(config)
    write_tuned(path, chosen, timings, config.vision.threads)
    return {"file": str(path), "threads": config.vision.threads, "chosen": chosen, "timings_ms": timings}
