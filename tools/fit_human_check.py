#!/usr/bin/env python3
"""Fit, measure and store the detector's human check (device/vision/human.py).

  tools/fit_human_check.py [--data ../shared/data] [--cache build/human_check.npz] --json OUT [--write]

Candidates come from faced's own detector with the human check off and low thresholds (so that the curve can
be drawn below today's operating point). For each candidate it records YuNet's and BlazeFace's scores and
SFace's raw output on the aligned crop (cached in --cache, so that re-fitting does not re-run the models).

Data (README "Detection"):
- fit, human: one-face photos of deepface, face_recognition and liveness (real and spoof: a printed face is
  still a face for a detector), as they are and rotated by +-30 and +-60 degrees, in greyscale, and shrunk
  into mosaics of 160, 96 and 64 px tiles (faces of ~20-60 px, as in a crowd);
- fit, not human: the Oxford-IIIT Pet photos of faces/animals (*_oxfordpet.jpg), dlib's dogs.jpg and
  noface/chelsea.png, at scales 1, 0.5 and 0.35, flipped, rotated by +-30, greyscale, and in mosaics;
- check only (never fitted): the other animal photos and the other noface photos (same variants), and the
  VOC group photos of faces/dlib (training.xml + testing.xml, 43 faces) at scales 1, 0.5 and 0.35.

The fit is a class-balanced L2 logistic regression on human_features(); the DET points on fit data are
10-fold cross-validated by source photo (every variant of a photo is in the same fold).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from device.config import load_config  # noqa: E402
from device.imaging import read_image_file  # noqa: E402
from device.vision.align import align_face  # noqa: E402
from device.vision.human import human_features  # noqa: E402
from device.vision.pipeline import Pipeline  # noqa: E402
import evaluate  # noqa: E402

SCALES = (1.0, 0.5, 0.35)
COLLECT = {"detector.human_check": False, "detector.score_threshold": 0.45, "detector.accept_threshold": 0.45}
THRESHOLDS = [round(t, 2) for t in np.arange(0.0, 1.0001, 0.05)]


# ------------------------------------------------------------------------------------------- images
def rotated(image: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """The image turned counter-clockwise on screen by `degrees` on a canvas that holds all of it, and the
    2x3 matrix mapping old pixels to new ones."""
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    new_w, new_h = int(height * sin + width * cos), int(height * cos + width * sin)
    matrix[0, 2] += new_w / 2 - width / 2
    matrix[1, 2] += new_h / 2 - height / 2
    return cv2.warpAffine(image, matrix, (new_w, new_h), borderMode=cv2.BORDER_REPLICATE), matrix


def greyscale(image: np.ndarray) -> np.ndarray:
    return np.repeat(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)


def mosaic(images: list[np.ndarray], tile: int, columns: int = 4) -> tuple[np.ndarray, list[tuple[float, np.ndarray]]]:
    """Images shrunk into tile x tile cells of a grey canvas; per image (scale, offset of its cell)."""
    rows = (len(images) + columns - 1) // columns
    canvas = np.full((rows * tile, columns * tile, 3), 127, np.uint8)
    placed = []
    for k, image in enumerate(images):
        scale = tile / max(image.shape[:2])
        small = cv2.resize(image, (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))),
                           interpolation=cv2.INTER_AREA)
        top, left = (k // columns) * tile, (k % columns) * tile
        canvas[top:top + small.shape[0], left:left + small.shape[1]] = small
        placed.append((scale, np.array([left, top], np.float64)))
    return canvas, placed


# ------------------------------------------------------------------------------------------- data
def portraits(faces: Path) -> list[Path]:
    items = []
    with open(faces / "deepface/labels.csv", newline="") as handle:
        items += [faces / "deepface" / r["path"] for r in csv.DictReader(handle) if r["prominent_faces"] == "1"]
    with open(faces / "face_recognition/labels.csv", newline="") as handle:
        items += [faces / "face_recognition" / r["path"] for r in csv.DictReader(handle)
                  if r["faces_in_image"] == "1" and Path(r["path"]).suffix.lower() in (".jpg", ".jpeg", ".png")]
    with open(faces / "liveness/labels.csv", newline="") as handle:
        items += [faces / "liveness" / r["path"] for r in csv.DictReader(handle)]
    return items


def negatives(faces: Path) -> list[tuple[Path, str]]:
    """(image, subset): "fit" for the tuning photos, "check" for the rest."""
    items = [(p, "fit" if p.name.endswith("_oxfordpet.jpg") else "check")
             for p in sorted((faces / "animals/images").iterdir()) if p.suffix.lower() in (".jpg", ".png")]
    items.append((faces / "dlib/examples/faces/dogs.jpg", "fit"))
    items += [(p, "fit" if p.name == "chelsea.png" else "check")
              for p in sorted((faces / "noface").iterdir()) if p.suffix.lower() in (".jpg", ".png")]
    return items


class Collector:
    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline
        self.rows: list[dict] = []

    def candidates(self, image: np.ndarray) -> list[dict]:
        found = []
        for face in self.pipeline.detect(image):
            raw = self.pipeline.embedder.embed_raw(align_face(image, face.landmarks))
            found.append({"box": face.box, "yunet": face.score, "check": face.check_score or 0.0,
                          "features": human_features(raw, face.score, face.check_score or 0.0)})
        return found

    def add(self, image: np.ndarray, source: str, variant: str, kind: str, subset: str,
            faces: list[tuple[np.ndarray, float]] | None = None, labels=None, scale: float = 1.0) -> None:
        """kind "human": the candidate nearest each known face centre (within 0.35 of its width) is a face,
        the others are unknown; kind "voc": matched to imglab boxes; kind "animal": every candidate is not."""
        found = self.candidates(image)
        label = ["unknown"] * len(found) if kind != "animal" else ["animal"] * len(found)
        if faces is not None:
            for centre, width in faces:
                near = [i for i, c in enumerate(found) if label[i] == "unknown"
                        and np.linalg.norm(c["box"][:2] + c["box"][2:] / 2 - centre) < 0.35 * width]
                if near:
                    label[max(near, key=lambda i: found[i]["yunet"])] = "human"
        if labels is not None:
            used = set()
            for i in np.argsort([-c["yunet"] for c in found]):
                match = next((j for j, b in enumerate(labels) if j not in used
                              and evaluate.box_matches(found[i]["box"], b)), None)
                if match is not None:
                    used.add(match)
                    label[i] = "human"
                    found[i]["label_w"] = labels[match].w
        for candidate, name in zip(found, label):
            self.rows.append({**candidate, "label": name, "source": source, "variant": variant, "subset": subset,
                              "scale": scale, "label_w": candidate.get("label_w", -1.0)})


def collect(data: Path, pipeline: Pipeline) -> dict[str, np.ndarray]:
    faces = data / "faces"
    out = Collector(pipeline)
    # Humans (fit): each photo's main face, found on the original, followed through every variant.
    reference = {}
    for path in portraits(faces):
        image = read_image_file(str(path), evaluate.limits())
        found = pipeline.detect(image)
        if not found:
            continue
        main = max(found, key=lambda f: f.score)
        centre, width = main.box[:2] + main.box[2:] / 2, float(main.box[2])
        reference[path] = (image, centre, width)
        out.add(image, str(path), "original", "human", "fit", [(centre, width)])
        for degrees in (-60, -30, 30, 60):
            turned, matrix = rotated(image, degrees)
            out.add(turned, str(path), f"rotated {degrees}", "human", "fit",
                    [(matrix[:, :2] @ centre + matrix[:, 2], width)])
        out.add(greyscale(image), str(path), "greyscale", "human", "fit", [(centre, width)])
    paths = list(reference)
    for tile in (160, 96, 64):
        for start in range(0, len(paths), 16):
            chunk = paths[start:start + 16]
            canvas, placed = mosaic([reference[p][0] for p in chunk], tile)
            known = [(reference[p][1] * s + o, reference[p][2] * s) for p, (s, o) in zip(chunk, placed)]
            before = len(out.rows)
            out.add(canvas, "", f"mosaic {tile}", "human", "fit", known)
            for row in out.rows[before:]:  # name the tile's photo, so folds keep a photo's variants together
                centre = row["box"][:2] + row["box"][2:] / 2
                cell = int(centre[1] // tile) * 4 + int(centre[0] // tile)
                row["source"] = str(chunk[min(max(cell, 0), len(chunk) - 1)])
    # Not human: animals and face-free photos.
    animal_images = {}
    for path, subset in negatives(faces):
        image = read_image_file(str(path), evaluate.limits())
        animal_images[path] = (image, subset)
        for scale in SCALES:
            small = evaluate.scaled(image, scale)
            out.add(small, str(path), f"original x{scale:g}", "animal", subset, scale=scale)
            if scale == 0.35:
                continue
            for name, variant in (("greyscale", greyscale(small)), ("flipped", small[:, ::-1].copy()),
                                  ("rotated -30", rotated(small, -30)[0]), ("rotated 30", rotated(small, 30)[0])):
                out.add(variant, str(path), f"{name} x{scale:g}", "animal", subset, scale=scale)
    for subset in ("fit", "check"):
        chosen = [p for p, (_, s) in animal_images.items() if s == subset and "animals" in p.parts]
        for tile in (96, 64):
            for start in range(0, len(chosen), 16):
                chunk = chosen[start:start + 16]
                canvas, _ = mosaic([animal_images[p][0] for p in chunk], tile)
                before = len(out.rows)
                out.add(canvas, "", f"mosaic {tile}", "animal", subset)
                for row in out.rows[before:]:
                    centre = row["box"][:2] + row["box"][2:] / 2
                    cell = int(centre[1] // tile) * 4 + int(centre[0] // tile)
                    row["source"] = str(chunk[min(max(cell, 0), len(chunk) - 1)])
    # VOC group photos (check only): labelled faces at three scales.
    folder = faces / "dlib/examples/faces"
    labelled = {}
    for xml in ("training.xml", "testing.xml"):
        labelled.update(evaluate.read_imglab(folder / xml))
    for path, boxes in sorted(labelled.items()):
        image = read_image_file(str(path), evaluate.limits())
        for scale in SCALES:
            out.add(evaluate.scaled(image, scale), str(path), f"original x{scale:g}", "voc", "voc",
                    labels=evaluate.scaled_boxes(boxes, scale), scale=scale)
    rows = out.rows
    return {
        "features": np.array([r["features"] for r in rows], np.float64),
        "yunet": np.array([r["yunet"] for r in rows]), "check": np.array([r["check"] for r in rows]),
        "box": np.array([r["box"] for r in rows], np.float64).reshape(-1, 4),
        "label": np.array([r["label"] for r in rows]), "source": np.array([r["source"] for r in rows]),
        "variant": np.array([r["variant"] for r in rows]), "subset": np.array([r["subset"] for r in rows]),
        "scale": np.array([r["scale"] for r in rows]), "label_w": np.array([r["label_w"] for r in rows]),
    }


# ------------------------------------------------------------------------------------------- model
def fit(x: np.ndarray, y: np.ndarray, l2: float, steps: int = 3000) -> dict:
    """Class-balanced L2 logistic regression by gradient descent on standardised features."""
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = (x - mean) / scale
    weights, bias = np.zeros(z.shape[1]), 0.0
    sample = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean()))
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(z @ weights + bias)))
        grad = (p - y) * sample
        weights -= 0.1 * (z.T @ grad / len(y) + l2 * weights)
        bias -= 0.1 * float(grad.mean())
    return {"weights": weights, "bias": bias, "mean": mean, "scale": scale}


def predict(model: dict, x: np.ndarray) -> np.ndarray:
    z = ((x - model["mean"]) / model["scale"]) @ model["weights"] + model["bias"]
    return 1 / (1 + np.exp(-np.clip(z, -60, 60)))


def cross_validated(x, y, groups, l2, folds=10, seed=0) -> np.ndarray:
    names = np.unique(groups)
    fold_of = dict(zip(names, np.random.default_rng(seed).integers(0, folds, len(names))))
    fold = np.array([fold_of[g] for g in groups])
    scores = np.zeros(len(y))
    for k in range(folds):
        test = fold == k
        scores[test] = predict(fit(x[~test], y[~test], l2), x[test])
    return scores


def det_points(data: dict, human: np.ndarray, accept: float) -> list[dict]:
    """Per human-check threshold: candidates kept on each negative subset and recall of each positive set,
    among candidates that pass YuNet (detector.score_threshold) and the fused gate sqrt(yunet x check) >= accept."""
    gate = (np.sqrt(data["yunet"] * data["check"]) >= accept) & (data["yunet"] >= load_config(env={}).detector.score_threshold)
    label, subset, variant = data["label"], data["subset"], data["variant"]
    originals = np.char.startswith(variant.astype(str), "original")
    points = []
    for t in THRESHOLDS:
        kept = gate & (human >= t)
        point = {"threshold": t}
        for name in ("fit", "check"):
            negative = (label == "animal") & (subset == name)
            point[f"false_{name}_originals"] = int(np.sum(kept & negative & originals))
            point[f"false_{name}_all_variants"] = int(np.sum(kept & negative))
        positive = (label == "human") & (subset == "fit")
        point["recall_fit_cv"] = round(float(np.sum(kept & positive) / max(positive.sum(), 1)), 4)
        for scale in SCALES:
            voc = (label == "human") & (subset == "voc") & (data["scale"] == scale) & (data["label_w"] >= 20)
            point[f"voc_found_min20px_x{scale:g}"] = int(np.sum(kept & voc))
        points.append(point)
    return points


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(evaluate.shared_data_dir()))
    parser.add_argument("--cache", default="build/human_check.npz", help="candidate features (re-used if present)")
    parser.add_argument("--l2", type=float, default=0.1)
    parser.add_argument("--json", required=True)
    parser.add_argument("--plot", help="DET plot PNG (default: next to --json)")
    parser.add_argument("--write", action="store_true", help="store the fit in models/manifest.toml")
    args = parser.parse_args(argv)
    pipeline = Pipeline(load_config(env={}, overrides=COLLECT))
    cache = Path(args.cache)
    if cache.exists():
        data = dict(np.load(cache))
    else:
        data = collect(Path(args.data), pipeline)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cache, **data)
    # Fit on candidates that YuNet scores >= 0.5 (the check only ever sees those that pass its gates).
    usable = data["yunet"] >= 0.5
    train = usable & (data["subset"] == "fit") & np.isin(data["label"], ["human", "animal"])
    x, y, groups = data["features"][train], (data["label"][train] == "human").astype(float), data["source"][train]
    cv = cross_validated(x, y, groups, args.l2)
    model = fit(x, y, args.l2)
    human = predict(model, data["features"])
    human[np.flatnonzero(train)] = cv  # fit data: cross-validated scores only
    accept = load_config(env={}).detector.accept_threshold  # today's default gate
    summary = {
        "fit": {"human_candidates": int(y.sum()), "animal_candidates": int((1 - y).sum()),
                "photos": int(len(np.unique(groups))), "l2": args.l2},
        "check": {"animal_candidates": int(np.sum(usable & (data["label"] == "animal") & (data["subset"] == "check"))),
                  "voc_faces": int(np.sum((data["label"] == "human") & (data["subset"] == "voc")))},
        "det": {str(a): det_points(data, human, a) for a in (0.6, 0.65, 0.7)},
        "operating_point": {"accept_threshold": accept, "human_threshold": load_config(env={}).detector.human_threshold},
        "embedder": pipeline.embedder.identity,
    }
    if args.write:
        write(pipeline, model, summary)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    plot(summary, Path(args.plot or Path(args.json).with_suffix(".det.png")))
    for point in summary["det"][str(accept)]:
        print(json.dumps(point))
    return 0


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for accept, points in summary["det"].items():
        axes.plot([p["false_fit_all_variants"] + p["false_check_all_variants"] for p in points],
                  [1 - p["recall_fit_cv"] for p in points], marker=".", label=f"fused gate {accept}")
    axes.set_xlabel("false detections on animal/face-free photos (all variants)")
    axes.set_ylabel("human faces rejected (cross-validated)")
    axes.set_xscale("symlog")
    axes.grid(True, alpha=0.3)
    axes.legend()
    evaluate.save_figure(figure, path)


def write(pipeline: Pipeline, model: dict, summary: dict) -> None:
    evaluate.set_sface_entry(pipeline, "human_check", {
        "features": "SFace unit vector (128), log of its raw length, YuNet score, BlazeFace check score "
                    "(device/vision/human.py human_features)",
        "method": f"class-balanced logistic regression, L2 {summary['fit']['l2']}, standardised features "
                  "(tools/fit_human_check.py)",
        "fitted_on": f"{summary['fit']['human_candidates']} human and {summary['fit']['animal_candidates']} "
                     f"animal/face-free candidates from {summary['fit']['photos']} photos of ../shared/data "
                     "(human: deepface, face_recognition, liveness one-face photos and their variants; not human: "
                     "animals/*_oxfordpet.jpg, dlib dogs.jpg, noface/chelsea.png and their variants)",
        "embedder_precision": summary["embedder"]["precision"],
        "mean": [round(float(v), 6) for v in model["mean"]],
        "scale": [round(float(v), 6) for v in model["scale"]],
        "weights": [round(float(v), 6) for v in model["weights"]],
        "bias": round(float(model["bias"]), 6),
    })



if __name__ == "__main__":
    sys.exit(main())
