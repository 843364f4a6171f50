"""Contract 2 (face search) on the live server: 1:N and N:N answers equal `faced search --json`, liveness,
every documented error with its status."""
from __future__ import annotations

import json

import pytest

from tests.conftest import b64file

EXAMPLES = "face_recognition/examples"


@pytest.fixture(scope="module")
def demo(api, faces_dir):
    """A collection with Obama (two photos) and Biden, enrolled over HTTP."""
    key = {"x-api-key": api.key}
    assert api.post("/collections", {"collection_name": "demo"}, key)[0] == 201
    ids = {}
    for name, files in (("Obama", ["obama.jpg", "obama2.jpg"]), ("Biden", ["biden.jpg"])):
        status, body, _ = api.post("/persons", {"collection_name": "demo", "person_name": name,
                                                "metadata": {"role": name.lower()},
                                                "images_base_64": [b64file(faces_dir / EXAMPLES / f) for f in files]},
                                   key)
        assert status == 201, body
        ids[name] = body["person_id"]
    return ids


def search(api, image, **fields):
    return api.post("/face-search", {"collection_name": "demo", "face_base_64": b64file(image), **fields},
                    {"x-api-key": api.key})


def test_face_search_equals_cli(api, demo, faces_dir):
    image = faces_dir / EXAMPLES / "obama-480p.jpg"
    status, body, _ = search(api, image)
    assert status == 200
    assert isinstance(body, list) and len(body) == 1
    match = body[0]
    assert set(match) == {"face_base_64", "metadata", "person_id", "person_name", "similarity_score"}
    assert match["person_id"] == demo["Obama"] and match["metadata"] == {"role": "obama"}
    assert isinstance(match["similarity_score"], float) and 0.7 <= match["similarity_score"] <= 1
    cli = api.faced("search", str(image), "--collection", "demo", "--json")
    assert cli.returncode == 0, cli.stderr
    expected = json.loads(cli.stdout)["person_search_results"][0]
    assert (match["person_id"], match["similarity_score"], match["face_base_64"]) == \
        (expected["person_id"], expected["similarity_score"], expected["face_base_64"])


def test_max_results_and_min_score(api, demo, faces_dir):
    image = faces_dir / EXAMPLES / "obama-480p.jpg"
    status, body, _ = search(api, image, max_results=2, min_similarity_score=0.0)
    assert status == 200 and [m["person_id"] for m in body] == [demo["Obama"], demo["Biden"]]
    assert body[0]["similarity_score"] > body[1]["similarity_score"]
    status, body, _ = search(api, faces_dir / EXAMPLES / "alex-lacamoire.png")
    assert status == 200 and body == []  # a stranger is unknown, not an error


def test_multi_face_search_equals_cli(api, demo, faces_dir):
    image = faces_dir / EXAMPLES / "two_people.jpg"
    status, body, _ = api.post("/multi-face-search", {"collection_name": "demo",
                                                      "multi_face_img_base_64": b64file(image)},
                               {"x-api-key": api.key})
    assert status == 200
    assert set(body) == {"person_search_results", "unrecognized_face_thumbnails_base_64"}
    cli = json.loads(api.faced("search", str(image), "--collection", "demo", "--json").stdout)
    ours = [(r["person_id"], r["similarity_score"]) for r in body["person_search_results"]]
    assert ours == [(r["person_id"], r["similarity_score"]) for r in cli["person_search_results"]]
    assert {pid for pid, _ in ours} == {demo["Obama"], demo["Biden"]}
    assert [s for _, s in ours] == sorted((s for _, s in ours), reverse=True)


def test_multi_face_search_one_entry_per_face(api, demo, faces_dir):
    image = faces_dir / "dlib/examples/faces/2008_002079.jpg"
    detected = json.loads(api.faced("detect", "--json", "--no-attributes", str(image)).stdout)["faces"]
    assert len(detected) >= 3
    status, body, _ = api.post("/multi-face-search", {"collection_name": "demo",
                                                      "multi_face_img_base_64": b64file(image)},
                               {"x-api-key": api.key})
    assert status == 200
    entries = len(body["person_search_results"]) + len(body["unrecognized_face_thumbnails_base_64"])
    assert entries == len(detected)
    assert all(isinstance(t, str) and t for t in body["unrecognized_face_thumbnails_base_64"])


@pytest.mark.parametrize("name", ["image_T1.jpg", "image_F1.jpg", "image_F2.jpg"])
def test_check_liveness(api, demo, faces_dir, name):
    status, body, _ = search(api, faces_dir / "silent-face/images/sample" / name, check_liveness=True)
    if name == "image_T1.jpg":
        assert status == 200 and isinstance(body, list)
    else:
        assert status == 422
        assert body["code"] == "ERR_LIVENESS_ERROR" and body["metadata"]["code"] == "FACE_NOT_LIVE"
        assert body["message"].startswith("A liveness error occurred")
    # without check_liveness the spoof is searched like any photo
    assert search(api, faces_dir / "silent-face/images/sample" / name)[0] == 200


def test_errors(api, demo, faces_dir):
    obama = faces_dir / EXAMPLES / "obama.jpg"
    body = {"collection_name": "demo", "face_base_64": b64file(obama)}
    cases = [
        ({}, body, 401, "ERR_API_KEY_NOT_PRESENT"),
        ({"x-api-key": "wrong"}, body, 403, "ERR_API_KEY_NOT_VALID"),
        ({"x-api-key": api.key}, {**body, "collection_name": "nope"}, 404, "ERR_NOT_FOUND"),
        ({"x-api-key": api.key}, {**body, "face_base_64": "U2Vjb25kIGltYWdl"}, 400,
         "ERR_BASE64_IMAGE_CANNOT_BE_DECODED"),
        ({"x-api-key": api.key}, {**body, "face_base_64": b64file(faces_dir / "noface/brick.png")}, 422,
         "ERR_FACE_NOT_DETECTED"),
        ({"x-api-key": api.key}, {**body, "face_base_64": b64file(faces_dir / EXAMPLES / "two_people.jpg")}, 422,
         "ERR_TOO_MANY_FACES"),
        ({"x-api-key": api.key}, {"collection_name": "demo"}, 400, "ERR_MISSING_FIELD"),
        ({"x-api-key": api.key}, {**body, "max_results": 0}, 400, "ERR_INVALID_ARGUMENT"),
        ({"x-api-key": api.key}, {**body, "min_similarity_score": "high"}, 400, "ERR_INVALID_ARGUMENT"),
    ]
    for headers, request, status, code in cases:
        got, answer, _ = api.post("/face-search", request, headers)
        assert (got, answer["code"]) == (status, code), answer
        assert isinstance(answer["message"], str) and answer["message"]
    got, answer, _ = api.post("/multi-face-search", {"collection_name": "demo", "multi_face_img_base_64":
                                                     b64file(faces_dir / "noface/brick.png")}, {"x-api-key": api.key})
    assert (got, answer["code"]) == (422, "ERR_FACE_NOT_DETECTED")
    got, answer, _ = api.post("/face-search", {**body, "face_base_64": b64file(
        faces_dir / EXAMPLES / "two_people.jpg"), "check_liveness": True}, {"x-api-key": api.key})
    assert (got, answer["code"], answer["metadata"]["code"]) == (422, "ERR_LIVENESS_ERROR", "TOO_MANY_FACES")
