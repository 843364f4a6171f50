"""Contract 3 (detect + attributes, Basic auth) on the live server."""
from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image

from tests.conftest import b64file


def basic(name: str, key: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{key}".encode()).decode()}


def detect(api, image, headers=None, **fields):
    body = {"sessionId": "bbbf9002-c3a2-4308-b103-d80b9f5a2b84", "faceImageBase": b64file(image), **fields}
    return api.post("/api/v1/face/detect", body, headers if headers is not None else basic(api.key_name, api.key))


def threshold(api) -> float:
    doc = api.get("/openapi.json", {"x-api-key": api.key})[1]
    text = doc["components"]["schemas"]["DetectAttributesResponse"]["properties"]["face"]["properties"][
        "passiveLivenessScore"]["description"]
    return float(text.split("threshold ")[1].split()[0])


def test_success_fields(api, faces_dir):
    image = faces_dir / "face_recognition/examples/obama.jpg"
    status, body, _ = detect(api, image, returnFaceImage=True)
    assert status == 200, body
    assert body["sessionId"] == "bbbf9002-c3a2-4308-b103-d80b9f5a2b84" and body["hasError"] is False
    face = body["face"]
    assert isinstance(face["age"], int) and 20 <= face["age"] <= 80
    assert isinstance(face["gender"], int) and -10000 <= face["gender"] < 0  # male
    assert 0 <= face["passiveLivenessScore"] <= 1
    rect = face["rectangle"]
    cli = json.loads(api.faced("detect", "--json", str(image)).stdout)["faces"][0]
    x, y, w, h = cli["box"]
    assert (rect["left"], rect["top"], rect["width"], rect["height"]) == tuple(round(v) for v in (x, y, w, h))
    assert rect["right"] == rect["left"] + rect["width"] and rect["bottom"] == rect["top"] + rect["height"]
    assert face["age"] == cli["age"]
    crop = Image.open(io.BytesIO(base64.b64decode(face["faceImageBase"])))
    assert crop.format == "JPEG" and abs(crop.size[0] - w) <= 2
    status, body, _ = detect(api, image)
    assert "faceImageBase" not in body["face"]


@pytest.mark.parametrize("name,live", [("image_T1.jpg", True), ("image_F1.jpg", False), ("image_F2.jpg", False)])
def test_passive_liveness_against_documented_threshold(api, faces_dir, name, live):
    status, body, _ = detect(api, faces_dir / "silent-face/images/sample" / name)
    assert status == 200, body
    score = body["face"]["passiveLivenessScore"]
    assert (score >= threshold(api)) is live and body["face"]["live"] is live


def test_errors(api, faces_dir):
    obama = faces_dir / "face_recognition/examples/obama.jpg"
    cases = [
        ({}, 401, "API_KEY_MISSING"),
        ({"Authorization": "Bearer " + api.key}, 401, "API_KEY_MISSING"),
        (basic(api.key_name, "wrong"), 403, "API_KEY_INVALID"),
        (basic("someone-else", api.key), 403, "API_KEY_INVALID"),
    ]
    for headers, status, code in cases:
        got, body, response_headers = detect(api, obama, headers)
        assert (got, body["hasError"], body["error"]) == (status, True, code)
        assert body["sessionId"] is None  # the body of a refused request is not read
        if status == 401:
            assert response_headers.get("WWW-Authenticate", "").startswith("Basic")
    got, body, _ = detect(api, faces_dir / "noface/brick.png")
    assert (got, body["hasError"], body["error"], body["sessionId"]) == \
        (422, True, "FACE_NOT_FOUND", "bbbf9002-c3a2-4308-b103-d80b9f5a2b84")
    got, body, _ = detect(api, faces_dir / "face_recognition/examples/two_people.jpg")
    assert (got, body["error"]) == (422, "TOO_MANY_FACES")
    got, body, _ = detect(api, faces_dir / "face_recognition/examples/obama_small.jpg")
    assert got in (200, 422)
    if got == 422:
        assert body["error"] in ("FACE_TOO_SMALL", "FACE_LOW_CONFIDENCE")
    got, body, _ = api.post("/api/v1/face/detect", {"sessionId": "s", "faceImageBase": "https://example.com/a.jpg"},
                            basic(api.key_name, api.key))
    assert (got, body["error"]) == (400, "URL_INPUT_DISABLED")
    got, body, _ = api.post("/api/v1/face/detect", {"sessionId": "s"}, basic(api.key_name, api.key))
    assert (got, body["error"], body["sessionId"]) == (400, "MISSING_FIELD", "s")
