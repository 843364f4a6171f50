"""`faced` command line: a thin layer over the library (config, imaging, vision pipeline).

Global options come before the command. Every command that prints results has --json. Exit status: 0 on
success, 1 on a handled error (one line on standard error), 2 on bad usage.
"""
from __future__ import annotations

import argparse
import base64
import json
import logging
import platform
import sys
from pathlib import Path

from . import __version__
from .config import Config, add_camera_flag, configured_precisions, load_config
from .engine import Engine, check_search_options
from .errors import FacedError, InvalidInput, StoreError
from .imaging import encode_thumbnail
from .validation import clean_name, parse_metadata
from .vision import runtime

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="faced", description="On-device face recognition appliance.")
    parser.add_argument("--config", metavar="FILE", help="TOML config file (default: $FACED_CONFIG)")
    parser.add_argument("--db", metavar="PATH", help="SQLite database file (default: $FACED_DB or config)")
    parser.add_argument("--log-level", default="WARNING", type=str.upper, choices=LOG_LEVELS, metavar="LEVEL",
                        help=f"log detail, any case: {', '.join(LOG_LEVELS).lower()} (default warning)")
    parser.add_argument("--version", action="version", version=f"faced {__version__}",
                        help="print faced's version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    run = commands.add_parser("run", help="run the daemon (HTTP API on 127.0.0.1:8080 by default)")
    run.add_argument("--host", help="API address (default 127.0.0.1; $FACED_API_HOST)")
    run.add_argument("--port", type=int, help="API port, 0-65535 (default 8080; $FACED_API_PORT)")
    run.add_argument("--camera", action="append", default=[], metavar="NAME=SOURCE",
                     help="add a camera with the defaults (SOURCE: picamera2, /dev/video0, rtsp://..., a video "
                          "file); repeatable")
    run.set_defaults(handler=cmd_run, creates=True)

    events = commands.add_parser("events", help="print the daemon's events from the MQTT broker as they arrive")
    events.add_argument("--json", action="store_true", help="one event JSON object per line")
    events.add_argument("--device", metavar="ID", help="device id to follow (default events.device_id or the "
                                                         "host name; '+' for every device)")
    events.add_argument("--count", type=int, metavar="N", help="exit after N events")
    events.set_defaults(handler=cmd_events)

    detect = commands.add_parser("detect", help="find faces: boxes, landmarks, scores")
    detect.add_argument("images", nargs="+", metavar="IMAGE", help="image files (JPEG, PNG, WebP, ...)")
    detect.add_argument("--json", action="store_true", help="one JSON object per line per image")
    detect.add_argument("--draw", metavar="OUT.png", help="write the image with boxes and landmarks drawn")
    detect.add_argument("--pose", action="store_true", help="add head pose (yaw, pitch, roll) and eyes_open")
    detect.add_argument("--no-attributes", dest="attributes", action="store_false",
                        help="skip age and gender (faster)")
    detect.add_argument("--liveness", action="store_true", help="add passive liveness to each face")
    detect.set_defaults(handler=cmd_detect)

    liveness = commands.add_parser("liveness", help="passive liveness of each face (live photo or spoof)")
    liveness.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    liveness.add_argument("--json", action="store_true", help="one JSON object per line per image")
    liveness.set_defaults(handler=cmd_liveness)

    compare = commands.add_parser("compare", help="compare the main faces of two images (1:1)")
    compare.add_argument("image_a", metavar="A", help="first image (its largest face)")
    compare.add_argument("image_b", metavar="B", help="second image (its largest face)")
    compare.add_argument("--json", action="store_true", help="print a JSON object")
    compare.set_defaults(handler=cmd_compare)

    models = commands.add_parser("models", help="shipped model variants: list, verify")
    models_commands = models.add_subparsers(dest="models_command", metavar="ACTION")
    models_commands.required = True
    for action, helptext, handler in (
        ("list", "each variant's precision, fidelity and whether it is selected", cmd_models_list),
        ("verify", "check every shipped file's sha256 and load it", cmd_models_verify),
        ("tune", "time every passing precision here and keep the fastest (tuned.toml next to the database)",
         cmd_models_tune),
    ):
        sub = models_commands.add_parser(action, help=helptext)
        sub.add_argument("--json", action="store_true", help="print JSON")
        if action == "tune":
            sub.add_argument("--rounds", type=int, default=5, metavar="N",
                             help="alternating timing rounds per model, 1-100 (default 5)")
        sub.set_defaults(handler=handler)

    doctor = commands.add_parser("doctor", help="check runtime, SQLite loader and models")
    doctor.add_argument("--json", action="store_true", help="print a JSON object")
    doctor.set_defaults(handler=cmd_doctor)

    _add_store_commands(commands)

    bench = commands.add_parser("bench", help="measure per-stage latency, frames/s and memory")
    from .bench import add_arguments as add_bench_arguments

    add_bench_arguments(bench)
    bench.set_defaults(handler=cmd_bench)
    return parser


def _add_store_commands(commands) -> None:
    def command(parent, name, helptext, handler, *arguments, creates=False):
        """A sub-command; `creates`: it creates data, so it may create the database file."""
        sub = parent.add_parser(name, help=helptext)
        for args, kwargs in arguments:
            sub.add_argument(*args, **kwargs)
        sub.add_argument("--json", action="store_true", help="print JSON")
        sub.set_defaults(handler=handler, creates=creates)
        return sub

    collection = (("--collection",), {"required": True, "metavar": "NAME", "help": "the collection's name"})
    force = (("--force",), {"action": "store_true",
                            "help": "accept photos that duplicate another person or do not match this one"})
    images = (("images",), {"nargs": "+", "metavar": "IMAGE", "help": "photos of the person, one face each"})
    person_id = (("person_id",), {"metavar": "ID", "help": "the person's id (from persons list)"})

    collections = commands.add_parser("collections", help="face collections: create, list, delete")
    sub = collections.add_subparsers(dest="action", metavar="ACTION", required=True)
    name = (("name",), {"metavar": "NAME", "help": "the collection's name"})
    command(sub, "create", "create a collection", cmd_collections_create, name, creates=True)
    command(sub, "list", "list collections", cmd_collections_list)
    command(sub, "delete", "erase a collection and everything in it", cmd_collections_delete, name)

    persons = commands.add_parser("persons", help="persons of a collection: add, add-faces, list, show, delete")
    sub = persons.add_subparsers(dest="action", metavar="ACTION", required=True)
    command(sub, "add", "enrol a person from one or more photos", cmd_persons_add, collection,
            (("--name",), {"required": True, "metavar": "PERSON", "help": "the person's name"}),
            (("--metadata",), {"metavar": "JSON", "help": "a JSON object stored with the person (<= 16 KiB)"}),
            force, images, creates=True)
    command(sub, "add-faces", "add photos to an enrolled person", cmd_persons_add_faces, person_id, force, images)
    command(sub, "list", "persons of a collection", cmd_persons_list, collection)
    command(sub, "show", "one person", cmd_persons_show, person_id)
    command(sub, "delete", "erase a person, its faces, vectors and thumbnails", cmd_persons_delete, person_id)

    visitors = commands.add_parser("visitors", help="recurring unknown visitors: list, promote, forget")
    sub = visitors.add_subparsers(dest="action", metavar="ACTION", required=True)
    visitor_id = (("visitor_id",), {"metavar": "ID", "help": "the visitor's id (from visitors list)"})
    command(sub, "list", "unknown visitors the cameras remember, most recent first", cmd_visitors_list,
            (("--collection",), {"metavar": "NAME", "help": "only this collection's visitors"}))
    command(sub, "promote", "make a named person from a visitor's stored faces", cmd_visitors_promote,
            visitor_id, (("--name",), {"required": True, "metavar": "PERSON", "help": "the person's name"}),
            (("--collection",), {"metavar": "NAME", "help": "default: the visitor's collection"}), force)
    command(sub, "forget", "erase a visitor, its faces and its events", cmd_visitors_forget, visitor_id)

    keys = commands.add_parser("keys", help="API keys: create (shown once), list, revoke")
    sub = keys.add_subparsers(dest="action", metavar="ACTION", required=True)
    command(sub, "create", "create an API key; the key is printed once, alone on the last line", cmd_keys_create,
            (("--name",), {"required": True, "metavar": "NAME", "help": "the key's name (who or what uses it)"}),
            creates=True)
    command(sub, "list", "key names, creation and last use (never the keys)", cmd_keys_list)
    command(sub, "revoke", "delete a key: requests with it are refused from now on", cmd_keys_revoke,
            (("name",), {"metavar": "NAME", "help": "the key's name"}))

    command(commands, "enroll", "enrol a folder: one person per subfolder, named as the folder", cmd_enroll,
            (("folder",), {"metavar": "DIR", "help": "a folder with one subfolder of photos per person"}),
            collection, force, creates=True)
    command(commands, "search", "find the enrolled persons in an image (every face)", cmd_search,
            (("image",), {"metavar": "IMAGE", "help": "the image to search"}), collection,
            (("--min-score",), {"type": float, "metavar": "F",
                                "help": "calibrated score 0-1 (default recognition.min_similarity_score)"}),
            (("--max-results",), {"type": int, "default": 1, "metavar": "N",
                                  "help": "persons per face, 1-100 (default 1)"}))
    command(commands, "reembed", "recompute a collection's vectors with the current embedder", cmd_reembed,
            collection)
    command(commands, "export", "write a collection to one portable file", cmd_export, collection,
            (("file",), {"metavar": "FILE", "help": "the export file to write (must not exist)"}))
    command(commands, "import", "add the collection of an exported file", cmd_import,
            (("file",), {"metavar": "FILE", "help": "an export made by `faced export` (never changed)"}),
            (("--as",), {"dest": "name", "metavar": "NAME",
                         "help": "import as a new collection of this name, with new person ids"}),
            (("--reembed",), {"action": "store_true", "help": "recompute vectors made by another embedder"}),
            creates=True)
    command(commands, "backup", "consistent copy of the whole database while it is in use", cmd_backup,
            (("file",), {"metavar": "FILE", "help": "the copy to write (must not exist; its folder must)"}))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    verbose = args.log_level == "DEBUG"
    # TFLite's banner and progress bars are for a person at a terminal (or for debugging), not for scripts.
    runtime.QUIET = not verbose
    args.progress = verbose or (sys.stderr.isatty() and not getattr(args, "json", False))
    try:
        overrides = {"store.db": args.db} if args.db else {}
        if args.command == "run":  # flags last: they pass the same range checks as the file and environment
            overrides.update({k: v for k, v in (("api.host", args.host), ("api.port", args.port)) if v is not None})
        config = load_config(args.config, overrides=overrides)
        for flag in getattr(args, "camera", None) or []:
            add_camera_flag(config, flag)
        with Engine(config, create=getattr(args, "creates", False)) as engine:
            return args.handler(args, engine) or EXIT_OK
    except FacedError as exc:
        return _fail(args, exc)
    except KeyboardInterrupt:
        return EXIT_ERROR
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # a bug in faced: still one line (and a JSON object), the cause in the log
        logging.getLogger("faced").debug("unexpected error", exc_info=True)
        return _fail(args, FacedError(f"{type(exc).__name__}: {exc} (a bug in faced; --log-level debug shows "
                                      "where)", "INTERNAL_ERROR"))


def _fail(args, exc: FacedError) -> int:
    """One line on standard error; with --json also `{"error": {"code", "message"}}` on standard output."""
    message = " ".join(exc.message.split())
    if getattr(args, "json", False):
        _print_json({"error": {"code": exc.code, "message": message}})
    print(f"faced: {exc.code}: {message}", file=sys.stderr)
    return EXIT_ERROR


def _print_json(value) -> None:
    print(json.dumps(value, ensure_ascii=False, allow_nan=False), flush=True)


def _report(args, value: dict | list, text: str) -> None:
    if args.json:
        _print_json(value)
    else:
        print(text)


# ----------------------------------------------------------------------------------------------- run
def cmd_run(args, engine: Engine) -> int:
    from .service import Service

    logging.getLogger("faced.events").setLevel(logging.INFO)  # one line per event, quiet otherwise
    Service(engine).run()
    return EXIT_OK


def cmd_events(args, engine: Engine) -> int:
    from .events.follow import follow

    def show(event: dict) -> None:
        if args.json:
            _print_json(event)
            return
        who = event.get("person_name") or "-"
        score = "" if event.get("score") is None else f"  score {event['score']:.2f}"
        print(f"{event.get('ts')}  {event.get('camera')}  {event.get('type'):<10} {who}  track "
              f"{event.get('track_id')}  seq {event.get('seq')}{score}", flush=True)

    return follow(engine.config, show, device=args.device, count=args.count)


# -------------------------------------------------------------------------------------------- detect
def _each_image(args, engine: Engine, analyse, show) -> int:
    """Decode each image, run `analyse(image) -> faces`, then `show(index, path, image, faces)`.

    An image that fails gives its own error (a JSON line with --json) and the others go on; the exit status
    is 1 if any failed.
    """
    failed = 0
    for index, path in enumerate(args.images):
        try:
            image = engine.read_image(path)
            faces = analyse(image)
        except FacedError as exc:
            failed += 1
            if args.json:
                _print_json({"image": path, "error": exc.to_dict()})
            print(f"faced: {path}: {exc.code}: {exc.message}", file=sys.stderr)
            continue
        show(index, path, image, faces)
    return EXIT_ERROR if failed else EXIT_OK


def cmd_detect(args, engine: Engine) -> int:
    if args.draw:
        _check_draw_target(args.draw)

    def analyse(image):
        return engine.detect(image, attributes=args.attributes, liveness=args.liveness)

    def show(index, path, image, faces):
        if args.json:
            _print_json({"image": path, "faces": [face_json(face, pose=args.pose) for face in faces]})
        else:
            _print_faces_table(path, faces, args.pose)
        if args.draw:
            _draw(image, faces, _draw_path(args.draw, index, len(args.images)))

    return _each_image(args, engine, analyse, show)


def cmd_liveness(args, engine: Engine) -> int:
    def show(index, path, image, faces):
        if args.json:
            rows = [{"box": _rounded(face.box), "liveness": face.liveness} for face in faces]
            _print_json({"image": path, "faces": rows})
            return
        print(f"{path}: {len(faces)} face{'s' if len(faces) != 1 else ''}")
        for number, face in enumerate(faces, 1):
            result = face.liveness
            score = "-" if result["score"] is None else f"{result['score']:.3f}"
            verdict = "live" if result["live"] else "NOT live"
            print(f"  {number:>2}  box {' '.join(f'{v:.0f}' for v in face.box)}  {verdict:<8} score {score}  "
                  f"{' '.join(result['codes'])}")

    return _each_image(args, engine, engine.liveness, show)


# ------------------------------------------------------------------- the CLI's JSON (README "Stable JSON")
def _rounded(values, decimals: int = 2) -> list[float]:
    return [round(float(v), decimals) for v in values]


def face_json(face, pose: bool = False) -> dict:
    """`faced detect --json`'s face: box, score, landmarks, then what later stages added (quality, age,
    gender, liveness; pose and eyes_open with --pose)."""
    result = {"box": _rounded(face.box), "score": round(float(face.score), 4),
              "landmarks": [_rounded(point) for point in face.landmarks]}
    if face.quality is not None:
        result["quality"] = {"score": face.quality.score, "codes": list(face.quality.codes)}
    if face.age is not None:
        result["age"] = int(round(face.age))
    if face.gender is not None:
        result["gender"] = face.gender
    if face.liveness is not None:
        result["liveness"] = face.liveness
    if pose and face.mesh is not None:
        result["pose"] = face.mesh.pose()
        result["eyes_open"] = round(face.mesh.eye_openness(), 3)
    return result


def comparison_json(comparison) -> dict:
    return {"score": round(comparison.score, 4), "cosine": round(comparison.cosine, 4), "same": comparison.same,
            "threshold": comparison.threshold}


def _print_faces_table(path: str, faces, pose: bool = False) -> None:
    print(f"{path}: {len(faces)} face{'s' if len(faces) != 1 else ''}")
    if faces:
        print(f"  {'#':>2}  {'x':>7} {'y':>7} {'w':>7} {'h':>7}  {'score':>5}  {'qual':>4}  {'age':>3} {'gender':<6}  "
              "codes / landmarks (x,y)")
    for number, face in enumerate(faces, 1):
        x, y, w, h = face.box
        quality = face.quality.score if face.quality else ""
        age = f"{face.age:.0f}" if face.age is not None else ""
        codes = ",".join(face.quality.codes) if face.quality and face.quality.codes else ""
        marks = " ".join(f"{mx:.0f},{my:.0f}" for mx, my in face.landmarks)
        print(f"  {number:>2}  {x:7.1f} {y:7.1f} {w:7.1f} {h:7.1f}  {face.score:5.3f}  {quality:>4}  {age:>3} "
              f"{face.gender or '':<6}  {codes + ' ' if codes else ''}{marks}")
        if pose and face.mesh is not None:
            angles = face.mesh.pose()
            print(f"      pose yaw {angles['yaw']:+.1f} pitch {angles['pitch']:+.1f} roll {angles['roll']:+.1f}, "
                  f"eyes open {face.mesh.eye_openness():.2f}")


def _check_draw_target(target: str) -> None:
    """Refuse a --draw path that cannot be written before any work is done."""
    path = Path(target)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise InvalidInput(f"--draw {target}: name a .png or .jpg file", "OUTPUT_ERROR")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InvalidInput(f"--draw {target}: the folder {folder} does not exist", "OUTPUT_ERROR")
    if path.is_dir():
        raise InvalidInput(f"--draw {target} is a folder; name a .png or .jpg file", "OUTPUT_ERROR")


def _draw_path(target: str, index: int, count: int) -> Path:
    path = Path(target)
    return path if count == 1 else path.with_name(f"{path.stem}_{index + 1}{path.suffix}")


def _draw(image, faces, path: Path) -> None:
    import cv2

    canvas = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    thickness = max(1, round(max(canvas.shape[:2]) / 500))
    colours = [(0, 0, 255), (0, 255, 255), (255, 0, 255), (0, 255, 0), (255, 128, 0)]
    for face in faces:
        x, y, w, h = (int(round(v)) for v in face.box)
        cv2.rectangle(canvas, (x, y), (x + w, y + h), (0, 200, 0), thickness)
        cv2.putText(canvas, f"{face.score:.2f}", (x, max(0, y - 4)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4 * thickness, (0, 200, 0), thickness)
        for (mx, my), colour in zip(face.landmarks, colours):
            cv2.circle(canvas, (int(round(mx)), int(round(my))), thickness + 1, colour, -1)
    try:
        written = cv2.imwrite(str(path), canvas)
    except cv2.error:
        written = False
    if not written:
        raise FacedError(f"cannot write {path}", "OUTPUT_ERROR")


# ------------------------------------------------------------------------------------------- compare
def cmd_compare(args, engine: Engine) -> int:
    faces = []
    for path in (args.image_a, args.image_b):
        try:
            faces.append(engine.main_face(engine.read_image(path)))
        except FacedError as exc:
            raise type(exc)(f"{path}: {exc.message}", exc.code) from None
    result = engine.compare_faces(*faces)
    if args.json:
        _print_json(comparison_json(result))
    else:
        verdict = "same person" if result.same else "different people"
        print(f"{verdict}: score {result.score:.3f} (threshold {result.threshold}), cosine {result.cosine:.4f}")
    return EXIT_OK


# -------------------------------------------------------------------------------------------- models
def _variant_rows(config: Config) -> list[dict]:
    from .vision.manifest import Manifest

    manifest = Manifest(config.vision.models_dir or None)
    configured = configured_precisions(config)
    rows = []
    for name in manifest.models():
        chosen = configured.get(name) or manifest.default_precision(name)
        for variant in manifest.variants(name):
            rows.append({
                "model": name,
                "precision": variant.precision,
                "shipped": variant.shipped,
                "passes": variant.passes,
                "selected": variant.precision == chosen,
                "file": variant.path.name if variant.shipped else None,
                "bytes": variant.info.get("bytes"),
                "fidelity": variant.fidelity,
                "_variant": variant,
            })
    return rows


def _fidelity_text(fidelity: dict) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fidelity.items())


def cmd_models_list(args, engine: Engine) -> int:
    rows = _variant_rows(engine.config)
    if args.json:
        _print_json([{k: v for k, v in row.items() if not k.startswith("_")} for row in rows])
        return EXIT_OK
    print(f"{'model':<16} {'precision':<9} {'state':<12} {'size':>8}  fidelity")
    for row in rows:
        state = ("selected" if row["selected"] else "shipped") if row["shipped"] else "not shipped"
        if not row["passes"]:
            state = "fails bar"
        size = f"{row['bytes'] / 1e6:.1f}MB" if row["bytes"] else "-"
        print(f"{row['model']:<16} {row['precision']:<9} {state:<12} {size:>8}  {_fidelity_text(row['fidelity'])}")
    return EXIT_OK


def cmd_models_tune(args, engine: Engine) -> int:
    from .tune import tune

    if not 1 <= args.rounds <= 100:
        raise InvalidInput(f"--rounds must be from 1 to 100, got {args.rounds}", "INVALID_ARGUMENT")
    result = tune(engine.config, args.rounds)
    lines = [f"{model:<16} {precision:<8} ({', '.join(f'{p} {ms:.2f} ms' for p, ms in result['timings_ms'][model].items())})"
             for model, precision in result["chosen"].items()]
    _report(args, result, "\n".join(lines) + f"\nwritten to {result['file']} (collections made with another "
                                             "embedder precision need `faced reembed`)")
    return EXIT_OK


def cmd_models_verify(args, engine: Engine) -> int:
    from .vision.manifest import verify_file
    from .vision.runtime import TFLiteModel

    results, failed = [], 0
    for row in _variant_rows(engine.config):
        if not row["shipped"]:
            continue
        variant = row["_variant"]
        try:
            verify_file(variant)
            TFLiteModel(variant, threads=1)
            status = "ok"
        except FacedError as exc:
            failed += 1
            status = exc.message
        results.append({"model": row["model"], "precision": row["precision"], "file": row["file"],
                        "ok": status == "ok", "message": status})
    if args.json:
        _print_json(results)
    else:
        for item in results:
            print(f"{item['model']:<16} {item['precision']:<9} {item['file']:<36} {item['message']}")
    if failed:
        print(f"faced: MODEL_ERROR: {failed} model file(s) failed verification", file=sys.stderr)
    return EXIT_ERROR if failed else EXIT_OK


# -------------------------------------------------------------------------------------------- doctor
def cmd_doctor(args, engine: Engine) -> int:
    checks: list[dict] = []
    config = engine.config

    def check(name: str, fn) -> None:
        try:
            checks.append({"check": name, "ok": True, "detail": fn()})
        except FacedError as exc:  # doctor reports every failure instead of stopping at the first
            checks.append({"check": name, "ok": False, "detail": f"{exc.code}: {exc.message}"})
        except (OSError, RuntimeError, ImportError) as exc:
            checks.append({"check": name, "ok": False, "detail": f"{type(exc).__name__}: {exc}"})

    check("python", lambda: f"{platform.python_version()} on {platform.machine()} ({platform.system()})")
    check("tflite runtime", _doctor_runtime)
    check("sqlite", _doctor_sqlite)
    check("models", lambda: _doctor_models(config))
    check("database", lambda: _doctor_database(engine))
    check("config", lambda: f"db {config.db_path}, API {config.api.host}:{config.api.port}, "
                            f"MQTT {'configured' if config.mqtt.url else 'not configured'}")
    check("tuning", lambda: _doctor_tuning(config))
    ok = all(item["ok"] for item in checks)
    if args.json:
        _print_json({"ok": ok, "checks": checks})
    else:
        for item in checks:
            print(f"{'ok  ' if item['ok'] else 'FAIL'} {item['check']:<15} {item['detail']}")
    if not ok:
        failed = ", ".join(item["check"] for item in checks if not item["ok"])
        print(f"faced: DOCTOR: failed checks: {failed}", file=sys.stderr)
    return EXIT_OK if ok else EXIT_ERROR


def _doctor_runtime() -> str:
    from .vision.runtime import RUNTIME_NAME, runtime_version

    if RUNTIME_NAME == "none":
        raise RuntimeError("no TFLite runtime installed (pip install ai-edge-litert)")
    return f"{RUNTIME_NAME} {runtime_version()} (XNNPACK)"


def _doctor_sqlite() -> str:
    from .store.sqlite import describe

    info = describe()
    return f"{info['loader']}, SQLite {info['sqlite']}, sqlite-vec {info['sqlite_vec']}"


def _doctor_database(engine: Engine) -> str:
    from .store.schema import SCHEMA_VERSION

    summary = engine.database_summary()
    if not summary["exists"]:
        return f"{summary['path']} does not exist yet (created when data is first added)"
    integrity = engine.store.integrity()
    if integrity != "ok":
        raise StoreError(f"{summary['path']}: integrity check says {integrity}", "DB_CORRUPT")
    mode = ", read-only" if summary["read_only"] else ""
    return (f"{summary['path']}: schema {SCHEMA_VERSION}, {summary['collections']} collections, "
            f"{summary['faces']} faces, integrity ok{mode}")


def _doctor_tuning(config: Config) -> str:
    from .config import TUNED_NAME

    path = config.db_path.parent / TUNED_NAME
    if not path.is_file():
        return "not tuned: the manifest's default precisions (`faced models tune` measures this machine)"
    return f"{path} loaded (under the config file, the environment and flags)"


def _doctor_models(config: Config) -> str:
    from .vision.manifest import verify_file

    rows = [row for row in _variant_rows(config) if row["shipped"]]
    for row in rows:
        verify_file(row["_variant"])
    selected = ", ".join(f"{row['model']} {row['precision']}" for row in rows if row["selected"])
    return f"{len(rows)} files verified (sha256); in use: {selected}"


# --------------------------------------------------------------------------------------------- store
def cmd_collections_create(args, engine: Engine) -> int:
    collection = engine.create_collection(args.name)
    _report(args, collection.to_dict(), f"created collection {collection.name!r}")
    return EXIT_OK


def cmd_collections_list(args, engine: Engine) -> int:
    rows = [c.to_dict() for c in engine.collections()]
    _report(args, rows, "\n".join(f"{r['collection_name']:<30} {r['persons']:>7} persons {r['faces']:>8} faces  "
                                  f"{r['embedder']['model']} {r['embedder']['precision']}" for r in rows)
            or "no collections")
    return EXIT_OK


def cmd_collections_delete(args, engine: Engine) -> int:
    erased = engine.delete_collection(args.name)
    _report(args, {"erased": erased}, f"erased collection {erased['collection_name']!r}: {erased['persons']} "
                                      f"persons, {erased['faces']} faces with their vectors and thumbnails")
    return EXIT_OK


def _outcome_lines(outcomes) -> str:
    return "\n".join(f"  {'accepted' if o.accepted else 'REJECTED'} {o.source}"
                     f"{'' if o.accepted else f': {o.code}: {o.message}'}" for o in outcomes)


def _enrolment_hint(exc: FacedError, collection: str) -> FacedError:
    if exc.code == "COLLECTION_NOT_FOUND":
        return type(exc)(f"collection {collection!r} does not exist: create it first with `faced collections "
                         f"create {collection}`", exc.code)
    return exc


def cmd_persons_add(args, engine: Engine) -> int:
    metadata = parse_metadata(args.metadata) if args.metadata is not None else {}
    name = clean_name(args.name, "person name")
    try:
        engine.collection(args.collection)
    except FacedError as exc:
        raise _enrolment_hint(exc, args.collection) from None
    photos = [engine.photo_file(path) for path in args.images]
    return _report_enrolment(args, engine.add_person(args.collection, name, photos, metadata, args.force))


def _report_enrolment(args, enrolment) -> int:
    """A new person (persons add, visitors promote): its id and each photo's outcome."""
    result = {"person_id": enrolment.person_id, "person_name": enrolment.person_name,
              "faces": [o.to_dict() for o in enrolment.outcomes]}
    _report(args, result, (f"enrolled {enrolment.person_name!r} as {enrolment.person_id}" if enrolment.person_id
                           else f"{enrolment.person_name!r} was not enrolled: no photo was accepted") + "\n"
            + _outcome_lines(enrolment.outcomes))
    if not enrolment.person_id:
        print("faced: NOT_ENROLLED: no photo was accepted (reasons above)", file=sys.stderr)
    return EXIT_OK if enrolment.person_id else EXIT_ERROR


def cmd_persons_add_faces(args, engine: Engine) -> int:
    person = engine.person(args.person_id)
    outcomes = engine.add_faces(person.id, [engine.photo_file(p) for p in args.images], args.force)
    _report(args, {"person_id": person.id, "faces": [o.to_dict() for o in outcomes]},
            f"person {person.id}:\n" + _outcome_lines(outcomes))
    if not any(o.accepted for o in outcomes):
        print("faced: NOT_ENROLLED: no photo was accepted (reasons above)", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def cmd_persons_list(args, engine: Engine) -> int:
    rows = [p.to_dict() for p in engine.persons(args.collection)]
    _report(args, rows, "\n".join(f"{r['person_id']}  {len(r['face_ids']):>3} faces  {r['person_name']}"
                                  for r in rows) or "no persons")
    return EXIT_OK


def cmd_persons_show(args, engine: Engine) -> int:
    person = engine.person(args.person_id).to_dict()
    _report(args, person, "\n".join(f"{k}: {v}" for k, v in person.items()))
    return EXIT_OK


def cmd_persons_delete(args, engine: Engine) -> int:
    erased = engine.delete_person(args.person_id)
    _report(args, {"erased": erased}, f"erased {erased['person_name']!r} ({erased['person_id']}): "
                                      f"{erased['faces']} faces with their vectors and thumbnails")
    return EXIT_OK


def cmd_visitors_list(args, engine: Engine) -> int:
    rows = engine.visitors.list(args.collection)
    _report(args, rows, "\n".join(f"{r['visitor_id']}  {r['visits']:>3} visits  {r['faces']} faces  last seen "
                                  f"{r['last_seen']} ({r['camera'] or '-'})" for r in rows) or "no visitors")
    return EXIT_OK


def cmd_visitors_promote(args, engine: Engine) -> int:
    return _report_enrolment(args, engine.visitors.promote(args.visitor_id, clean_name(args.name, "person name"),
                                                           args.collection, args.force))


def cmd_visitors_forget(args, engine: Engine) -> int:
    erased = engine.visitors.forget(args.visitor_id)
    _report(args, {"erased": erased}, f"erased visitor {erased['visitor_id']}: {erased['faces']} faces, "
                                      "their thumbnails and events")
    return EXIT_OK


def cmd_enroll(args, engine: Engine) -> int:
    from tqdm import tqdm

    folder = Path(args.folder)
    if not folder.is_dir():
        raise FacedError(f"{folder} is not a folder", "NOT_A_FOLDER")
    try:
        engine.collection(args.collection)
    except FacedError as exc:
        raise _enrolment_hint(exc, args.collection) from None
    people = [p for p in folder.iterdir() if p.is_dir()]
    with tqdm(total=len(people), unit="person", file=sys.stderr, disable=not args.progress) as bar:
        summary = engine.enrol_folder(folder, args.collection, args.force, progress=lambda name: bar.update())
    text = [f"enrolled {sum(1 for p in summary['persons'] if p['person_id'])} of {len(summary['persons'])} persons, "
            f"{summary['accepted']} photos accepted, {summary['skipped']} already enrolled, "
            f"{len(summary['rejected'])} rejected"]
    text += [f"  REJECTED {r['source']}: {r.get('code')}: {r.get('message', '')}" for r in summary["rejected"]]
    _report(args, summary, "\n".join(text))
    return EXIT_OK


def search_json(recognitions) -> dict:
    """`faced search --json`: contract 2's N:N shape plus each face's box (README "Stable JSON interfaces")."""
    results, unknown = [], []
    for recognition in recognitions:
        thumbnail = base64.b64encode(encode_thumbnail(recognition.face.aligned)).decode("ascii")
        box = _rounded(recognition.face.box)
        if not recognition.known:
            unknown.append((thumbnail, box))
        for match in recognition.matches:
            results.append({"person_id": match.person_id, "person_name": match.person_name,
                            "metadata": match.metadata, "similarity_score": round(match.similarity_score, 4),
                            "face_base_64": thumbnail, "box": box})
    results.sort(key=lambda r: -r["similarity_score"])
    return {"person_search_results": results,
            "unrecognized_face_thumbnails_base_64": [t for t, _ in unknown],
            "unrecognized_faces": [{"box": box} for _, box in unknown]}


def cmd_search(args, engine: Engine) -> int:
    min_score = engine.config.recognition.min_similarity_score if args.min_score is None else args.min_score
    check_search_options(min_score, args.max_results)  # before the image is read: a usage mistake first
    image = engine.read_image(args.image)
    result = search_json(engine.search(args.collection, image, min_score, args.max_results))
    lines = [f"{r['person_name']} ({r['person_id']}) score {r['similarity_score']:.3f} at "
             f"{' '.join(f'{v:.0f}' for v in r['box'])}" for r in result["person_search_results"]]
    lines += [f"unknown face at {' '.join(f'{v:.0f}' for v in u['box'])}" for u in result["unrecognized_faces"]]
    _report(args, result, "\n".join(lines) or "no face found")
    return EXIT_OK


def cmd_keys_create(args, engine: Engine) -> int:
    record, key = engine.create_key(args.name)
    if args.json:
        _print_json({**record.to_dict(), "key": key})
    else:
        print(f"created API key {record.name!r}; it is shown only now and stored hashed:")
        print(key)
    return EXIT_OK


def cmd_keys_list(args, engine: Engine) -> int:
    rows = [k.to_dict() for k in engine.keys()]
    _report(args, rows, "\n".join(f"{r['name']:<30} created {r['created']}  last used {r['last_used'] or 'never'}"
                                  for r in rows) or "no API keys")
    return EXIT_OK


def cmd_keys_revoke(args, engine: Engine) -> int:
    record = engine.revoke_key(args.name)
    _report(args, {"revoked": record.to_dict()}, f"revoked API key {record.name!r}")
    return EXIT_OK


def cmd_reembed(args, engine: Engine) -> int:
    result = engine.reembed(args.collection)
    _report(args, result, f"re-embedded {result['faces']} faces of {result['collection_name']!r} with "
                          f"{result['embedder']['model']} {result['embedder']['precision']}")
    return EXIT_OK


def cmd_export(args, engine: Engine) -> int:
    result = engine.export(args.collection, args.file)
    _report(args, result, f"exported {result['persons']} persons, {result['faces']} faces to {args.file}")
    return EXIT_OK


def cmd_import(args, engine: Engine) -> int:
    result = engine.import_(args.file, args.name, args.reembed)
    _report(args, result, f"imported {result['persons']} persons, {result['faces']} faces as "
                          f"{result['collection_name']!r}")
    return EXIT_OK


def cmd_backup(args, engine: Engine) -> int:
    engine.backup(args.file)
    _report(args, {"file": args.file}, f"backed up {engine.config.db_path} to {args.file}")
    return EXIT_OK


# --------------------------------------------------------------------------------------------- bench
def cmd_bench(args, engine: Engine) -> int:
    from .bench import run as run_bench

    return run_bench(args, engine.config)


if __name__ == "__main__":
    sys.exit(main())
