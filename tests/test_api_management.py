"""Management endpoints (contract 2's dialect) on the live server: collections, persons, faces, erasure."""
from __future__ import annotations

from tests.conftest import b64file

EXAMPLES = "face_recognition/examples"


def test_collections_persons_faces(api, faces_dir):
    key = {"x-api-key": api.key}
    status, body, _ = api.post("/collections", {"collection_name": "staff"}, key)
    assert status == 201 and body["collection_name"] == "staff" and body["persons"] == 0
    status, body, _ = api.post("/collections", {"collection_name": "staff"}, key)
    assert (status, body["code"]) == (409, "ERR_COLLECTION_EXISTS")
    assert [c["collection_name"] for c in api.get("/collections", key)[1]["collections"]] == ["staff"]

    photo = lambda name: b64file(faces_dir / EXAMPLES / name)  # noqa: E731
    status, body, _ = api.post("/persons", {"collection_name": "staff", "person_name": "Obama",
                                            "metadata": {"team": "a"},
                                            "images_base_64": [photo("obama.jpg"), "bm90IGFuIGltYWdl",
                                                               photo("obama-480p.jpg")]}, key)
    assert status == 201, body
    obama = body["person_id"]
    faces = body["faces"]
    assert faces[0]["accepted"] and isinstance(faces[0]["face_id"], int)
    assert not faces[1]["accepted"] and faces[1]["code"] == "INVALID_IMAGE"
    assert faces[2]["accepted"]
    status, body, _ = api.post(f"/persons/{obama}/faces", {"images_base_64": [photo("biden.jpg")]}, key)
    assert (status, body["code"]) == (422, "ERR_NOT_ENROLLED")
    assert body["metadata"]["faces"][0]["code"] == "FACE_DOES_NOT_MATCH_PERSON"

    status, body, _ = api.post("/persons", {"collection_name": "staff", "person_name": "Obama again",
                                            "images_base_64": [photo("obama2.jpg")]}, key)
    assert (status, body["code"]) == (422, "ERR_NOT_ENROLLED")
    assert body["metadata"]["faces"][0]["code"] == "DUPLICATE_OF_OTHER_PERSON"

    status, body, _ = api.post(f"/persons/{obama}/faces", {"images_base_64": [photo("obama2.jpg")]}, key)
    assert status == 201 and body["faces"][0]["accepted"]
    added = body["faces"][0]["face_id"]
    status, body, _ = api.post("/persons", {"collection_name": "staff", "person_name": "Biden",
                                            "images_base_64": [photo("biden.jpg")]}, key)
    assert status == 201
    biden = body["person_id"]

    status, body, _ = api.get("/persons?collection_name=staff&limit=1", key)
    assert status == 200 and body["total"] == 2 and len(body["persons"]) == 1
    assert body["persons"][0]["person_name"] == "Biden"  # ordered by name
    assert api.get("/persons?collection_name=staff&offset=1&limit=1", key)[1]["persons"][0]["person_id"] == obama

    status, body, _ = api.request("PATCH", f"/persons/{obama}", {"person_name": "Barack Obama",
                                                                 "metadata": {"team": "b"}}, key)
    assert status == 200 and (body["person_name"], body["metadata"]) == ("Barack Obama", {"team": "b"})
    status, body, _ = api.get(f"/persons/{obama}", key)
    assert body["person_name"] == "Barack Obama" and added in body["face_ids"] and len(body["face_ids"]) == 3

    status, body, _ = api.request("DELETE", f"/persons/{obama}/faces/{added}", None, key)
    assert status == 200 and body["erased"]["faces_left"] == 2
    assert api.request("DELETE", f"/persons/{obama}/faces/{added}", None, key)[1]["code"] == "ERR_NOT_FOUND"

    # the API's changes are the CLI's: search sees the renamed person
    import json

    found = json.loads(api.faced("search", str(faces_dir / EXAMPLES / "obama-480p.jpg"), "--collection", "staff",
                                 "--json").stdout)["person_search_results"]
    assert found[0]["person_id"] == obama and found[0]["person_name"] == "Barack Obama"

    status, body, _ = api.request("DELETE", f"/persons/{biden}", None, key)
    assert status == 200 and body["erased"]["faces"] == 1
    status, body, _ = api.get(f"/persons/{biden}", key)
    assert (status, body["code"]) == (404, "ERR_NOT_FOUND")
    status, body, _ = api.request("DELETE", "/collections/staff", None, key)
    assert status == 200 and body["erased"]["persons"] == 1
    assert api.get("/collections", key)[1]["collections"] == []


def test_errors(api):
    key = {"x-api-key": api.key}
    assert api.get("/persons", key)[1]["code"] == "ERR_MISSING_FIELD"
    assert api.get("/persons?collection_name=none", key)[:2][0] == 404
    assert api.get("/persons?collection_name=none&limit=x", key)[0] == 400
    assert api.post("/collections", {"collection_name": ""}, key)[1]["code"] == "ERR_INVALID_NAME"
    assert api.post("/collections", raw=b"{not json", headers=key)[1]["code"] == "ERR_INVALID_JSON"
    assert api.post("/collections", [1, 2], key)[1]["code"] == "ERR_INVALID_JSON"
    assert api.post("/persons", {"collection_name": "x", "person_name": "y", "images_base_64": []}, key)[0] in (400,
                                                                                                              404)
    assert api.request("PATCH", "/persons/nobody", {"metadata": {}}, key)[0] == 404
    assert api.request("DELETE", "/persons/nobody/faces/abc", None, key)[1]["code"] == "ERR_INVALID_ARGUMENT"
    status, body, _ = api.request("PUT", "/collections", {}, key)
    assert (status, body["error"]["code"]) == (405, "METHOD_NOT_ALLOWED")
