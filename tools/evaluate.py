#!/usr/bin/env python3
"""Accuracy of faced's pipeline on labelled data: verification pairs, detection boxes, score calibration.

  tools/evaluate.py [--flip] [--eyes mesh] pairs PAIRS --images ROOT --json OUT [--face central|largest] [--cache NPZ]
      [--plot ROC.png]
  tools/evaluate.py onen LABELS_CSV --images ROOT --json OUT [--enrol 2] [--strangers 200] [--flip]
  tools/evaluate.py boxes XML [XML ...] [--ignore XML] [--negatives PATH ...] [--scale S ...] --json OUT
  tools/evaluate.py calibrate [--data ../shared/data | --labels CSV] [--write] --json OUT
  tools/evaluate.py liveness FOLDER_OR_CSV --json OUT [--plot DET.png]

Every rate is a fraction in [0, 1]. Images are read with faced's own decoder, so any format Pillow reads
(JPEG, PNG, WebP, ...) works whatever the file's name. See README "Evaluation".
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from device.config import load_config  # noqa: E402
from device.errors import FaceError, FacedError  # noqa: E402
from device.imaging import ImageLimits, read_image_file  # noqa: E402
from device.vision.calibration import FAR_KNOTS, score_for_far  # noqa: E402
from device.vision.face import Face  # noqa: E402
from device.vision.pipeline import Pipeline  # noqa: E402

FAR_LEVELS = {"1e-2": 1e-2, "1e-3": 1e-3, "1e-4": 1e-4}
# Image files inside the data folders; labels and checksums are not images.
# Unlabelled faces are named "anonymous:<group>:<n>": two of the same group are never paired (they may be
# the same person), while pairs with faces of other groups and labelled people are different-person pairs.
ANONYMOUS = "anonymous:"
NOT_IMAGES = {".csv", ".md", ".xml", ".txt", ".mp4", ".onnx"}


def shared_data_dir() -> Path:
    env = os.environ.get("FACED_TEST_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"


def make_pipeline(args) -> Pipeline:
    return Pipeline(load_config(getattr(args, "config", None), overrides=config_overrides(args)))


def config_overrides(args) -> dict:
    overrides = {}
    if getattr(args, "precision", None):
        overrides["embedder.precision"] = args.precision
    if getattr(args, "flip", None) is not None:
        overrides["embedder.flip"] = args.flip
    if getattr(args, "eyes", None):
        overrides["embedder.eyes"] = args.eyes
    if getattr(args, "detector_precision", None):
        overrides["detector.precision"] = args.detector_precision
    return overrides


def limits() -> ImageLimits:
    return ImageLimits(max_bytes=64 * 1024 * 1024, max_pixels=100_000_000)


# --------------------------------------------------------------------------------------------- pairs
def read_pairs(path: Path, root: Path) -> list[tuple[Path, Path, int]]:
    """LFW pairs.txt (3- and 4-field lines) or CSV path,path,same (header optional, read by position)."""
    return read_pairs_and_sets(path, root)[0]


def read_pairs_and_sets(path: Path, root: Path) -> tuple[list[tuple[Path, Path, int]], list[str] | None]:
    """The pairs and, when the file gives them, each pair's official set (the folds of LFW's protocol).

    LFW pairs.txt: the header `SETS<TAB>N` says the file is SETS sets of N matched then N mismatched pairs.
    CSV: a fourth column is the set (e.g. lfw-dev's path1,path2,same,set). None when no sets are given.
    """
    text = path.read_text(encoding="utf-8-sig")
    rows = [row for row in csv.reader(text.splitlines()) if row and any(cell.strip() for cell in row)]
    pairs, sets = [], []
    if len(rows[0]) >= 3:
        for row in rows:
            a, b, same = (cell.strip() for cell in row[:3])
            if same not in ("0", "1"):
                continue  # header
            pairs.append((root / a, root / b, int(same)))
            sets.append(row[3].strip() if len(row) >= 4 and row[3].strip() else None)
        return pairs, (sets if all(sets) and len(set(sets)) > 1 else None)
    lines = [line.split() for line in text.splitlines() if line.strip()]
    header = lines[0] if len(lines[0]) == 2 and all(f.isdigit() for f in lines[0]) else None
    for fields in lines:
        if len(fields) == 3:
            name, i, j = fields
            pairs.append((_lfw_path(root, name, i), _lfw_path(root, name, j), 1))
        elif len(fields) == 4:
            name_a, i, name_b, j = fields
            pairs.append((_lfw_path(root, name_a, i), _lfw_path(root, name_b, j), 0))
    if header and int(header[0]) > 1 and len(pairs) == int(header[0]) * 2 * int(header[1]):
        per_set = 2 * int(header[1])
        return pairs, [str(n // per_set + 1) for n in range(len(pairs))]
    return pairs, None


def _lfw_path(root: Path, name: str, number: str) -> Path:
    return root / name / f"{name}_{int(number):04d}.jpg"


def central_face(faces: list[Face], shape: tuple[int, ...]) -> Face:
    """The face whose box centre is nearest the image centre (LFW judges the person at the centre)."""
    centre = np.array([shape[1] / 2, shape[0] / 2])
    return min(faces, key=lambda f: float(np.hypot(*(np.array([f.box[0] + f.box[2] / 2,
                                                               f.box[1] + f.box[3] / 2]) - centre))))


def choose_face(faces: list[Face], shape: tuple[int, ...], choice: str) -> Face:
    """`largest`: the detector's first face (faces come largest first); `central`: see central_face."""
    return faces[0] if choice == "largest" else central_face(faces, shape)


class DetectionCache:
    """Detected boxes and landmarks per image in an .npz file, so that evaluating another embedder option
    (flip, precision) does not detect again. Keyed by the image path and the detector settings."""

    def __init__(self, path: str | None, pipeline: Pipeline):
        self.path = Path(path) if path else None
        self.key = json.dumps({k: getattr(pipeline.config.detector, k) for k in vars(pipeline.config.detector)},
                              sort_keys=True, default=str)
        self.entries: dict[str, list[tuple[list[float], list[float], float]]] = {}
        if self.path and self.path.exists():
            with np.load(self.path, allow_pickle=False) as data:
                if str(data["key"]) == self.key:
                    self.entries = json.loads(str(data["entries"]))
        self.dirty = False

    def faces(self, pipeline: Pipeline, path: Path, image: np.ndarray) -> list[Face]:
        if self.path is None:
            return pipeline.detect(image)
        cached = self.entries.get(str(path))
        if cached is None:
            faces = pipeline.detect(image)
            # The face check's eyes too: they set the face mesh's crop (embedder.eyes = "mesh").
            self.entries[str(path)] = [([float(v) for v in f.box], np.asarray(f.landmarks, float).ravel().tolist(),
                                        float(f.score), _listed(f.check_eyes)) for f in faces]
            self.dirty = True
            return faces
        return [Face(box=np.array(box, np.float32), landmarks=np.array(marks, np.float32).reshape(5, 2), score=score,
                     check_eyes=None if eyes is None else np.array(eyes, np.float32).reshape(2, 2))
                for box, marks, score, eyes in cached]

    def save(self) -> None:
        if self.path is not None and self.dirty:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(self.path, key=np.array(self.key), entries=np.array(json.dumps(self.entries)))


def _listed(points: np.ndarray | None) -> list[float] | None:
    return None if points is None else np.asarray(points, float).ravel().tolist()


def embed_images(pipeline: Pipeline, paths: list[Path], face: str = "largest", cache: DetectionCache | None = None
                 ) -> dict[Path, np.ndarray | None]:
    """Embedding of the chosen face (`largest` or `central`) of each image; None where no face was found."""
    embeddings = {}
    for path in tqdm(sorted(set(paths)), desc="embedding", unit="img", file=sys.stderr):
        try:
            image = read_image_file(str(path), limits())
            faces = cache.faces(pipeline, path, image) if cache else pipeline.detect(image)
            if not faces:
                raise FaceError("no face found in the image", "FACE_NOT_FOUND")
            embeddings[path] = pipeline.embed(image, [choose_face(faces, image.shape, face)])[0].embedding
        except FacedError as exc:
            tqdm.write(f"{path}: {exc.code}: {exc.message}", file=sys.stderr)
            embeddings[path] = None
    if cache:
        cache.save()
    return embeddings


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Probability that a same-person pair outscores a different-person pair (ties count half)."""
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    ranks[order] = np.arange(1, len(scores) + 1)
    for value in np.unique(sorted_scores):  # average ranks of ties
        tied = scores == value
        ranks[tied] = ranks[tied].mean()
    positives = labels == 1
    n_pos, n_neg = positives.sum(), (~positives).sum()
    if not n_pos or not n_neg:
        return float("nan")
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def tar_at_far(scores: np.ndarray, labels: np.ndarray, far: float) -> float | None:
    """True-accept rate at the threshold where the false-accept rate is `far`; None if unresolvable."""
    impostors = np.sort(scores[labels == 0])[::-1]
    if len(impostors) * far < 1:
        return None  # fewer than 1/far different-person pairs: this rate cannot be measured
    allowed = int(math.floor(len(impostors) * far))
    threshold = impostors[allowed] if allowed < len(impostors) else -np.inf
    return float(np.mean(scores[labels == 1] > threshold))


def kfold_accuracy(scores: np.ndarray, labels: np.ndarray, folds: int, seed: int = 0,
                   groups: list[str] | None = None) -> float:
    """Accuracy with the threshold chosen on k-1 folds and applied to the held-out fold (LFW protocol).

    With `groups` (each pair's official set), the folds are those sets; otherwise `folds` random folds.
    """
    if groups is not None:
        groups = np.asarray(groups)
        parts = [np.flatnonzero(groups == g) for g in sorted(set(groups.tolist()))]
    else:
        parts = np.array_split(np.random.default_rng(seed).permutation(len(scores)), folds)
    accuracies = []
    for k, test in enumerate(parts):
        train = np.concatenate([p for j, p in enumerate(parts) if j != k])
        threshold = _best_threshold(scores[train], labels[train])
        accuracies.append(np.mean((scores[test] >= threshold) == (labels[test] == 1)))
    return float(np.mean(accuracies))


def _best_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    candidates = np.unique(scores)
    accuracy = [np.mean((scores >= t) == (labels == 1)) for t in candidates]
    return float(candidates[int(np.argmax(accuracy))])


def cmd_pairs(args) -> dict:
    pipeline = make_pipeline(args)
    pairs, sets = read_pairs_and_sets(Path(args.pairs), Path(args.images))
    if not pairs:
        raise SystemExit(f"no pairs in {args.pairs}")
    cache = DetectionCache(args.cache, pipeline)
    embeddings = embed_images(pipeline, [p for a, b, _ in pairs for p in (a, b)], args.face, cache)
    scores, labels, failed = [], [], []
    for a, b, same in pairs:
        if embeddings[a] is None or embeddings[b] is None:
            failed.append({"a": str(a), "b": str(b), "same": same,
                           "missing": [str(p) for p in (a, b) if embeddings[p] is None]})
            score = 0.0  # no face: the pair cannot be accepted
        else:
            score = pipeline.calibration.score(float(np.dot(embeddings[a], embeddings[b])))
        scores.append(score)
        labels.append(same)
    scores, labels = np.array(scores), np.array(labels)
    threshold = pipeline.config.recognition.match_score
    folds = len(set(sets)) if sets else 10 if len(pairs) >= 100 else max(2, min(5, len(pairs) // 10))
    summary = {
        "pairs": len(pairs),
        "same_pairs": int(labels.sum()),
        "failed_detections": len(failed),
        "failed": failed,
        "accuracy": float(np.mean((scores >= threshold) == (labels == 1))),
        "kfold_accuracy": kfold_accuracy(scores, labels, folds, groups=sets),
        "folds": folds,
        "fold_source": "official sets" if sets else "random",
        "face": args.face,
        "auc": roc_auc(scores, labels),
        "tar_at_far": {name: tar_at_far(scores, labels, far) for name, far in FAR_LEVELS.items()},
        "threshold": threshold,
        "embedder": pipeline.embedder.identity,
    }
    if args.plot:
        plot_roc(scores, labels, Path(args.plot), title=Path(args.pairs).name)
        summary["plot"] = args.plot
    return summary


def plot_roc(scores: np.ndarray, labels: np.ndarray, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    thresholds = np.unique(scores)[::-1]
    far = [np.mean(scores[labels == 0] >= t) for t in thresholds]
    tar = [np.mean(scores[labels == 1] >= t) for t in thresholds]
    figure, axes = plt.subplots(figsize=(5, 4))
    axes.plot(np.maximum(far, 1e-5), tar, drawstyle="steps-post")
    axes.set_xscale("log")
    axes.set_xlabel("false accept rate")
    axes.set_ylabel("true accept rate")
    axes.set_title(f"ROC: {title} (AUC {roc_auc(scores, labels):.4f})")
    axes.grid(True, which="both", alpha=0.3)
    save_figure(figure, path)


# ---------------------------------------------------------------------------------------------- onen
def read_labels(path: Path, root: Path) -> tuple[dict[str, list[Path]], set[str]]:
    """identity -> its images (sorted) from a CSV path,identity[,...]; and the identities marked
    search_subset=1 (lfw-dev's 60 search identities; empty when the column is absent)."""
    people: dict[str, list[Path]] = {}
    marked = set()
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            people.setdefault(row["identity"], []).append(root / row["path"])
            if row.get("search_subset") == "1":
                marked.add(row["identity"])
    return {name: sorted(paths) for name, paths in people.items()}, marked


def onen_split(people: dict[str, list[Path]], marked: set[str], enrol: int, min_images: int, strangers: int
               ) -> tuple[dict[str, list[Path]], dict[str, list[Path]], list[tuple[str, Path]]]:
    """(enrolment photos, probe photos, stranger photos): the marked identities (or else every identity with
    >= min_images images) enrolled from their first `enrol` images and probed with the rest; strangers are
    single-image people, chosen by the sha256 of their name (a fixed pseudo-random pick)."""
    known = sorted(marked or {n for n, paths in people.items() if len(paths) >= min_images})
    singles = sorted((n for n, paths in people.items() if len(paths) == 1 and n not in known),
                     key=lambda n: hashlib.sha256(n.encode()).hexdigest())[:strangers]
    return ({n: people[n][:enrol] for n in known}, {n: people[n][enrol:] for n in known},
            [(n, people[n][0]) for n in singles])


def cmd_onen(args) -> dict:
    """1:N: enrol with `faced enroll` into a database in a temporary folder, then search each probe's face."""
    from device.engine import Engine

    people, marked = read_labels(Path(args.labels), Path(args.images))
    enrolment, probes, strangers = onen_split(people, marked, args.enrol, args.min_images, args.strangers)
    with tempfile.TemporaryDirectory(prefix="faced-onen-") as scratch:
        scratch = Path(scratch)
        db = scratch / "faced.db"
        env = dict(os.environ, **{f"FACED_{key.upper().replace('.', '_')}": str(value).lower()
                                  if isinstance(value, bool) else str(value)
                                  for key, value in config_overrides(args).items()})
        base = [sys.executable, "-m", "device.cli"] + (["--config", args.config] if args.config else []) + [
            "--db", str(db)]
        root = str(Path(__file__).resolve().parents[1])

        def faced(*command: str) -> str:
            done = subprocess.run(base + list(command), capture_output=True, text=True, env=env, cwd=root)
            if done.returncode != 0:
                raise SystemExit(f"faced {' '.join(command)} failed: {done.stderr.strip()}")
            return done.stdout

        faced("collections", "create", "onen")
        # As a user would: photos that `faced enroll` refuses (several faces, pose, inconsistent with the
        # person's other photos) are replaced by the person's next photo, keeping at least one to probe with.
        offered = {name: [] for name in enrolment}
        accepted = {name: 0 for name in enrolment}
        rejected = []
        for _ in range(1 + args.retries):
            short = [n for n in enrolment if accepted[n] < args.enrol
                     and len(offered[n]) < len(enrolment[n]) + len(probes[n]) - 1]
            if not short:
                break
            for name in short:  # links, not copies, of the enrolment photos
                pool = enrolment[name] + probes[name]
                more = pool[len(offered[name]):len(offered[name]) + (args.enrol - accepted[name]
                                                                       if offered[name] else args.enrol)]
                (scratch / "enrol" / name).mkdir(parents=True, exist_ok=True)
                for path in more:
                    (scratch / "enrol" / name / path.name).symlink_to(path.resolve())
                offered[name] += more
            result = json.loads(faced("enroll", str(scratch / "enrol"), "--collection", "onen", "--json"))
            for person in result["persons"]:
                accepted[person["person_name"]] += person["accepted"]
            rejected += result["rejected"]
            for refusal in result["rejected"]:  # a refused photo is taken out, not tried again
                Path(refusal["source"]).unlink(missing_ok=True)
        probes = {n: [p for p in enrolment[n] + probes[n] if p not in offered[n]] for n in enrolment}
        enrolled = {"accepted": sum(accepted.values()), "rejected": rejected,
                    "persons": [{"person_name": n, "person_id": n if accepted[n] else None} for n in enrolment]}
        overrides = dict(config_overrides(args), **{"store.db": str(db)})
        engine = Engine(load_config(args.config, overrides=overrides))
        threshold = engine.config.recognition.min_similarity_score
        enrolled_names = {p["person_name"] for p in enrolled["persons"] if p["person_id"]}

        def best(path: Path):
            image = read_image_file(str(path), limits())
            faces = engine.pipeline.detect(image)
            if not faces:
                return None
            face = choose_face(faces, image.shape, args.face)
            matches = engine.search("onen", image, min_score=0.0, max_results=1, faces=[face])[0].matches
            return (matches[0].person_name, matches[0].similarity_score) if matches else ("", 0.0)

        probe_rows, stranger_rows = [], []
        for name, paths in tqdm([(n, p) for n, ps in probes.items() for p in ps], desc="probes", file=sys.stderr):
            found = best(paths)
            probe_rows.append({"image": str(paths), "identity": name, "enrolled": name in enrolled_names,
                               "top": found[0] if found else None, "score": found[1] if found else None})
        for name, path in tqdm(strangers, desc="strangers", file=sys.stderr):
            found = best(path)
            stranger_rows.append({"image": str(path), "identity": name, "top": found[0] if found else None,
                                  "score": found[1] if found else None})
        engine.close()
    counted = [r for r in probe_rows if r["enrolled"]]
    rank1 = sum(r["top"] == r["identity"] for r in counted)
    identified = sum(r["top"] == r["identity"] and r["score"] >= threshold for r in counted)
    rejected = sum(r["score"] is None or r["score"] < threshold for r in stranger_rows)
    return {
        "identities": len(enrolment), "enrolled_persons": len(enrolled_names),
        "enrolment_photos": sum(len(p) for p in offered.values()), "enrolment_accepted": enrolled["accepted"],
        "enrolment_rejected": [dict(r, source=Path(r["source"]).name) for r in enrolled["rejected"]],
        "probes": len(counted), "probes_of_unenrolled": len(probe_rows) - len(counted),
        "rank1": rank1 / len(counted) if counted else None,
        "identified_at_threshold": identified / len(counted) if counted else None,
        "strangers": len(stranger_rows),
        "strangers_rejected": rejected / len(stranger_rows) if stranger_rows else None,
        "threshold": threshold, "face": args.face, "embedder": engine.pipeline.embedder.identity,
        "misses": [r for r in counted if r["top"] != r["identity"] or r["score"] < threshold],
        "strangers_accepted": [r for r in stranger_rows if r["score"] is not None and r["score"] >= threshold],
    }


# --------------------------------------------------------------------------------------------- boxes
@dataclass
class LabelBox:
    x: float
    y: float
    w: float
    h: float
    ignore: bool = False


def read_imglab(path: Path) -> dict[Path, list[LabelBox]]:
    """dlib imglab XML: <image file=...><box top left width height [ignore='1']/>; paths relative to XML."""
    images = {}
    for image in ET.parse(path).getroot().iter("image"):
        boxes = [LabelBox(float(b.get("left")), float(b.get("top")), float(b.get("width")),
                          float(b.get("height")), b.get("ignore", "0") == "1") for b in image.iter("box")]
        images[(path.parent / image.get("file")).resolve()] = boxes
    return images


def box_matches(det: np.ndarray, label: LabelBox, min_iou: float = 0.4) -> bool:
    """IoU >= min_iou, or the detection's centre inside the labelled box (labels are often tighter)."""
    x, y, w, h = (float(v) for v in det)
    ix = max(0.0, min(x + w, label.x + label.w) - max(x, label.x))
    iy = max(0.0, min(y + h, label.y + label.h) - max(y, label.y))
    inter = ix * iy
    iou = inter / max(w * h + label.w * label.h - inter, 1e-9)
    cx, cy = x + w / 2, y + h / 2
    return iou >= min_iou or (label.x <= cx <= label.x + label.w and label.y <= cy <= label.y + label.h)


def scaled(image: np.ndarray, scale: float) -> np.ndarray:
    """The photo resized by `scale` (area averaging when shrinking), as a smaller camera would see it."""
    if scale == 1.0:
        return image
    import cv2

    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


def scaled_boxes(boxes: list[LabelBox], scale: float) -> list[LabelBox]:
    return [LabelBox(b.x * scale, b.y * scale, b.w * scale, b.h * scale, b.ignore) for b in boxes]


def negative_images(sources: list[str]) -> list[Path]:
    """Image files of each --negatives argument (a folder's images, or one image file)."""
    paths = []
    for source in sources:
        source = Path(source)
        if source.is_dir():
            paths += sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() not in NOT_IMAGES)
        else:
            paths.append(source)
    return paths


MIN_COUNTED_PX = 20  # "faces >= 20 px": a labelled box at least this wide at the evaluated scale


def boxes_at_scale(pipeline: Pipeline, labelled: dict, ignored: dict, negatives: list[Path], scale: float) -> dict:
    found = found_min20 = labelled_min20 = false_detections = total = 0
    per_image = []
    for path in tqdm(sorted(labelled), desc=f"detecting x{scale:g}", unit="img", file=sys.stderr):
        faces = pipeline.detect(scaled(read_image_file(str(path), limits()), scale))
        targets = [b for b in scaled_boxes(labelled[path], scale) if not b.ignore]
        skip = [b for b in scaled_boxes(labelled[path], scale) if b.ignore] + scaled_boxes(ignored.get(path, []),
                                                                                           scale)
        used, false_here = set(), []
        for face in faces:
            match = next((i for i, b in enumerate(targets) if i not in used and box_matches(face.box, b)), None)
            if match is not None:
                used.add(match)
            elif not any(box_matches(face.box, b) for b in skip):
                false_here.append([round(float(v), 1) for v in face.box] + [round(face.score, 3)])
        false_detections += len(false_here)
        total += len(targets)
        found += len(used)
        labelled_min20 += sum(b.w >= MIN_COUNTED_PX for b in targets)
        found_min20 += sum(targets[i].w >= MIN_COUNTED_PX for i in used)
        missed = [[round(t.x, 1), round(t.y, 1), round(t.w, 1), round(t.h, 1)]
                  for i, t in enumerate(targets) if i not in used]
        per_image.append({"image": str(path), "labelled": len(targets), "found": len(used),
                          "detections": len(faces), "missed": missed, "false": false_here})
    results = []
    for path in tqdm(negatives, desc=f"negatives x{scale:g}", unit="img", file=sys.stderr):
        try:
            faces = pipeline.detect(scaled(read_image_file(str(path), limits()), scale))
        except FacedError:
            continue
        results.append({"image": str(path), "detections": len(faces),
                        "scores": [round(face.score, 3) for face in faces]})
    return {
        "scale": scale,
        "labelled": total,
        "found": found,
        "recall": found / total if total else None,
        "labelled_min20px": labelled_min20,
        "found_min20px": found_min20,
        "recall_min20px": found_min20 / labelled_min20 if labelled_min20 else None,
        "false_detections": false_detections,
        "false_on_negatives": sum(n["detections"] for n in results),
        "negative_images": len(results),
        "negative_images_with_detections": sum(1 for n in results if n["detections"]),
        "images": per_image,
        "negatives": results,
    }


def cmd_boxes(args) -> dict:
    """Recall on one or more imglab label files and false detections on face-free images, at each scale.

    With several scales the JSON holds one entry per scale under "scales"; the first scale's numbers are
    also at the top level (as with a single scale).
    """
    pipeline = make_pipeline(args)
    labelled: dict[Path, list[LabelBox]] = {}
    for xml in args.xml:
        for path, boxes in read_imglab(Path(xml)).items():
            labelled.setdefault(path, []).extend(boxes)
    ignored = read_imglab(Path(args.ignore)) if args.ignore else {}
    negatives = negative_images(args.negatives or [])
    per_scale = [boxes_at_scale(pipeline, labelled, ignored, negatives, scale) for scale in args.scale]
    summary = dict(per_scale[0])
    if len(per_scale) > 1:
        summary["scales"] = per_scale
    summary["detector"] = {key: getattr(pipeline.config.detector, key)
                           for key in vars(pipeline.config.detector)}
    return summary


# ----------------------------------------------------------------------------------------- calibrate
def shared_identities(data: Path) -> list[tuple[Path, str]]:
    """(image, identity) of every one-person photo in ../shared/data whose identity is known or distinct.

    deepface and face_recognition carry identity labels. The liveness photos (CelebA-Spoof, real and spoof)
    have no identity labels and neighbouring picks can show the same person, so they get identities marked
    ANONYMOUS: pairs among them are never used, pairs with the labelled people are (different people).
    """
    items = []
    faces = data / "faces"
    with open(faces / "deepface" / "labels.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get("prominent_faces", "1") == "1":
                items.append((faces / "deepface" / row["path"], "deepface:" + row["identity"]))
    seen = set()
    with open(faces / "face_recognition" / "labels.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            path = faces / "face_recognition" / row["path"]
            if row["faces_in_image"] != "1" or path.suffix.lower() in NOT_IMAGES:
                continue
            digest = path.read_bytes()
            if digest in seen:  # the same bytes under several names would be a fake genuine pair
                continue
            seen.add(digest)
            items.append((path, "fr:" + row["identities"]))
    for label in ("real", "spoof"):
        for path in sorted((faces / "liveness" / label).iterdir()):
            items.append((path, f"{ANONYMOUS}celeba:{path.stem}"))
    items.append((faces / "dlib" / "examples" / "faces" / "Tom_Cruise_avp_2014_4.jpg", "Tom Cruise"))
    return items


def labelled_group_faces(pipeline: Pipeline, data: Path) -> list[tuple[str, np.ndarray]]:
    """Embeddings of the labelled faces in the VOC group photos (each one a different person) and of the
    collage bald_guys.jpg (4 actors, several photos each: an anonymous group)."""
    result = []
    folder = data / "faces" / "dlib" / "examples" / "faces"
    collage = read_image_file(str(folder / "bald_guys.jpg"), limits())
    for number, face in enumerate(pipeline.analyze(collage)):
        result.append((f"{ANONYMOUS}bald_guys:{number}", face.embedding))
    for xml in ("training.xml", "testing.xml"):
        for path, boxes in read_imglab(folder / xml).items():
            image = read_image_file(str(path), limits())
            faces = pipeline.detect(image)
            for number, label in enumerate(boxes):
                match = next((f for f in faces if box_matches(f.box, label)), None)
                if match is not None:
                    pipeline.embed(image, [match])
                    result.append((f"voc:{path.name}:{number}", match.embedding))
    return result


def collect_embeddings(pipeline: Pipeline, args) -> list[tuple[str, np.ndarray]]:
    if args.labels:
        with open(args.labels, newline="") as handle:
            items = [(Path(row[0]), row[1]) for row in csv.reader(handle) if len(row) >= 2 and row[1]]
        items = [(p, i) for p, i in items if p.suffix.lower() not in NOT_IMAGES and p.exists()]
        extra = []
    else:
        data = Path(args.data)
        items = shared_identities(data)
        extra = labelled_group_faces(pipeline, data)
    embeddings = embed_images(pipeline, [p for p, _ in items])
    found = [(identity, embeddings[path]) for path, identity in items if embeddings[path] is not None]
    return found + extra


def fit_tail(impostor: np.ndarray) -> tuple[float, float]:
    """Normal model of the impostor tail, fitted by regression on empirical quantiles for FAR 0.1..1e-3.

    Fitting the upper tail (not the whole distribution) follows the tail's own spread, which is what the
    false-accept rates at 1e-4 and beyond depend on.
    """
    levels = [p for p in np.logspace(-1, -3, 9) if p * len(impostor) >= 10]
    z = np.array([NormalDist().inv_cdf(1 - p) for p in levels])
    q = np.array([np.quantile(impostor, 1 - p) for p in levels])
    sigma, mu = np.polyfit(z, q, 1)
    return float(mu), float(sigma)


def knots_from_fit(mu: float, sigma: float) -> tuple[list[float], list[float]]:
    cosines = [-1.0] + [mu + sigma * NormalDist().inv_cdf(1 - far) for far in FAR_KNOTS] + [1.0]
    scores = [0.0] + [round(score_for_far(far), 6) for far in FAR_KNOTS] + [1.0]
    return [round(c, 6) for c in cosines], scores


def _same_anonymous_group(a: str, b: str) -> bool:
    return a.startswith(ANONYMOUS) and b.startswith(ANONYMOUS) and a.split(":")[1] == b.split(":")[1]


def pair_cosines(items: list[tuple[str, np.ndarray]], keep) -> tuple[np.ndarray, np.ndarray]:
    """Cosines of the pairs (a, b) for which keep(a, b) is true, split into (genuine, impostor)."""
    vectors = np.stack([v for _, v in items])
    identities = [i for i, _ in items]
    sims = vectors @ vectors.T
    genuine, impostor = [], []
    for a in range(len(items)):
        for b in range(a + 1, len(items)):
            if _same_anonymous_group(identities[a], identities[b]):
                continue  # unknown whether these are the same person
            if keep(a, b):
                (genuine if identities[a] == identities[b] else impostor).append(sims[a, b])
    return np.array(genuine), np.array(impostor)


def cmd_calibrate(args) -> dict:
    pipeline = make_pipeline(args)
    items = collect_embeddings(pipeline, args)
    identities = sorted({i for i, _ in items})
    random.Random(args.seed).shuffle(identities)
    fit_ids = set(identities[: len(identities) // 2])
    fit_index = {n for n, (i, _) in enumerate(items) if i in fit_ids}
    # Fit on pairs of fit-half identities only; check on every pair with a member outside that half.
    fit_genuine, fit_impostor = pair_cosines(items, lambda a, b: a in fit_index and b in fit_index)
    check_genuine, check_impostor = pair_cosines(items, lambda a, b: not (a in fit_index and b in fit_index))
    mu, sigma = fit_tail(fit_impostor)
    cosines, scores = knots_from_fit(mu, sigma)

    def rates(genuine, impostor, score):
        cos_t = float(np.interp(score, scores, cosines))
        return {"score": score, "cosine": round(cos_t, 4),
                "far_per_pair": float(np.mean(impostor >= cos_t)) if len(impostor) else None,
                "far_expected": round(10 ** (-(score - 0.3) / 0.1), 8),
                "tar": float(np.mean(genuine >= cos_t)) if len(genuine) else None}

    check = [rates(check_genuine, check_impostor, s) for s in (0.5, 0.6, 0.7)]
    for row in check:
        row["far_per_search"] = {str(g): round(1 - (1 - row["far_expected"]) ** g, 5) for g in (10, 100, 1000,
                                                                                                   10000)}
    summary = {
        "faces": len(items),
        "identities": len(identities),
        "fit": {"identities": len(fit_ids), "impostor_pairs": len(fit_impostor),
                "genuine_pairs": len(fit_genuine), "tail_mu": round(mu, 6), "tail_sigma": round(sigma, 6)},
        "check": {"impostor_pairs": len(check_impostor), "genuine_pairs": len(check_genuine),
                  "operating_points": check},
        "calibration": {"cosine": cosines, "score": scores},
        "embedder": pipeline.embedder.identity,
    }
    if args.write:
        write_calibration(pipeline, summary)
    return summary


def save_figure(figure, path: Path) -> None:
    """Write a plot as PNG (its folder made) and free it."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def set_sface_entry(pipeline: Pipeline, key: str, value: dict) -> None:
    """Write models/manifest.toml with [sface.<key>] replaced by `value` (calibration, human check)."""
    import tomli_w

    try:
        import tomllib
    except ModuleNotFoundError:
        import tomli as tomllib
    path = pipeline.manifest.dir / "manifest.toml"
    with open(path, "rb") as handle:
        manifest = tomllib.load(handle)
    manifest["sface"][key] = value
    with open(path, "wb") as handle:
        tomli_w.dump(manifest, handle)


def write_calibration(pipeline: Pipeline, summary: dict) -> None:
    set_sface_entry(pipeline, "calibration", {
        "cosine": summary["calibration"]["cosine"],
        "score": summary["calibration"]["score"],
        "method": "normal model of the different-person cosine tail, fitted on empirical quantiles "
                  "(FAR 1e-1..1e-3); score = 0.3 + 0.1 * -log10(FAR per pair)",
        "fitted_on": f"{summary['fit']['impostor_pairs']} different-person pairs of "
                     f"{summary['fit']['identities']} identities (../shared/data)",
        "checked_on": f"{summary['check']['impostor_pairs']} different-person and "
                      f"{summary['check']['genuine_pairs']} same-person pairs not used for fitting",
        "check": summary["check"]["operating_points"],
        "embedder_precision": summary["embedder"]["precision"],
    })



# ------------------------------------------------------------------------------------------ liveness
LIVE_LABELS = {"real", "live", "1", "true", "bona fide", "bonafide"}
ATTACK_LABELS = {"spoof", "fake", "attack", "0", "false"}


def read_liveness_set(source: Path) -> list[tuple[Path, bool]]:
    """(image, is_live) from a folder with real/ and fake/ or spoof/ subfolders, or a CSV path,label (read by
    position, header optional, paths relative to the CSV)."""
    if source.is_dir():
        items = []
        for folder, live in (("real", True), ("live", True), ("fake", False), ("spoof", False)):
            if (source / folder).is_dir():
                items += [(p, live) for p in sorted((source / folder).iterdir())
                          if p.is_file() and p.suffix.lower() not in NOT_IMAGES]
        if not items:
            raise SystemExit(f"{source} has no real/ and fake/ or spoof/ subfolders with images")
        return items
    items = []
    with open(source, newline="") as handle:
        for row in csv.reader(handle):
            if len(row) < 2:
                continue
            label = row[1].strip().lower()
            if label in LIVE_LABELS or label in ATTACK_LABELS:
                items.append((source.parent / row[0].strip(), label in LIVE_LABELS))
    return items


def error_rates(scores: np.ndarray, live: np.ndarray, threshold: float) -> tuple[float, float]:
    """(APCER, BPCER) at `threshold`: attacks accepted as live, live faces rejected."""
    accepted = scores >= threshold
    apcer = float(np.mean(accepted[~live])) if (~live).any() else float("nan")
    bpcer = float(np.mean(~accepted[live])) if live.any() else float("nan")
    return apcer, bpcer


def equal_error_threshold(scores: np.ndarray, live: np.ndarray) -> tuple[float, float]:
    """The threshold where APCER and BPCER are closest, and their mean there."""
    best = (float("inf"), 0.5, 0.0)
    for threshold in np.unique(np.r_[scores, 1.0]):
        apcer, bpcer = error_rates(scores, live, threshold)
        gap = abs(apcer - bpcer)
        if gap < best[0]:
            best = (gap, float(threshold), (apcer + bpcer) / 2)
    return best[1], best[2]


def cmd_liveness(args) -> dict:
    pipeline = make_pipeline(args)
    items = read_liveness_set(Path(args.source))
    threshold = pipeline.config.liveness.threshold
    rows, no_face = [], 0
    for path, live in tqdm(items, desc="liveness", unit="img", file=sys.stderr):
        row = {"image": str(path), "live": live}
        try:
            image = read_image_file(str(path), limits())
            faces = pipeline.detect(image)
        except FacedError as exc:
            faces, row["error"] = [], exc.code
        if not faces:
            no_face += 1
            row.update(score=None, accepted=False, codes=["FACE_NOT_FOUND"])
        else:
            result = pipeline.add_liveness(image, faces[:1])[0].liveness  # the largest face
            row.update(score=result["score"], accepted=result["live"], codes=result["codes"])
        rows.append(row)
    # An image without a usable face is rejected: score 0 for the error rates and the curve.
    scores = np.array([r["score"] if r["score"] is not None else 0.0 for r in rows])
    live = np.array([r["live"] for r in rows])
    apcer, bpcer = error_rates(scores, live, threshold)
    eer_threshold, eer = equal_error_threshold(scores, live)
    summary = {"images": len(rows), "live_images": int(live.sum()), "attack_images": int((~live).sum()),
               "no_face": no_face, "apcer": apcer, "bpcer": bpcer, "acer": (apcer + bpcer) / 2,
               "threshold": threshold, "eer_threshold": eer_threshold, "eer": eer,
               "gated": sum(1 for r in rows if r["score"] is None and r["codes"] != ["FACE_NOT_FOUND"]),
               "models": pipeline.liveness.identity, "results": rows}
    if args.plot:
        plot_det(scores, live, Path(args.plot), threshold)
        summary["plot"] = args.plot
    return summary


def plot_det(scores: np.ndarray, live: np.ndarray, path: Path, threshold: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    thresholds = np.unique(np.r_[0.0, scores, 1.0 + 1e-9])
    rates = np.array([error_rates(scores, live, t) for t in thresholds])
    figure, axes = plt.subplots(figsize=(5, 4))
    axes.plot(rates[:, 0], rates[:, 1], drawstyle="steps-post", label="DET")
    at = error_rates(scores, live, threshold)
    axes.plot([at[0]], [at[1]], "o", label=f"threshold {threshold}")
    axes.set_xlabel("APCER (attacks accepted)")
    axes.set_ylabel("BPCER (live faces rejected)")
    axes.set_xlim(-0.02, 1.02)
    axes.set_ylim(-0.02, 1.02)
    axes.grid(True, alpha=0.3)
    axes.legend()
    save_figure(figure, path)


# ------------------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="faced config file")
    parser.add_argument("--precision", help="embedder precision (default: the manifest's)")
    parser.add_argument("--detector-precision", help="detector precision (default: the manifest's)")
    parser.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                        help="embedder.flip: average the face's and its mirror's embeddings (default: config's)")
    parser.add_argument("--eyes", choices=("detector", "mesh"),
                        help="embedder.eyes: align on the detector's or the face mesh's eyes (default: config's)")
    commands = parser.add_subparsers(dest="command", required=True)
    pairs = commands.add_parser("pairs", help="verification accuracy on a pairs file")
    pairs.add_argument("pairs")
    pairs.add_argument("--images", required=True, help="folder the pair paths are relative to")
    pairs.add_argument("--face", choices=("central", "largest"), default="central",
                       help="which face of an image: nearest the image centre (LFW's protocol; default) or largest")
    pairs.add_argument("--cache", help="npz file of detections, reused by later runs with other embedder options")
    pairs.add_argument("--plot", help="ROC plot PNG (default: next to --json)")
    pairs.add_argument("--json", required=True)
    onen = commands.add_parser("onen", help="1:N search: enrol with `faced enroll`, probe, count strangers")
    onen.add_argument("labels", help="CSV path,identity[,search_subset] (e.g. lfw-dev's labels.csv)")
    onen.add_argument("--images", required=True, help="folder the label paths are relative to")
    onen.add_argument("--enrol", type=int, default=2, help="photos enrolled per person (default 2)")
    onen.add_argument("--min-images", type=int, default=5,
                      help="people searched when the CSV marks none: those with this many images (default 5)")
    onen.add_argument("--retries", type=int, default=3,
                      help="rounds that replace refused enrolment photos by the person's next ones (default 3)")
    onen.add_argument("--strangers", type=int, default=200, help="single-image people searched as strangers")
    onen.add_argument("--face", choices=("central", "largest"), default="central")
    onen.add_argument("--json", required=True)
    boxes = commands.add_parser("boxes", help="detection recall and false detections")
    boxes.add_argument("xml", nargs="+", help="imglab XML label files (their images are merged)")
    boxes.add_argument("--ignore", help="imglab XML of boxes to ignore")
    boxes.add_argument("--negatives", nargs="+", metavar="PATH",
                       help="folders or image files without faces (every detection on them is false)")
    boxes.add_argument("--scale", nargs="+", type=float, default=[1.0],
                       help="resize photos and labels by each factor (default 1.0); faces >= 20 px are "
                            "counted at each scale")
    boxes.add_argument("--json", required=True)
    calibrate = commands.add_parser("calibrate", help="fit and check the cosine -> score calibration")
    calibrate.add_argument("--data", default=str(shared_data_dir()))
    calibrate.add_argument("--labels", help="CSV path,identity instead of ../shared/data")
    calibrate.add_argument("--seed", type=int, default=0)
    calibrate.add_argument("--write", action="store_true", help="store the fit in models/manifest.toml")
    calibrate.add_argument("--json", required=True)
    liveness = commands.add_parser("liveness", help="APCER, BPCER and ACER on real and spoof images")
    liveness.add_argument("source", help="folder with real/ and fake/ (or spoof/) subfolders, or CSV path,label")
    liveness.add_argument("--plot", help="DET plot PNG (default: next to --json)")
    liveness.add_argument("--json", required=True)
    args = parser.parse_args(argv)
    if args.command in ("pairs", "liveness") and not args.plot:
        args.plot = str(Path(args.json).with_suffix(".roc.png" if args.command == "pairs" else ".det.png"))
    handler = {"pairs": cmd_pairs, "onen": cmd_onen, "boxes": cmd_boxes, "calibrate": cmd_calibrate,
               "liveness": cmd_liveness}[args.command]
    summary = handler(args)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    brief = {k: v for k, v in summary.items() if not isinstance(v, list)}
    if "scales" in summary:
        brief["scales"] = [{k: v for k, v in item.items() if not isinstance(v, list)} for item in summary["scales"]]
    print(json.dumps(brief, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
