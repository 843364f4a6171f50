"""Contract 1 (multi-face extraction) on the live server: authkey tokens, every face cropped, errors."""
from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from tests.conftest import b64file

API_CONFIG = {"token_ttl_s": 10}


def token(api) -> str:
    status, body, _ = api.post("/userauthentication", None, {"apikey": api.key})
    assert status == 200, body
    assert body["respcode"] == "200" and body["respdesc"] == "success" and body["expires_in"] == 10
    return body["authkey"]


def test_userauthentication_header_and_body(api):
    assert token(api) != token(api)  # a new token each time
    status, body, _ = api.post("/userauthentication", {"apikey": api.key})
    assert status == 200 and isinstance(body["authkey"], str)
    status, body, _ = api.post("/userauthentication", None)
    assert (status, body["respcode"]) == (401, "401")
    status, body, _ = api.post("/userauthentication", None, {"apikey": "wrong"})
    assert (status, body["respcode"]) == (403, "403")


def test_extraction_every_face_by_confidence(api, faces_dir):
    image = faces_dir / "dlib/examples/faces/2008_002079.jpg"
    status, body, _ = api.post("/MultiFaceExtraction", {"rrn": "12321421", "image": b64file(image)},
                               {"apikey": "0", "authkey": token(api)})
    assert status == 200, body
    assert (body["respcode"], body["respdesc"], body["rrn"]) == ("200", "success", "12321421")
    import json

    detected = json.loads(api.faced("detect", "--json", "--no-attributes", str(image)).stdout)["faces"]
    assert len(body["data"]) == len(detected) >= 3
    confidences = [float(item["confidence"]) for item in body["data"]]
    assert all(isinstance(item["confidence"], str) for item in body["data"])
    assert confidences == sorted(confidences, reverse=True) and all(0 < c <= 1 for c in confidences)
    assert sorted(confidences) == sorted(f["score"] for f in detected) or \
        np.allclose(sorted(confidences), sorted(f["score"] for f in detected), atol=1e-4)
    for item in body["data"]:
        crop = Image.open(io.BytesIO(base64.b64decode(item["image"])))
        assert crop.format == "JPEG" and min(crop.size) >= 8


def test_errors(api, faces_dir):
    image = b64file(faces_dir / "face_recognition/examples/obama.jpg")
    authkey = token(api)
    for headers, status in (({"apikey": "0"}, 401), ({"apikey": "0", "authkey": "forged"}, 401),
                            ({"apikey": "wrong", "authkey": authkey}, 403)):
        got, body, _ = api.post("/MultiFaceExtraction", {"rrn": "7", "image": image}, headers)
        assert (got, body["respcode"]) == (status, str(status)), body
        assert body["respdesc"].startswith({401: "Unauthorized", 403: "Forbidden"}[status])
    headers = {"apikey": "0", "authkey": authkey}
    got, body, _ = api.post("/MultiFaceExtraction", {"rrn": "8"}, headers)
    assert (got, body["respcode"], body["rrn"]) == (400, "400", "8") and body["respdesc"].startswith("Bad Request")
    got, body, _ = api.post("/MultiFaceExtraction", {"rrn": "9", "image": "bm90IGFuIGltYWdl"}, headers)
    assert (got, body["respcode"], body["code"]) == (400, "400", "INVALID_IMAGE")
    got, body, _ = api.post("/MultiFaceExtraction", {"rrn": "9", "image": b64file(faces_dir / "noface/brick.png")},
                            headers)
    assert (got, body["respcode"], body["code"]) == (422, "422", "FACE_NOT_FOUND")


def test_authkey_expires(api, faces_dir):
    import time

    authkey = token(api)
    image = b64file(faces_dir / "face_recognition/examples/obama.jpg")
    assert api.post("/MultiFaceExtraction", {"rrn": "1", "image": image}, {"authkey": authkey})[0] == 200
    time.sleep(10.5)  # api.token_ttl_s = 10 for this module's server
    got, body, _ = api.post("/MultiFaceExtraction", {"rrn": "1", "image": image}, {"authkey": authkey})
    assert (got, body["respcode"], body["code"]) == (401, "401", "TOKEN_INVALID")
