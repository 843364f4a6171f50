"""Contract 3: face detection with attributes (POST /api/v1/face/detect), `Authorization: Basic`
(user = the key's name, password = the key).

Decisions where the contract is loose:
- One face is required: none -> FACE_NOT_FOUND, more than one -> TOO_MANY_FACES (both listed by the contract).
- A face on which passive liveness cannot be trusted answers hasError with the first quality code of
  device/vision/quality.CODE_ORDER among the liveness gates (FACE_CROPPED, FACE_TOO_SMALL, FACE_TOO_CLOSE,
  FACE_ANGLE_TOO_LARGE, EYES_CLOSED, FACE_LOW_CONFIDENCE, FACE_BOX_DEGENERATE): faced never invents a score.
  Codes that do not stop the score (FACE_CLOSE_TO_BORDER, FACE_IS_OCCLUDED) are listed in face.qualityCodes.
- passiveLivenessScore: the fused MiniFASNet score, 0..1, higher = more live; the threshold is
  liveness.threshold (0.5, the contract's default). face.live says which side of it the score is.
- rectangle: the example's keys (top, left, width, height) and the table's (right, bottom), whole pixels.
- gender: an integer from -10000 (certainly male) to 10000 (certainly female): 10000 x (P(female) -
  P(male)); the sign is the decision, the size the confidence. age: whole years.
- faceImageBase (inside `face`, where the example puts it): the face box cut from the image, JPEG base64,
  only with returnFaceImage true.
- faceImageBase in the request: base64, a data URI, or an http(s) URL fetched by the allow-listed fetcher
  (device/api/fetch.py; off by default: URL_INPUT_DISABLED).
"""
from __future__ import annotations

from ..errors import FaceError, FacedError
from ..vision import quality as q
from . import auth
from .faces import b64, crop_jpeg, int_box
from .http import Call, Router

SHAPE = "contract3"


def is_url(text) -> bool:
    return isinstance(text, str) and text.strip().lower().startswith(("http://", "https://"))


def fetch_image(call: Call, url: str):
    """faceImageBase given as a URL: the allow-listed fetcher (device/api/fetch.py); an image only."""
    fetched = call.state.fetcher.fetch(url.strip())
    if fetched.kind != "image":
        raise FacedError("the URL gives a video; this endpoint takes an image", "URL_CONTENT_REFUSED")
    return call.engine.decode(fetched.data)


def gender_value(face) -> int:
    if face.gender is None or face.gender_confidence is None:
        return 0
    signed = face.gender_confidence if face.gender == "female" else -face.gender_confidence
    return int(round(10000 * (2 * signed - (1 if signed > 0 else -1))))


def register(router: Router) -> None:
    @router.route("POST", "/api/v1/face/detect", shape=SHAPE, credential=auth.BASIC, pooled=True, body=True,
                  echo=("sessionId",))
    def detect(call: Call):
        session = call.field("sessionId", "string")
        return_image = call.field("returnFaceImage", "boolean", default=False)
        if is_url(call.body.get("faceImageBase")):
            image = fetch_image(call, call.body["faceImageBase"])
        else:
            image = call.image("faceImageBase")
        engine = call.engine
        faces = engine.detect(image)
        call.faces = len(faces)
        codes = q.image_codes(faces, one_face_required=True)
        if codes:
            raise FaceError(f"{len(faces)} faces found; this endpoint takes an image of one face" if faces
                            else "no face was found in the image", codes[0])
        face = engine.describe(image, faces, attributes=True, liveness=True)[0]
        if face.liveness["score"] is None:
            code = face.liveness["codes"][0]
            raise FaceError(f"the face cannot be judged: {', '.join(face.liveness['codes'])}", code)
        x, y, w, h = int_box(face)
        result = {"age": int(round(face.age)), "gender": gender_value(face),
                  "passiveLivenessScore": face.liveness["score"], "live": face.liveness["live"],
                  "rectangle": {"top": y, "left": x, "width": w, "height": h, "right": x + w, "bottom": y + h},
                  "qualityCodes": [c for c in face.quality.codes]}
        if return_image:
            result["faceImageBase"] = b64(crop_jpeg(image, face))
        return {"sessionId": session, "hasError": False, "face": result}
