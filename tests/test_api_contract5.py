"""Contract 5 (face compare) on the live server: matchResult from the calibrated score, rectangles, rotated
corner points, quality and qualityThreshold."""
from __future__ import annotations

import json
import math

from tests.conftest import b64file

EXAMPLES = "face_recognition/examples"


def verify(api, a, b, headers=None, **fields):
    body = {"encoded_image1": b64file(a), "encoded_image2": b64file(b), **fields}
    return api.post("/face/verify", body, {"Subscriptionkey": api.key} if headers is None else headers)


def test_same_and_different_equal_cli(api, faces_dir):
    obama, obama2, biden = (faces_dir / EXAMPLES / n for n in ("obama.jpg", "obama2.jpg", "biden.jpg"))
    for a, b, same in ((obama, obama2, 1), (obama, biden, 0)):
        status, body, _ = verify(api, a, b)
        assert status == 200, body
        assert len(body["matchedFaces"]) == 1
        pair = body["matchedFaces"][0]
        assert pair["matchResult"] == same
        cli = json.loads(api.faced("compare", "--json", str(a), str(b)).stdout)
        assert pair["confidence"] == round(cli["score"] * 100, 2)
        assert (pair["confidence"] > 60) == bool(same)
        for side in ("image1_face", "image2_face"):
            face = pair[side]
            assert set(face["faceRectangle"]) == {"x", "y", "height", "width"}
            assert all(isinstance(v, int) for v in face["faceRectangle"].values())
            assert 1 <= face["quality"] <= 100 and isinstance(face["quality"], float)
            corners = [(p["x"], p["y"]) for p in face["points"]]
            assert len(corners) == 4
            rect = face["faceRectangle"]
            top = math.dist(corners[0], corners[1])
            side_len = math.dist(corners[0], corners[2])
            assert abs(top - rect["width"]) <= 1.5 and abs(side_len - rect["height"]) <= 1.5
            assert corners[0][0] < corners[1][0] and corners[0][1] < corners[2][1]  # TL, TR, BL, BR
            cx, cy = rect["x"] + rect["width"] / 2, rect["y"] + rect["height"] / 2
            mid = tuple(sum(c[i] for c in corners) / 4 for i in (0, 1))
            assert math.dist(mid, (cx, cy)) <= 1.5


def test_rotation_follows_the_eye_line(api, faces_dir, tmp_path):
    from PIL import Image

    rotated = tmp_path / "rotated.jpg"
    Image.open(faces_dir / EXAMPLES / "obama.jpg").rotate(20, expand=True, fillcolor=(128, 128, 128)).save(rotated)
    angles = []
    for image in (faces_dir / EXAMPLES / "obama.jpg", rotated):
        status, body, _ = verify(api, faces_dir / EXAMPLES / "obama2.jpg", image)
        assert status == 200 and body["matchedFaces"][0]["matchResult"] == 1
        tl, tr = body["matchedFaces"][0]["image2_face"]["points"][:2]
        angles.append(math.degrees(math.atan2(tr["y"] - tl["y"], tr["x"] - tl["x"])))
    # PIL turns counter-clockwise: the eye line, and so the box's top edge, turns by -20 degrees (y down)
    assert abs((angles[1] - angles[0]) + 20) < 3, angles


def test_compare_all_faces_and_quality_threshold(api, faces_dir):
    two, obama = faces_dir / EXAMPLES / "two_people.jpg", faces_dir / EXAMPLES / "obama.jpg"
    status, body, _ = verify(api, two, obama)
    assert status == 200 and len(body["matchedFaces"]) == 1  # the source's best-quality face only
    status, body, _ = verify(api, two, obama, compareAllFaces=True)
    assert status == 200 and len(body["matchedFaces"]) == 2
    assert sorted(p["matchResult"] for p in body["matchedFaces"]) == [0, 1]
    assert body["matchedFaces"][0]["confidence"] >= body["matchedFaces"][1]["confidence"]
    quality = body["matchedFaces"][0]["image2_face"]["quality"]
    status, body, _ = verify(api, obama, obama, qualityThreshold=int(quality))
    assert status == 200
    status, body, _ = verify(api, obama, obama, qualityThreshold=100) if quality < 100 else (422, {
        "errorCode": "FACE_QUALITY_TOO_LOW"}, {})
    assert (status, body["errorCode"]) == (422, "FACE_QUALITY_TOO_LOW")


def test_errors(api, faces_dir):
    obama = faces_dir / EXAMPLES / "obama.jpg"
    for headers, status, code in (({}, 401, "API_KEY_MISSING"), ({"Subscriptionkey": "x"}, 403, "API_KEY_INVALID"),
                                  ({"x-api-key": api.key}, 401, "API_KEY_MISSING")):
        got, body, _ = verify(api, obama, obama, headers)
        assert (got, body["errorCode"]) == (status, code) and body["errorMessage"]
    got, body, _ = verify(api, obama, faces_dir / "noface/brick.png")
    assert (got, body["errorCode"]) == (422, "FACE_NOT_FOUND") and "encoded_image2" in body["errorMessage"]
    for value in (20, 101, "50"):
        got, body, _ = verify(api, obama, obama, qualityThreshold=value)
        assert (got, body["errorCode"]) == (400, "INVALID_ARGUMENT")
    got, body, _ = api.post("/face/verify", {"encoded_image1": b64file(obama)}, {"Subscriptionkey": api.key})
    assert (got, body["errorCode"]) == (400, "MISSING_FIELD")
