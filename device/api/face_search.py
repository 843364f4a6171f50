"""Contract 2: 1:N (POST /face-search) and N:N (POST /multi-face-search) search, `x-api-key`.

Answers are those of `faced search --json` (the same Engine.search, the same calibrated scores and the same
thumbnails). Scores: 0..1, calibrated so that 0.7 (the default min_similarity_score, recognition
.min_similarity_score) is a per-pair false-accept rate of about 1e-4 and 0.6 about 1e-3 (README "Scores").

Decisions where the contract is loose:
- Only collection_name and the image are required; max_results defaults to 1 (1..100), min_similarity_score
  to 0.7 (0..1; the contract's "default: 0.8" in one sentence is overridden by its own field table),
  check_liveness to false.
- 1:N takes one face: FACE_NOT_FOUND -> ERR_FACE_NOT_DETECTED; several faces -> ERR_TOO_MANY_FACES (with
  check_liveness: ERR_LIVENESS_ERROR, metadata.code TOO_MANY_FACES). An unknown face is `[]` (200).
- check_liveness: the quality gates then passive liveness; the first code in device/vision/quality.CODE_ORDER
  wins (FACE_CROPPED, FACE_TOO_SMALL, FACE_TOO_CLOSE, FACE_ANGLE_TOO_LARGE, EYES_CLOSED, FACE_LOW_CONFIDENCE,
  FACE_BOX_DEGENERATE, and only then FACE_NOT_LIVE): a score is never given for a face it cannot be trusted on.
- face_base_64 in each result is the searched face's aligned 112x112 crop (JPEG), as in `faced search`.
- N:N returns every detected face once with max_results 1 (the default): matched faces in
  person_search_results (highest score first), the others' thumbnails in unrecognized_face_thumbnails_base_64.
  An image without a face is ERR_FACE_NOT_DETECTED (422).
"""
from __future__ import annotations

from ..engine import MAX_RESULTS_LIMIT
from ..errors import FaceError
from . import auth
from .faces import thumbnail_b64
from .http import Call, Router

SHAPE = "contract2"


def match_json(match, thumbnail: str) -> dict:
    return {"person_id": match.person_id, "person_name": match.person_name, "metadata": match.metadata,
            "face_base_64": thumbnail, "similarity_score": round(match.similarity_score, 4)}


def search_options(call: Call) -> tuple[float, int]:
    default = call.engine.config.recognition.min_similarity_score
    return (call.field("min_similarity_score", "number", default=default, lo=0.0, hi=1.0),
            call.field("max_results", "integer", default=1, lo=1, hi=MAX_RESULTS_LIMIT))


def register(router: Router) -> None:
    @router.route("POST", "/face-search", shape=SHAPE, credential=auth.X_API_KEY, pooled=True, body=True)
    def face_search(call: Call):
        collection = call.field("collection_name", "string", required=True)
        liveness = call.field("check_liveness", "boolean", default=False)
        call.echo["check_liveness"] = liveness
        min_score, max_results = search_options(call)
        call.engine.collection(collection)  # an unknown collection is ERR_NOT_FOUND before any image work
        image = call.image("face_base_64")
        recognition = call.engine.search_one(collection, image, min_score, max_results, liveness=liveness)
        call.faces = 1
        thumbnail = thumbnail_b64(recognition.face)
        return [match_json(match, thumbnail) for match in recognition.matches]

    @router.route("POST", "/multi-face-search", shape=SHAPE, credential=auth.X_API_KEY, pooled=True, body=True)
    def multi_face_search(call: Call):
        collection = call.field("collection_name", "string", required=True)
        min_score, max_results = search_options(call)
        call.engine.collection(collection)
        image = call.image("multi_face_img_base_64")
        recognitions = call.engine.search(collection, image, min_score, max_results)
        call.faces = len(recognitions)
        if not recognitions:
            raise FaceError("no face was found in the image", "FACE_NOT_FOUND")
        results, unknown = [], []
        for recognition in recognitions:
            thumbnail = thumbnail_b64(recognition.face)
            if not recognition.known:
                unknown.append(thumbnail)
            results += [match_json(match, thumbnail) for match in recognition.matches]
        results.sort(key=lambda r: -r["similarity_score"])
        return {"person_search_results": results, "unrecognized_face_thumbnails_base_64": unknown}
