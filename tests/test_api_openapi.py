"""The OpenAPI document: valid OpenAPI 3.1, every route in it, the contracts' own example responses validate
against its schemas, and schemathesis finds no 5xx and no response outside the schema on the live server."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import jsonschema
import pytest

from tests.conftest import REPO, data_root


@pytest.fixture(scope="module")
def doc(api):
    status, body, _ = api.get("/openapi.json", {"x-api-key": api.key})
    assert status == 200
    return body


def validator(doc: dict, name: str):
    schema = {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
    return jsonschema.Draft202012Validator(schema)


def contract_examples(number: int) -> list:
    """Every JSON value written in a contract's text (its example requests and responses)."""
    folder = data_root().parent / "contracts"
    path = next(folder.glob(f"{number}-*.txt"), None)
    if path is None:
        pytest.skip(f"contract texts not found in {folder}")
    text, decoder, found, index = path.read_text(), json.JSONDecoder(), [], 0
    while index < len(text):
        if text[index] in "{[":
            try:
                value, end = decoder.raw_decode(text, index)
                if isinstance(value, (dict, list)) and value:
                    found.append(value)
                    index = end
                    continue
            except ValueError:
                pass
        index += 1
    return found


def test_document_is_valid_and_complete(api, doc):
    from openapi_spec_validator import validate

    validate(doc)
    assert doc["openapi"].startswith("3.1")
    routes = {("POST", "/userauthentication"), ("POST", "/MultiFaceExtraction"), ("POST", "/face-search"),
              ("POST", "/multi-face-search"), ("POST", "/api/v1/face/detect"), ("POST", "/face/detect"),
              ("POST", "/face/verify"), ("POST", "/collections"), ("GET", "/collections"),
              ("DELETE", "/collections/{collection_name}"), ("POST", "/persons"), ("GET", "/persons"),
              ("GET", "/persons/{person_id}"), ("PATCH", "/persons/{person_id}"), ("DELETE", "/persons/{person_id}"),
              ("POST", "/persons/{person_id}/faces"), ("DELETE", "/persons/{person_id}/faces/{face_id}"),
              ("GET", "/faces/{token}.jpg"), ("GET", "/health"), ("GET", "/openapi.json"), ("GET", "/metrics"),
              # the daemon's (faced run serves them)
              ("GET", "/events"), ("GET", "/events/{event_id}"), ("GET", "/events/stream"), ("GET", "/cameras"),
              ("GET", "/cameras/{name}/snapshot.jpg"), ("GET", "/visitors"),
              ("POST", "/visitors/{visitor_id}/promote"), ("DELETE", "/visitors/{visitor_id}"),
              ("GET", "/visitors/{visitor_id}/thumbnail.jpg"),
              # the console's session, and the thumbnails its People page shows
              ("POST", "/ui/session"), ("GET", "/ui/session"), ("DELETE", "/ui/session"),
              ("GET", "/persons/{person_id}/faces/{face_id}/thumbnail.jpg")}
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert documented == routes
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            for status in ("400", "401", "403", "413", "422", "503"):
                assert status in operation["responses"], (method, path, status)
            if (method, path) not in (("get", "/health"), ("post", "/ui/session")):  # open; the key in the body
                assert operation["security"], (method, path)
            assert operation["description"]  # the decisions taken for this contract
    assert {"ApiKey", "Basic", "Bearer", "SubscriptionKey", "AuthKey", "Session"} <= set(doc["components"]["securitySchemes"])


def test_contract_examples_validate(doc):
    c1 = contract_examples(1)
    success = next(v for v in c1 if isinstance(v, dict) and "data" in v)
    validator(doc, "MultiFaceExtractionResponse").validate(success)
    for error in (v for v in c1 if isinstance(v, dict) and v.get("respcode") in ("400", "401")):
        validator(doc, "Contract1Error").validate(error)

    c2 = contract_examples(2)
    validator(doc, "FaceSearchResponse").validate(next(v for v in c2 if isinstance(v, list)))
    validator(doc, "MultiFaceSearchResponse").validate(next(v for v in c2 if "person_search_results" in v))
    errors = [v for v in c2 if isinstance(v, dict) and str(v.get("code", "")).startswith("ERR_")]
    assert len(errors) == 6
    for error in errors:
        validator(doc, "Contract2Error").validate(error)

    c3 = contract_examples(3)
    validator(doc, "DetectAttributesRequest").validate(next(v for v in c3 if "returnFaceImage" in v))
    validator(doc, "DetectAttributesResponse").validate(next(v for v in c3 if v.get("hasError") is False))
    validator(doc, "Contract3Error").validate(next(v for v in c3 if v.get("hasError") is True))

    c4 = contract_examples(4)
    frames = next(v for v in c4 if isinstance(v, dict) and "0" in v)
    validator(doc, "UnifiedDetectResponse").validate({"error_code": 0, "error_msg": "SUCCESS", "faces_obj": frames})

    # contract 5's example is not valid JSON as printed (braces and brackets missing): its values, restored
    face = {"faceRectangle": {"x": 30, "y": 0, "height": 1860, "width": 1532},
            "points": [{"x": 58.2854, "y": -42.453003}, {"x": 1562.8524, "y": -20.026917},
                       {"x": 30.252747, "y": 1838.2557}, {"x": 1534.8197, "y": 1860.6819}],
            "quality": 94.401535}
    validator(doc, "VerifyResponse").validate({"matchedFaces": [{"matchResult": 1, "image1_face": face,
                                                                 "image2_face": face}]})
    validator(doc, "VerifyRequest").validate({"encoded_image1": "/9j/4AAQ", "encoded_image2": "/9j/4AAQ"})


def schemathesis(api, tmp_path, *headers: str) -> subprocess.CompletedProcess:
    schema = tmp_path / "openapi.json"
    schema.write_text(json.dumps(api.get("/openapi.json", {"x-api-key": api.key})[1]))
    command = [sys.executable, "-m", "schemathesis.cli", "run", str(schema), "--url", api.url,
               "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                           "response_schema_conformance",
               "--max-examples", "8", "--seed", "1", "--phases", "examples,coverage,fuzzing",
               "--request-timeout", "60", "--suppress-health-check", "all", "--no-shrink",
               "--generation-deterministic", "--workers", "1"]
    for header in headers:
        command += ["-H", header]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1"}
    return subprocess.run(command, capture_output=True, text=True, cwd=str(REPO), env=env, timeout=900)


def test_schemathesis_with_key(api, tmp_path):
    token = api.post("/userauthentication", None, {"apikey": api.key})[1]["authkey"]
    result = schemathesis(api, tmp_path, f"x-api-key: {api.key}", f"Subscriptionkey: {api.key}",
                          f"Authorization: Bearer {api.key}", f"authkey: {token}")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_schemathesis_without_key(api, tmp_path):
    result = schemathesis(api, tmp_path)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
