"""`faced bench camera CLIP`: the daemon as it runs, measured. The clip plays as a camera at its own frame rate
(a file source, as `faced run --camera` would), in a worker process that runs the real daemon: the HTTP API,
the camera loop with recognition and (by default) passive liveness, the outbox, against a temporary database
holding the persons enrolled with --enrol (by default Lin-Manuel Miranda from the test data when present).

Reports frames/s processed next to the clip's own rate, frames dropped (newest-frame-wins), time per stage
(mean and max per call, and calls: detection runs on every processed frame, the embedder only for frames that
are evidence for an undecided track), the events produced and the worker's peak RSS (VmHWM).

`--soak DURATION` (e.g. 10m, 1h) loops the clip for that long instead and samples, every --interval seconds,
the worker's RSS, the outbox depth, frames/s and dropped frames; it writes them as JSON (--json OUT, default
soak.json) and as a PNG plot beside it (matplotlib: the `plot` extra), with the verdicts the issue asks for: RSS
growth per hour after warm-up (a least-squares slope over the samples after the first --warmup seconds), the
outbox depth's range, and the frames/s trend. With mosquitto on the PATH the worker starts one on a free port so
that events really leave the outbox; --mqtt URL uses another broker.
"""
from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("clip", metavar="CLIP", help="a video file, played as a camera at its own rate")
    parser.add_argument("--threads", type=int, default=2, help="TFLite threads per model (default 2)")
    parser.add_argument("--liveness", choices=("passive", "off"), default="passive",
                        help="the camera's liveness check (default passive)")
    parser.add_argument("--plays", type=int, default=1, help="play the clip N times (default 1)")
    parser.add_argument("--enrol", nargs="*", metavar="IMAGE",
                        help="photos to enrol, one person each, named after the file (default: Lin-Manuel "
                             "Miranda from the test data, when present)")
    parser.add_argument("--soak", metavar="DURATION", help="loop the clip this long (90s, 10m, 1h) and record RSS, "
                        "outbox depth, frames/s and dropped frames over time (JSON + PNG plot)")
    parser.add_argument("--interval", type=float, default=10.0, metavar="S", help="soak: seconds between samples")
    parser.add_argument("--warmup", type=float, default=120.0, metavar="S",
                        help="soak: seconds left out of the RSS slope (model loading, first allocations)")
    parser.add_argument("--mqtt", metavar="URL", help="soak: the broker (default: a mosquitto started for it)")
    parser.add_argument("--json", dest="json_out", nargs="?", const="-", metavar="OUT",
                        help="write the result as JSON (to OUT, or standard output)")


def run(args, config) -> int:
    from .measure import data_file, run_worker
    from .errors import FacedError

    clip = Path(args.clip)
    if not clip.is_file():
        raise FacedError(f"{clip} does not exist", "FILE_NOT_FOUND")
    photos = args.enrol
    if photos is None:
        default = data_file("faces/face_recognition/examples/lin-manuel-miranda.png")
        photos = [str(default)] if default.is_file() else []
    job = {"clip": str(clip.resolve()), "threads": args.threads, "liveness": args.liveness, "plays": args.plays,
           "photos": [str(Path(p).resolve()) for p in photos], "config_file": args.config}
    if args.soak:
        return _run_soak(args, job)
    print(f"bench camera: playing {clip.name} {args.plays}x with {args.threads} thread(s)", file=sys.stderr)
    report = run_worker("device.bench_camera", [json.dumps(job)], "camera benchmark")
    if args.json_out == "-":
        print(json.dumps(report, indent=2))
        return 0
    print_table(report)
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(report, indent=2) + "\n")
    return 0


def parse_duration(text: str) -> float:
    """90, 90s, 10m, 1h, 1.5h -> seconds."""
    from .errors import InvalidInput

    text = text.strip().lower()
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    try:
        value = float(text[:-1]) * units[text[-1]] if text[-1:] in units else float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise InvalidInput(f"--soak {text!r}: a duration like 600, 10m or 1h", "INVALID_ARGUMENT")
    return value


def _run_soak(args, job: dict) -> int:
    from .measure import run_worker

    job.update(soak_s=parse_duration(args.soak), interval_s=args.interval, warmup_s=args.warmup,
               mqtt=args.mqtt or "", liveness=args.liveness)
    out = Path(args.json_out if args.json_out and args.json_out != "-" else "soak.json")
    print(f"bench camera: soak of {job['soak_s']:.0f} s on {Path(job['clip']).name}, a sample every "
          f"{args.interval:g} s", file=sys.stderr)
    report = run_worker("device.bench_camera", [json.dumps(job)], "camera soak")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    report["plot"] = plot_soak(report, out.with_suffix(".png"))
    out.write_text(json.dumps(report, indent=2) + "\n")
    summary = report["summary"]
    print(f"soak {summary['seconds']:.0f} s: RSS {summary['rss_start_mb']:.0f} -> {summary['rss_end_mb']:.0f} MB, "
          f"{summary['rss_mb_per_hour']:+.2f} MB/hour after warm-up; outbox depth {summary['outbox_min']}-"
          f"{summary['outbox_max']} (last {summary['outbox_last']}); frames/s {summary['fps_first']:.1f} (first "
          f"quarter) -> {summary['fps_last']:.1f} (last quarter); dropped {summary['dropped']} of "
          f"{summary['frames']}; events {summary['events']}")
    print(f"written: {out}" + (f" and {report['plot']}" if report["plot"] else " (no plot: pip install "
                                                                               "'faced[plot]')"))
    return 0


def soak_summary(samples: list[dict], warmup_s: float) -> dict:
    import numpy as np

    t = np.array([s["t_s"] for s in samples])
    rss = np.array([s["rss_mb"] for s in samples])
    fps = np.array([s["fps"] for s in samples])
    depth = [s["outbox_depth"] for s in samples]
    steady = t >= min(warmup_s, t[-1] / 2)
    slope = float(np.polyfit(t[steady], rss[steady], 1)[0]) * 3600 if steady.sum() >= 2 else 0.0
    quarter = max(1, len(samples) // 4)
    return {"seconds": round(float(t[-1]), 1), "samples": len(samples), "rss_start_mb": round(float(rss[0]), 1),
            "rss_after_warmup_mb": round(float(rss[steady][0]), 1), "rss_end_mb": round(float(rss[-1]), 1),
            "rss_mb_per_hour": round(slope, 2), "outbox_min": min(depth), "outbox_max": max(depth),
            "outbox_last": depth[-1], "fps_first": round(float(fps[:quarter].mean()), 2),
            "fps_last": round(float(fps[-quarter:].mean()), 2), "dropped": samples[-1]["dropped"],
            "frames": samples[-1]["frames"], "events": samples[-1]["events"]}


def plot_soak(report: dict, path: Path) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    samples = report["samples"]
    minutes = [s["t_s"] / 60 for s in samples]
    figure, axes = plt.subplots(4, 1, figsize=(8, 9), sharex=True)
    series = (("rss_mb", "RSS (MB)"), ("outbox_depth", "outbox depth"), ("fps", "frames/s processed"),
              ("dropped", "dropped frames (total)"))
    for axis, (key, label) in zip(axes, series):
        axis.plot(minutes, [s[key] for s in samples], lw=1.2)
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    summary = report["summary"]
    axes[0].set_title(f"faced soak: {Path(report['clip']).name} looped {summary['seconds'] / 60:.0f} min, RSS "
                      f"{summary['rss_mb_per_hour']:+.1f} MB/h after warm-up")
    axes[-1].set_xlabel("minutes")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return str(path)


def print_table(report: dict) -> None:
    print(f"clip {Path(report['clip']).name}: {report['width']}x{report['height']} at {report['source_fps']:.2f} "
          f"frames/s, {report['threads']} thread(s), liveness {report['liveness']}")
    print(f"  frames/s processed  {report['fps_processed']:.1f}  ({report['processed']} of {report['frames']} "
          f"frames; {report['dropped']} dropped)")
    print(f"  events              {report['events']}  ({', '.join(f'{k} {v}' for k, v in report['event_types'].items())})")
    print(f"  peak RSS            {report['peak_rss_mb']:.0f} MB (daemon with API and one camera)")
    print(f"  {'stage':<10} {'calls':>6} {'mean ms':>9} {'max ms':>9}  ms per frame")
    for name, row in report["stages"].items():
        if row["calls"]:
            per_frame = row["mean_ms"] * row["calls"] / max(report["processed"], 1)
            print(f"  {name:<10} {row['calls']:>6} {row['mean_ms']:>9.2f} {row['max_ms']:>9.2f}  {per_frame:8.2f}")


def _worker(job: dict) -> dict:
    """Runs in its own process: a temporary database, the real Service (API on a free port, one camera)."""
    import cv2

    from .measure import peak_rss_mb
    from .vision import runtime

    runtime.QUIET = True
    capture = cv2.VideoCapture(job["clip"])
    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    capture.release()
    with tempfile.TemporaryDirectory(prefix="faced-bench-camera-") as folder:
        with _daemon(job, folder, "bench", "", job["plays"] > 1) as (engine, service, camera):
            started = time.monotonic()
            while True:
                time.sleep(0.2)
                plays = getattr(camera.source, "plays", 0)
                if camera.state in ("ended", "failed") or plays >= job["plays"]:
                    break
            elapsed = time.monotonic() - started
            status = camera.status()
            service.stop()
            events = service.outbox.history(limit=1000)
            time.sleep(0.5)
        types: dict[str, int] = {}
        for event in events:
            types[event["type"]] = types.get(event["type"], 0) + 1
        return {"clip": job["clip"], "width": width, "height": height, "threads": job["threads"],
                "liveness": job["liveness"], "source_fps": status["source_fps"], "frames": status["frames"],
                "processed": status["processed"], "dropped": status["dropped"], "seconds": round(elapsed, 2),
                "fps_processed": round(status["processed"] / elapsed, 2) if elapsed else 0.0,
                "stages": camera.times.summary(), "events": len(events), "event_types": types,
                "peak_rss_mb": round(peak_rss_mb(), 1)}


@contextlib.contextmanager
def _daemon(job: dict, folder: str, name: str, mqtt_url: str, loop: bool):
    """The real Service on a temporary database (the job's photos enrolled) with the clip as camera `name`:
    yields (engine, service, camera)."""
    from .config import add_camera_flag, load_config
    from .engine import Engine
    from .service import Service

    overrides = {"store.db": str(Path(folder) / f"{name}.db"), "vision.threads": job["threads"],
                 "api.host": "127.0.0.1", "api.port": 0, "mqtt.url": mqtt_url, "events.device_id": name}
    config = load_config(job.get("config_file"), env={}, overrides=overrides)
    config.cameras.clear()
    camera_config = add_camera_flag(config, f"{name}={job['clip']}")
    camera_config.liveness = job["liveness"]
    camera_config.loop = loop
    with Engine(config, create=True) as engine:
        engine.create_collection(name)
        for photo in job["photos"]:
            engine.add_person(name, Path(photo).stem.replace("-", " ").title(), [engine.photo_file(photo)])
        service = Service(engine)
        service.start()
        yield engine, service, service.cameras[name]


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _soak_worker(job: dict) -> dict:
    """Runs in its own process: the real Service with the clip looping as a camera, a broker, samples."""
    import shutil
    import socket
    import subprocess

    from .vision import runtime

    runtime.QUIET = True
    with tempfile.TemporaryDirectory(prefix="faced-soak-") as folder:
        broker = None
        url = job["mqtt"]
        if not url and shutil.which("mosquitto"):
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            conf = Path(folder) / "mosquitto.conf"
            conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
            broker = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
            url = f"mqtt://127.0.0.1:{port}"
            time.sleep(0.5)
        samples = []
        try:
            with _daemon(job, folder, "soak", url, True) as (engine, service, camera):
                started = time.monotonic()
                while True:
                    elapsed = time.monotonic() - started
                    status = camera.status()
                    seq = engine.store.connection.execute(
                        "SELECT value FROM event_counters WHERE name = 'seq'").fetchone()[0]
                    samples.append({"t_s": round(elapsed, 1), "rss_mb": round(_rss_mb(), 1),
                                    "outbox_depth": service.outbox.depth(), "fps": status["fps"],
                                    "dropped": status["dropped"], "frames": status["frames"],
                                    "processed": status["processed"], "events": seq,
                                    "plays": getattr(camera.source, "plays", None),
                                    "broker_connected": bool(service.publisher and service.publisher.connected)})
                    if elapsed >= job["soak_s"] or camera.state in ("failed",):
                        break
                    time.sleep(min(job["interval_s"], max(0.1, job["soak_s"] - elapsed)))
                service.stop()
                time.sleep(1.0)
        finally:
            if broker is not None:
                broker.terminate()
                broker.wait(10)
    return {"clip": job["clip"], "threads": job["threads"], "liveness": job["liveness"],
            "broker": "mosquitto (started by the soak)" if broker is not None else (job["mqtt"] or "none"),
            "soak_s": job["soak_s"], "interval_s": job["interval_s"], "warmup_s": job["warmup_s"],
            "samples": samples, "summary": soak_summary(samples, job["warmup_s"])}


if __name__ == "__main__":
    arguments = json.loads(sys.argv[1])
    print(json.dumps(_soak_worker(arguments) if arguments.get("soak_s") else _worker(arguments)))
