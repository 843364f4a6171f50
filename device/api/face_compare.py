"""Contract 5: 1:1 face comparison (POST /face/verify), `Subscriptionkey`.

Decisions where the contract is loose:
- matchResult is 1 when the calibrated score reaches recognition.match_score (0.6, "score > 60" in the
  contract's words: a per-pair false-accept rate of about 1e-3), else 0; `confidence` (added) is that score
  x 100, the same number `faced compare --json` gives as `score`.
- The source face is image 1's highest-quality face, compared with every face of image 2, best score first;
  with compareAllFaces every face of image 1 is compared with every face of image 2.
- quality: faced's 0-100 quality score (size, pose, sharpness, exposure, visibility) clipped to 1..100.
- qualityThreshold (21..100): faces below it take no part; an image left without a face answers 422
  FACE_QUALITY_TOO_LOW. Without qualityThreshold no face is left out for quality.
- faceRectangle: the detector box in whole pixels; points: the box turned about its centre by the angle of
  the face mesh's eye line, in the order top-left, top-right, bottom-left, bottom-right of the upright face
  (the example's order).
- Errors (the contract shows none): {"errorCode": faced's code, "errorMessage"} with the code's HTTP status;
  an image without a face is 422 FACE_NOT_FOUND (errorMessage names encoded_image1 or encoded_image2).
"""
from __future__ import annotations

from ..errors import FaceError
from . import auth
from .faces import int_box, rotated_corners
from .http import Call, Router

SHAPE = "contract5"


def quality_of(face) -> float:
    return float(min(100.0, max(1.0, face.quality.score)))


def face_json(face) -> dict:
    x, y, w, h = int_box(face)
    return {"faceRectangle": {"x": x, "y": y, "height": h, "width": w},
            "points": [{"x": round(px, 4), "y": round(py, 4)} for px, py in rotated_corners(face)],
            "quality": quality_of(face)}


def register(router: Router) -> None:
    @router.route("POST", "/face/verify", shape=SHAPE, credential=auth.SUBSCRIPTION, pooled=True, body=True)
    def verify(call: Call):
        compare_all = call.field("compareAllFaces", "boolean", default=False)
        threshold = call.field("qualityThreshold", "integer", lo=21, hi=100)
        engine = call.engine
        chosen = []
        for name in ("encoded_image1", "encoded_image2"):
            image = call.image(name)
            faces = engine.detect(image, embed=True)
            call.faces += len(faces)
            if not faces:
                raise FaceError(f"{name}: no face was found in the image", "FACE_NOT_FOUND")
            if threshold is not None:
                faces = [face for face in faces if quality_of(face) >= threshold]
                if not faces:
                    raise FaceError(f"{name}: no face reaches the quality threshold {threshold}",
                                    "FACE_QUALITY_TOO_LOW")
            chosen.append(faces)
        sources, targets = chosen
        if not compare_all:
            sources = [max(sources, key=quality_of)]
        pairs = []
        for source in sources:
            for target in targets:
                result = engine.compare_faces(source, target)
                pairs.append((result.score, {"matchResult": int(result.same),
                                             "confidence": round(result.score * 100, 2),
                                             "image1_face": face_json(source), "image2_face": face_json(target)}))
        pairs.sort(key=lambda pair: -pair[0])
        return {"matchedFaces": [entry for _, entry in pairs]}
