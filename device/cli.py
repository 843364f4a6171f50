"""`faced` command line: a thin layer over the library (config, imaging, vision pipeline).

Global options come before the command. Every command that prints results has --json. Exit status: 0 on
success, 1 on a handled error (one line on standard error), 2 on bad usage.
"""
from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
from pathlib import Path

from . import __version__
from .config import Config, load_config
from .errors import FacedError

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="faced", description="On-device face recognition appliance.")
    parser.add_argument("--config", metavar="FILE", help="TOML config file (default: $FACED_CONFIG)")
    parser.add_argument("--db", metavar="PATH", help="SQLite database file (default: $FACED_DB or config)")
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--version", action="version", version=f"faced {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    run = commands.add_parser("run", help="run the daemon (HTTP API on 127.0.0.1:8080 by default)")
    run.add_argument("--host", help="API address (default 127.0.0.1; $FACED_API_HOST)")
    run.add_argument("--port", type=int, help="API port (default 8080; $FACED_API_PORT)")
    run.set_defaults(handler=cmd_run)

    detect = commands.add_parser("detect", help="find faces: boxes, landmarks, scores")
    detect.add_argument("images", nargs="+", metavar="IMAGE")
    detect.add_argument("--json", action="store_true", help="one JSON object per line per image")
    detect.add_argument("--draw", metavar="OUT.png", help="write the image with boxes and landmarks drawn")
    detect.add_argument("--pose", action="store_true", help="add head pose (yaw, pitch, roll) and eyes_open")
    detect.add_argument("--no-attributes", dest="attributes", action="store_false",
                        help="skip age and gender (faster)")
    detect.add_argument("--liveness", action="store_true", help="add passive liveness to each face")
    detect.set_defaults(handler=cmd_detect)

    liveness = commands.add_parser("liveness", help="passive liveness of each face (live photo or spoof)")
    liveness.add_argument("images", nargs="+", metavar="IMAGE")
    liveness.add_argument("--json", action="store_true", help="one JSON object per line per image")
    liveness.set_defaults(handler=cmd_liveness)

    compare = commands.add_parser("compare", help="compare the main faces of two images (1:1)")
    compare.add_argument("image_a", metavar="A")
    compare.add_argument("image_b", metavar="B")
    compare.add_argument("--json", action="store_true")
    compare.set_defaults(handler=cmd_compare)

    models = commands.add_parser("models", help="shipped model variants: list, verify")
    models_commands = models.add_subparsers(dest="models_command", metavar="ACTION")
    models_commands.required = True
    for action, helptext, handler in (
        ("list", "each variant's precision, fidelity and whether it is the default", cmd_models_list),
        ("verify", "check every shipped file's sha256 and load it", cmd_models_verify),
    ):
        sub = models_commands.add_parser(action, help=helptext)
        sub.add_argument("--json", action="store_true")
        sub.set_defaults(handler=handler)

    doctor = commands.add_parser("doctor", help="check runtime, SQLite loader and models")
    doctor.add_argument("--json", action="store_true")
    doctor.set_defaults(handler=cmd_doctor)

    _add_store_commands(commands)

    bench = commands.add_parser("bench", help="measure per-stage latency, frames/s and memory")
    from .bench import add_arguments as add_bench_arguments

    add_bench_arguments(bench)
    bench.set_defaults(handler=cmd_bench)
    return parser


def _add_store_commands(commands) -> None:
    def command(parent, name, helptext, handler, *arguments):
        sub = parent.add_parser(name, help=helptext)
        for args, kwargs in arguments:
            sub.add_argument(*args, **kwargs)
        sub.add_argument("--json", action="store_true")
        sub.set_defaults(handler=handler)
        return sub

    collection = (("--collection",), {"required": True, "metavar": "NAME"})
    force = (("--force",), {"action": "store_true",
                            "help": "accept photos that duplicate another person or do not match this one"})
    images = (("images",), {"nargs": "+", "metavar": "IMAGE"})

    collections = commands.add_parser("collections", help="face collections: create, list, delete")
    sub = collections.add_subparsers(dest="action", metavar="ACTION", required=True)
    command(sub, "create", "create a collection", cmd_collections_create, (("name",), {"metavar": "NAME"}))
    command(sub, "list", "list collections", cmd_collections_list)
    command(sub, "delete", "erase a collection and everything in it", cmd_collections_delete,
            (("name",), {"metavar": "NAME"}))

    persons = commands.add_parser("persons", help="persons of a collection: add, add-faces, list, show, delete")
    sub = persons.add_subparsers(dest="action", metavar="ACTION", required=True)
    command(sub, "add", "enrol a person from one or more photos", cmd_persons_add, collection,
            (("--name",), {"required": True, "metavar": "PERSON"}),
            (("--metadata",), {"metavar": "JSON", "help": "a JSON object stored with the person"}), force, images)
    command(sub, "add-faces", "add photos to an enrolled person", cmd_persons_add_faces,
            (("person_id",), {"metavar": "ID"}), force, images)
    command(sub, "list", "persons of a collection", cmd_persons_list, collection)
    command(sub, "show", "one person", cmd_persons_show, (("person_id",), {"metavar": "ID"}))
    command(sub, "delete", "erase a person, its faces, vectors and thumbnails", cmd_persons_delete,
            (("person_id",), {"metavar": "ID"}))

    command(commands, "enroll", "enrol a folder: one person per subfolder, named as the folder", cmd_enroll,
            (("folder",), {"metavar": "DIR"}), collection, force)
    command(commands, "search", "find the enrolled persons in an image (every face)", cmd_search,
            (("image",), {"metavar": "IMAGE"}), collection,
            (("--min-score",), {"type": float, "help": "calibrated score (default recognition.min_similarity_score)"}),
            (("--max-results",), {"type": int, "default": 1, "help": "persons per face (default 1)"}))
    command(commands, "reembed", "recompute a collection's vectors with the current embedder", cmd_reembed,
            collection)
    command(commands, "export", "write a collection to one portable file", cmd_export, collection,
            (("file",), {"metavar": "FILE"}))
    command(commands, "import", "add the collection of an exported file", cmd_import,
            (("file",), {"metavar": "FILE"}), (("--as",), {"dest": "name", "metavar": "NAME"}),
            (("--reembed",), {"action": "store_true", "help": "recompute vectors made by another embedder"}))
    command(commands, "backup", "consistent copy of the whole database while it is in use", cmd_backup,
            (("file",), {"metavar": "FILE"}))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        overrides = {"store.db": args.db} if args.db else {}
        config = load_config(args.config, overrides=overrides)
        return args.handler(args, config) or EXIT_OK
    except FacedError as exc:
        print(f"faced: {exc.code}: {exc.message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_ERROR
    except BrokenPipeError:
        return EXIT_OK


def _pipeline(config: Config):
    from .vision.pipeline import Pipeline

    return Pipeline(config)


def _limits(config: Config):
    from .imaging import ImageLimits

    return ImageLimits(max_bytes=config.images.max_bytes, max_pixels=config.images.max_pixels)


def _print_json(value) -> None:
    print(json.dumps(value, ensure_ascii=False), flush=True)


# ----------------------------------------------------------------------------------------------- run
def cmd_run(args, config: Config) -> int:
    from .service import Service

    if args.host:
        config.api.host = args.host
    if args.port is not None:
        config.api.port = args.port
    Service(config).run()
    return EXIT_OK


# -------------------------------------------------------------------------------------------- detect
def _each_image(args, config: Config, analyse, show) -> int:
    """Decode each image, run `analyse(pipeline, image) -> faces`, then `show(path, image, faces)`.

    An image that fails gives its own error (a JSON line with --json) and the others go on; the exit status
    is 1 if any failed.
    """
    from .imaging import read_image_file

    pipeline = _pipeline(config)
    limits = _limits(config)
    failed = 0
    for index, path in enumerate(args.images):
        try:
            image = read_image_file(path, limits)
            faces = analyse(pipeline, image)
        except FacedError as exc:
            failed += 1
            if args.json:
                _print_json({"image": path, "error": exc.to_dict()})
            else:
                print(f"{path}: error {exc.code}: {exc.message}", file=sys.stderr)
            continue
        show(index, path, image, faces)
    return EXIT_ERROR if failed else EXIT_OK


def cmd_detect(args, config: Config) -> int:
    def analyse(pipeline, image):
        faces = pipeline.assess(image, pipeline.detect(image))
        if args.attributes:
            pipeline.add_attributes(image, faces)
        if args.liveness:
            pipeline.add_liveness(image, faces)
        return faces

    def show(index, path, image, faces):
        if args.json:
            _print_json({"image": path, "faces": [face.to_dict(pose=args.pose) for face in faces]})
        else:
            _print_faces_table(path, faces, args.pose)
        if args.draw:
            _draw(image, faces, _draw_path(args.draw, index, len(args.images)))

    return _each_image(args, config, analyse, show)


def cmd_liveness(args, config: Config) -> int:
    def analyse(pipeline, image):
        return pipeline.add_liveness(image, pipeline.detect(image))

    def show(index, path, image, faces):
        if args.json:
            rows = [{"box": face.to_dict()["box"], "liveness": face.liveness} for face in faces]
            _print_json({"image": path, "faces": rows})
            return
        print(f"{path}: {len(faces)} face{'s' if len(faces) != 1 else ''}")
        for number, face in enumerate(faces, 1):
            result = face.liveness
            score = "-" if result["score"] is None else f"{result['score']:.3f}"
            verdict = "live" if result["live"] else "NOT live"
            print(f"  {number:>2}  box {' '.join(f'{v:.0f}' for v in face.box)}  {verdict:<8} score {score}  "
                  f"{' '.join(result['codes'])}")

    return _each_image(args, config, analyse, show)


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


def _draw_path(target: str, index: int, count: int) -> Path:
    path = Path(target)
    return path if count == 1 else path.with_name(f"{path.stem}_{index + 1}{path.suffix or '.png'}")


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
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), canvas):
        raise FacedError(f"cannot write {path} (use a .png or .jpg name)", "OUTPUT_ERROR")


# ------------------------------------------------------------------------------------------- compare
def cmd_compare(args, config: Config) -> int:
    from .imaging import read_image_file

    pipeline = _pipeline(config)
    limits = _limits(config)
    faces = []
    for path in (args.image_a, args.image_b):
        try:
            faces.append(pipeline.main_face(read_image_file(path, limits)))
        except FacedError as exc:
            raise type(exc)(f"{path}: {exc.message}", exc.code) from None
    result = pipeline.compare_faces(*faces)
    if args.json:
        _print_json(result.to_dict())
    else:
        verdict = "same person" if result.same else "different people"
        print(f"{verdict}: score {result.score:.3f} (threshold {result.threshold}), cosine {result.cosine:.4f}")
    return EXIT_OK


# -------------------------------------------------------------------------------------------- models
def _variant_rows(config: Config) -> list[dict]:
    from .vision.manifest import Manifest

    manifest = Manifest(config.vision.models_dir or None)
    configured = {"yunet": config.detector.precision, "sface": config.embedder.precision,
                  "age": config.attributes.age_precision, "gender": config.attributes.gender_precision,
                  "minifasnet_v2": config.liveness.v2_precision, "minifasnet_v1se": config.liveness.v1se_precision}
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


def cmd_models_list(args, config: Config) -> int:
    rows = _variant_rows(config)
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


def cmd_models_verify(args, config: Config) -> int:
    from .vision.manifest import verify_file
    from .vision.runtime import TFLiteModel

    results, failed = [], 0
    for row in _variant_rows(config):
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
def cmd_doctor(args, config: Config) -> int:
    checks: list[dict] = []

    def check(name: str, fn) -> None:
        try:
            checks.append({"check": name, "ok": True, "detail": fn()})
        except Exception as exc:  # doctor reports every failure instead of stopping at the first
            checks.append({"check": name, "ok": False, "detail": f"{type(exc).__name__}: {exc}"})

    check("python", lambda: f"{platform.python_version()} on {platform.machine()} ({platform.system()})")
    check("tflite runtime", _doctor_runtime)
    check("sqlite", _doctor_sqlite)
    check("models", lambda: _doctor_models(config))
    check("database", lambda: _doctor_database(config))
    check("config", lambda: f"db {config.db_path}, API {config.api.host}:{config.api.port}, "
                            f"MQTT {'configured' if config.mqtt.url else 'off (events stay in the outbox)'}")
    ok = all(item["ok"] for item in checks)
    if args.json:
        _print_json({"ok": ok, "checks": checks})
    else:
        for item in checks:
            print(f"{'ok  ' if item['ok'] else 'FAIL'} {item['check']:<15} {item['detail']}")
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


def _doctor_database(config: Config) -> str:
    from .store.db import Store
    from .store.schema import SCHEMA_VERSION

    if not config.db_path.exists():
        return f"{config.db_path} does not exist yet (created on first use)"
    with Store(config.db_path) as store:
        collections = store.collections()
        integrity = store.integrity()
    if integrity != "ok":
        raise RuntimeError(f"{config.db_path}: integrity check says {integrity}")
    return (f"{config.db_path}: schema {SCHEMA_VERSION}, {len(collections)} collections, "
            f"{sum(c.faces for c in collections)} faces, integrity ok")


def _doctor_models(config: Config) -> str:
    from .vision.manifest import verify_file

    rows = [row for row in _variant_rows(config) if row["shipped"]]
    for row in rows:
        verify_file(row["_variant"])
    selected = ", ".join(f"{row['model']} {row['precision']}" for row in rows if row["selected"])
    return f"{len(rows)} files verified (sha256); in use: {selected}"


# --------------------------------------------------------------------------------------------- store
def _store(config: Config):
    from .store.db import Store

    return Store(config.db_path)


def _report(args, value: dict | list, text: str) -> None:
    if args.json:
        _print_json(value)
    else:
        print(text)


def cmd_collections_create(args, config: Config) -> int:
    with _store(config) as store:
        collection = store.create_collection(args.name, _pipeline(config).embedder.identity)
        _report(args, collection.to_dict(), f"created collection {collection.name!r}")
    return EXIT_OK


def cmd_collections_list(args, config: Config) -> int:
    with _store(config) as store:
        rows = [c.to_dict() for c in store.collections()]
    _report(args, rows, "\n".join(f"{r['collection_name']:<30} {r['persons']:>7} persons {r['faces']:>8} faces  "
                                  f"{r['embedder']['model']} {r['embedder']['precision']}" for r in rows)
            or "no collections")
    return EXIT_OK


def cmd_collections_delete(args, config: Config) -> int:
    with _store(config) as store:
        erased = store.delete_collection(args.name)
    _report(args, {"erased": erased}, f"erased collection {args.name!r}: {erased['persons']} persons, "
                                      f"{erased['faces']} faces with their vectors and thumbnails")
    return EXIT_OK


def _enroller(store, config: Config):
    from .store.enrol import Enroller

    return Enroller(store, _pipeline(config), limits=_limits(config))


def _outcome_lines(outcomes) -> str:
    return "\n".join(f"  {'accepted' if o.accepted else 'REJECTED'} {o.source}"
                     f"{'' if o.accepted else f': {o.code}: {o.message}'}" for o in outcomes)


def cmd_persons_add(args, config: Config) -> int:
    try:
        metadata = json.loads(args.metadata) if args.metadata else {}
    except json.JSONDecodeError as exc:
        raise FacedError(f"--metadata is not JSON: {exc}", "INVALID_METADATA") from None
    if not isinstance(metadata, dict):
        raise FacedError("--metadata must be a JSON object", "INVALID_METADATA")
    with _store(config) as store:
        enroller = _enroller(store, config)
        candidates = [enroller.read(path) for path in args.images]
        person_id, outcomes = enroller.add_person(args.collection, args.name, candidates, metadata, args.force)
    result = {"person_id": person_id, "person_name": args.name, "faces": [o.to_dict() for o in outcomes]}
    _report(args, result, (f"enrolled {args.name!r} as {person_id}" if person_id else
                           f"{args.name!r} was not enrolled: no photo was accepted") + "\n" + _outcome_lines(outcomes))
    return EXIT_OK if person_id else EXIT_ERROR


def cmd_persons_add_faces(args, config: Config) -> int:
    with _store(config) as store:
        enroller = _enroller(store, config)
        outcomes = enroller.add_faces(args.person_id, [enroller.read(p) for p in args.images], args.force)
    _report(args, {"person_id": args.person_id, "faces": [o.to_dict() for o in outcomes]},
            f"person {args.person_id}:\n" + _outcome_lines(outcomes))
    return EXIT_OK if any(o.accepted for o in outcomes) else EXIT_ERROR


def cmd_persons_list(args, config: Config) -> int:
    with _store(config) as store:
        rows = [p.to_dict() for p in store.persons(store.collection(args.collection))]
    _report(args, rows, "\n".join(f"{r['person_id']}  {len(r['face_ids']):>3} faces  {r['person_name']}"
                                  for r in rows) or "no persons")
    return EXIT_OK


def cmd_persons_show(args, config: Config) -> int:
    with _store(config) as store:
        person = store.person(args.person_id).to_dict()
    _report(args, person, "\n".join(f"{k}: {v}" for k, v in person.items()))
    return EXIT_OK


def cmd_persons_delete(args, config: Config) -> int:
    with _store(config) as store:
        erased = store.delete_person(args.person_id)
    _report(args, {"erased": erased}, f"erased {erased['person_name']!r} ({erased['person_id']}): "
                                      f"{erased['faces']} faces with their vectors and thumbnails")
    return EXIT_OK


def cmd_enroll(args, config: Config) -> int:
    from tqdm import tqdm

    from pathlib import Path as _Path

    folder = _Path(args.folder)
    if not folder.is_dir():
        raise FacedError(f"{folder} is not a folder", "NOT_A_FOLDER")
    people = [p for p in folder.iterdir() if p.is_dir()]
    with _store(config) as store, tqdm(total=len(people), unit="person", file=sys.stderr,
                                       disable=args.json and not sys.stderr.isatty()) as bar:
        summary = _enroller(store, config).enrol_folder(folder, args.collection, args.force,
                                                        progress=lambda name: bar.update())
    text = [f"enrolled {sum(1 for p in summary['persons'] if p['person_id'])} of {len(summary['persons'])} persons, "
            f"{summary['accepted']} photos accepted, {len(summary['rejected'])} rejected"]
    text += [f"  REJECTED {r['source']}: {r.get('code')}: {r.get('message', '')}" for r in summary["rejected"]]
    _report(args, summary, "\n".join(text))
    return EXIT_OK


def cmd_search(args, config: Config) -> int:
    from .imaging import read_image_file
    from .store.search import Searcher

    image = read_image_file(args.image, _limits(config))
    min_score = config.recognition.min_similarity_score if args.min_score is None else args.min_score
    with _store(config) as store:
        result = Searcher(store, _pipeline(config)).search_image(args.collection, image, min_score,
                                                                 max(1, args.max_results))
    lines = [f"{r['person_name']} ({r['person_id']}) score {r['similarity_score']:.3f} at "
             f"{' '.join(f'{v:.0f}' for v in r['box'])}" for r in result["person_search_results"]]
    lines += [f"unknown face at {' '.join(f'{v:.0f}' for v in u['box'])}" for u in result["unrecognized_faces"]]
    _report(args, result, "\n".join(lines) or "no face found")
    return EXIT_OK


def _reembed_function(config: Config):
    from .store.portable import decode_thumbnail

    embedder = _pipeline(config).embedder
    return embedder, lambda thumbnail: embedder.embed(decode_thumbnail(thumbnail))


def cmd_reembed(args, config: Config) -> int:
    from .store.portable import reembed_collection

    embedder, reembed = _reembed_function(config)
    with _store(config) as store:
        result = reembed_collection(store, args.collection, embedder.identity, reembed)
    _report(args, result, f"re-embedded {result['faces']} faces of {args.collection!r} with "
                          f"{embedder.identity['model']} {embedder.identity['precision']}")
    return EXIT_OK


def cmd_export(args, config: Config) -> int:
    from .store.portable import export_collection

    with _store(config) as store:
        result = export_collection(store, args.collection, args.file)
    _report(args, result, f"exported {result['persons']} persons, {result['faces']} faces to {args.file}")
    return EXIT_OK


def cmd_import(args, config: Config) -> int:
    from .store.portable import import_collection

    embedder, reembed = _reembed_function(config)
    with _store(config) as store:
        result = import_collection(store, args.file, embedder.identity, args.name, reembed if args.reembed else None)
    _report(args, result, f"imported {result['persons']} persons, {result['faces']} faces as "
                          f"{result['collection_name']!r}")
    return EXIT_OK


def cmd_backup(args, config: Config) -> int:
    with _store(config) as store:
        store.backup(args.file)
    _report(args, {"file": args.file}, f"backed up {config.db_path} to {args.file}")
    return EXIT_OK


# --------------------------------------------------------------------------------------------- bench
def cmd_bench(args, config: Config) -> int:
    from .bench import run as run_bench

    return run_bench(args, config)


if __name__ == "__main__":
    sys.exit(main())
