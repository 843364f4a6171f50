"""`faced bench camera CLIP`: the daemon as it runs, measured. The clip plays as a camera at its own frame rate
(a file source, as `faced run --camera` would), in a worker process that runs the real daemon: the HTTP API,
the camera loop with recognition and (by default) passive liveness, the outbox, against a temporary database
holding the persons enrolled with --enrol (by default Lin-Manuel Miranda from the test data when present).

Reports frames/s processed next to the clip's own rate, frames dropped (newest-frame-wins), time per stage
(mean and max per call, and calls: detection runs on every processed frame, the embedder only for frames that
are evidence for an undecided track), the events produced and the worker's peak RSS (VmHWM).
"""
from __future__ import annotations

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
    from .config import add_camera_flag, load_config
    from .engine import Engine
    from .service import Service
    from .vision import runtime

    runtime.QUIET = True
    capture = cv2.VideoCapture(job["clip"])
    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    capture.release()
    with tempfile.TemporaryDirectory(prefix="faced-bench-camera-") as folder:
        overrides = {"store.db": str(Path(folder) / "bench.db"), "vision.threads": job["threads"],
                     "api.host": "127.0.0.1", "api.port": 0, "mqtt.url": ""}
        config = load_config(job.get("config_file"), env={}, overrides=overrides)
        config.cameras.clear()
        camera_config = add_camera_flag(config, f"bench={job['clip']}")
        camera_config.liveness = job["liveness"]
        camera_config.loop = job["plays"] > 1
        with Engine(config, create=True) as engine:
            engine.create_collection("bench")
            for photo in job["photos"]:
                engine.add_person("bench", Path(photo).stem.replace("-", " ").title(), [engine.photo_file(photo)])
            service = Service(engine)
            service.start()
            camera = service.cameras["bench"]
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


if __name__ == "__main__":
    print(json.dumps(_worker(json.loads(sys.argv[1]))))
