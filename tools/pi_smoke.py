#!/usr/bin/env python3
"""The smoke test of tools/pi_check.py: faced's main answers on a few photos, in ONE Python process.

    python tools/pi_smoke.py --data ../shared/data > answers.json

pi_check.py runs it with the project's .venv on the host and with faced's venv inside the emulated Raspberry Pi
OS userland (once per CPU), then compares the answers. Start-up is slow under emulation, so every step shares
one process and one Pipeline. Steps: `faced doctor` (the real command, in process), detection on a group
photo, compare on two photos of one person (with age and gender), passive liveness on one photo, and a
collection: enrol three persons from six photos, then search two photos. Each step is caught on its own, so
one failure does not hide the others; the JSON says which step failed and why.

Only the standard library and faced's installed dependencies are used. Timings are not reported: under
emulation they mean nothing.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import sys
import tempfile
import traceback
from pathlib import Path

GROUP_PHOTO = "faces/dlib/examples/faces/2008_002470.jpg"
SAME_PERSON = ("faces/face_recognition/examples/obama.jpg", "faces/face_recognition/examples/obama2.jpg")
LIVENESS_PHOTO = "faces/silent-face/images/sample/image_T1.jpg"
KNN = "faces/face_recognition/examples/knn_examples"
ENROL = {  # person -> photos under KNN/train
    "obama": ["obama/obama.jpg", "obama/obama2.jpg"],
    "biden": ["biden/biden.jpg", "biden/biden2.jpg"],
    "kit_harington": ["kit_harington/john1.jpeg", "kit_harington/john2.jpeg"],
}
SEARCH = ["test/obama_and_biden.jpg", "test/kit_with_rose.jpg"]  # under KNN; rose_leslie is not enrolled


def _box(face) -> list[float]:
    return [round(float(v), 2) for v in face.box]


def _glibc() -> str:
    name, version = platform.libc_ver()
    return f"{name} {version}".strip()


def _cpu_model() -> str:
    """What /proc/cpuinfo says (inside the emulated userland: the Pi-style file pi_check.py mounts)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
    for key in ("Model", "model name", "CPU part"):
        for line in text.splitlines():
            if line.split(":")[0].strip() == key:
                return f"{key}: {line.split(':', 1)[1].strip()}"
    return ""


class Smoke:
    def __init__(self, data: Path, workdir: Path):
        self.data = data
        self.workdir = workdir
        self.result: dict = {"steps": {}, "errors": {}}
        self._pipeline = None

    @property
    def pipeline(self):
        if self._pipeline is None:
            from device.config import load_config
            from device.vision.pipeline import Pipeline

            # Defaults only, as the tests do: the caller's environment must not change the answers.
            self._pipeline = Pipeline(load_config(env={}))
        return self._pipeline

    def image(self, relative: str):
        from device.imaging import read_image_file

        return read_image_file(str(self.data / relative))

    def step(self, name: str, function) -> None:
        try:
            self.result["steps"][name] = function()
        except Exception as exc:  # every step is reported, a failing one with its reason
            self.result["errors"][name] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc(file=sys.stderr)

    # ------------------------------------------------------------------------------------------ steps
    def install(self) -> dict:
        from importlib.metadata import PackageNotFoundError, version

        import device
        from device.vision.manifest import Manifest

        try:
            installed = version("faced")
        except PackageNotFoundError:  # the host may run the source tree (PYTHONPATH) without installing it
            installed = None
        manifest_dir = Manifest().dir.resolve()
        prefix = Path(sys.prefix).resolve()
        return {
            "faced": getattr(device, "__version__", None),
            "installed_distribution": installed,
            "package": str(Path(device.__file__).resolve().parent),
            "models_dir": str(manifest_dir),
            # A wheel install keeps the models as data files under <prefix>/share/faced/models.
            "models_from_wheel": manifest_dir == prefix / "share" / "faced" / "models",
        }

    def doctor(self) -> dict:
        from device.cli import main

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(["--db", str(self.workdir / "doctor.db"), "doctor", "--json"])
        report = json.loads(out.getvalue())
        return {"exit": code, "ok": report["ok"],
                "checks": {c["check"]: {"ok": c["ok"], "detail": c["detail"]} for c in report["checks"]}}

    def detect(self) -> dict:
        faces = self.pipeline.detect(self.image(GROUP_PHOTO))
        return {"image": GROUP_PHOTO,
                "faces": [{"box": _box(f), "score": round(float(f.score), 4)} for f in faces]}

    def compare(self) -> dict:
        pipeline = self.pipeline
        images = [self.image(path) for path in SAME_PERSON]
        faces = [pipeline.main_face(image) for image in images]
        compared = pipeline.compare_faces(*faces)
        comparison = {"score": round(compared.score, 4), "cosine": round(compared.cosine, 4), "same": compared.same,
                      "threshold": compared.threshold}
        attributes = []
        for image, face in zip(images, faces):
            pipeline.add_attributes(image, [face])
            attributes.append({"box": _box(face), "age": round(float(face.age), 2), "gender": face.gender})
        return {"images": list(SAME_PERSON), **comparison, "faces": attributes}

    def liveness(self) -> dict:
        try:
            from device.vision import liveness as _  # noqa: F401  (the module itself, not only the method)
            from device.vision.pipeline import Pipeline

            Pipeline.add_liveness  # noqa: B018
        except (ImportError, AttributeError) as exc:
            return {"available": False, "reason": f"not available in this faced: {type(exc).__name__}: {exc}"}
        pipeline = self.pipeline
        image = self.image(LIVENESS_PHOTO)
        faces = pipeline.add_liveness(image, pipeline.detect(image))
        return {"available": True, "image": LIVENESS_PHOTO,
                "faces": [{"box": _box(f), "liveness": f.liveness} for f in faces]}

    def collection(self) -> dict:
        from device.config import load_config
        from device.engine import Engine

        knn = self.data / KNN
        enrolled, searches = [], []
        config = load_config(env={}, overrides={"store.db": str(self.workdir / "smoke.db")})
        with Engine(config, create=True, pipeline=self.pipeline) as engine:
            engine.create_collection("smoke")
            for name, photos in ENROL.items():
                enrolment = engine.add_person(
                    "smoke", name, [engine.photo_file(str(knn / "train" / photo)) for photo in photos])
                enrolled.append({"person": name, "enrolled": enrolment.person_id is not None,
                                 "accepted": sum(o.accepted for o in enrolment.outcomes),
                                 "rejected": [o.code for o in enrolment.outcomes if not o.accepted]})
            for photo in SEARCH:
                answer = engine.search("smoke", self.image(f"{KNN}/{photo}"), 0.7)
                searches.append({
                    "image": photo,
                    "matches": sorted(({"person": m.person_name, "score": round(m.similarity_score, 4),
                                        "box": _box(r.face)} for r in answer for m in r.matches),
                                      key=lambda item: -item["score"]),
                    "unknown": [_box(r.face) for r in answer if not r.known],
                })
            faces = sum(c.faces for c in engine.collections())
            integrity = engine.store.integrity()
        return {"enrolled": enrolled, "faces_stored": faces, "integrity": integrity, "searches": searches}

    # ---------------------------------------------------------------------------------- what ran where
    def models(self) -> dict:
        """Every model the steps loaded (found on the pipeline's objects) and the manifest's choice."""
        from device.vision.runtime import RUNTIME_NAME, TFLiteModel, runtime_version

        runtime = f"{RUNTIME_NAME} {runtime_version()}"
        loaded: dict[str, dict] = {}
        seen: set[int] = set()

        def walk(value, depth: int = 0) -> None:
            if depth > 4 or id(value) in seen or value is None:
                return
            seen.add(id(value))
            if isinstance(value, TFLiteModel):
                variant = value.variant
                loaded.setdefault(variant.model, {
                    "precision": variant.precision, "file": variant.path.name, "runtime": runtime,
                    "input_dtype": str(value.inputs[0]["dtype"].__name__), "threads": value.threads})
                return
            if isinstance(value, dict):
                for item in value.values():
                    walk(item, depth + 1)
            elif isinstance(value, (list, tuple)):
                for item in value:
                    walk(item, depth + 1)
            elif hasattr(value, "__dict__") and type(value).__module__.startswith("device."):
                for item in vars(value).values():
                    walk(item, depth + 1)

        walk(self.pipeline)
        manifest = self.pipeline.manifest
        chosen = {name: manifest.default_precision(name) for name in manifest.models()}
        return {"runtime": runtime, "loaded": dict(sorted(loaded.items())), "manifest_default": chosen}

    def run(self) -> dict:
        self.result["platform"] = {
            "machine": platform.machine(), "python": platform.python_version(), "libc": _glibc(),
            "cpu": _cpu_model(), "qemu_cpu": os.environ.get("QEMU_CPU", ""),
        }
        self.step("install", self.install)
        self.step("doctor", self.doctor)
        self.step("detect", self.detect)
        self.step("compare", self.compare)
        self.step("liveness", self.liveness)
        self.step("collection", self.collection)
        self.step("models", self.models)
        return self.result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, type=Path, help="the shared data folder (holds faces/)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="faced-smoke-") as workdir:
        result = Smoke(args.data.resolve(), Path(workdir)).run()
    json.dump(result, sys.stdout, indent=1, sort_keys=False)
    print()
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
