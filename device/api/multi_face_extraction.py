"""Contract 1: multi-face extraction (POST /MultiFaceExtraction) and its token endpoint
(POST /userauthentication, which the contract names but does not show).

- /userauthentication takes a key in the `apikey` header (or a JSON body {"apikey": KEY}) and answers
  {"respcode": "200", "respdesc": "success", "authkey": TOKEN, "expires_in": api.token_ttl_s}.
- /MultiFaceExtraction takes the token in `authkey`. The contract's `apikey` header ("0" = no encryption)
  is accepted as "0", absent, or the key that obtained the token; faced never encrypts payloads.
- Every face is returned, cut from the image along its detector box (no margin) as a JPEG in base64, with
  the detector's confidence as a string, highest confidence first. No face: 422 FACE_NOT_FOUND.
- Errors: {"respcode": "<HTTP status>", "respdesc": "<reason> - <message>", "rrn", "code"}; an invalid or
  expired authkey is 401 with respcode "401".
"""
from __future__ import annotations

from ..errors import FaceError
from . import auth
from .faces import b64, crop_jpeg
from .http import Call, Router

SHAPE = "contract1"


def register(router: Router) -> None:
    @router.route("POST", "/userauthentication", shape=SHAPE, credential=auth.OPEN, body="optional")
    def userauthentication(call: Call):
        presented = (call.headers.get("apikey") or "").strip()
        if not presented:
            presented = call.field("apikey", "string") or ""
        if not presented.strip():
            raise auth.missing("the apikey header (or a JSON body {\"apikey\": KEY})")
        name = call.state.auth.key(presented.strip())
        tokens = call.state.tokens
        return {"respcode": "200", "respdesc": "success", "authkey": tokens.issue(name), "expires_in": tokens.ttl_s}

    @router.route("POST", "/MultiFaceExtraction", shape=SHAPE, credential=auth.AUTHKEY, pooled=True, body=True,
                  echo=("rrn",))
    def multi_face_extraction(call: Call):
        rrn = call.field("rrn", "string", required=True)
        image = call.image("image")
        faces = call.engine.detect(image, mesh=False)
        call.faces = len(faces)
        if not faces:
            raise FaceError("no face was found in the image", "FACE_NOT_FOUND")
        faces.sort(key=lambda face: -face.score)
        return {"respcode": "200", "respdesc": "success", "rrn": rrn,
                "data": [{"confidence": str(float(face.score)), "image": b64(crop_jpeg(image, face))}
                         for face in faces]}
