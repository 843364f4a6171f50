"""The OpenAPI 3.1 document of GET /openapi.json: every path with its request and response schemas (required
fields marked), every error in its contract's shape, the security schemes, and the decisions taken where a
contract is ambiguous (each operation's description: the docstring of its contract module)."""
from __future__ import annotations

import re

from .. import __version__
from ..errors import CODES
from . import (console, crops, daemon, detect_attributes, face_compare, face_search, management, multi_face_extraction, ops,
               unified_detect)
from .http import RouteInfo


def obj(properties: dict, required: tuple | list = (), **extra) -> dict:
    schema = {"type": "object", "properties": properties, **extra}
    if required:
        schema["required"] = list(required)
    return schema


def arr(items: dict, **extra) -> dict:
    return {"type": "array", "items": items, **extra}


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


STR, INT, NUM, BOOL = {"type": "string"}, {"type": "integer"}, {"type": "number"}, {"type": "boolean"}
B64 = {"type": "string", "description": "base64 JPEG or PNG (a data: URI prefix is accepted)"}
CODE_ENUM = {"type": "string", "enum": sorted(CODES)}

SCHEMAS = {
    # errors, one per contract
    "Contract1Error": obj({"respcode": {"type": "string", "description": "the HTTP status as a string"},
                           "respdesc": STR, "rrn": STR, "code": CODE_ENUM}, ["respcode", "respdesc"]),
    "Contract2Error": obj({"code": {"type": "string", "description": "ERR_FACE_NOT_DETECTED, ERR_API_KEY_NOT_PRESENT, "
                                    "ERR_API_KEY_NOT_VALID, ERR_NOT_FOUND, ERR_LIVENESS_ERROR, "
                                    "ERR_BASE64_IMAGE_CANNOT_BE_DECODED, or ERR_ + faced's code"},
                           "message": STR,
                           "metadata": obj({"code": STR, "detail": STR, "faces": arr(ref("FaceOutcome"))},
                                           additionalProperties=True)},
                          ["code", "message"]),
    "Contract3Error": obj({"sessionId": {"type": ["string", "null"]}, "hasError": BOOL,
                           "error": {"type": "string", "description": "a quality code (FACE_NOT_FOUND, "
                                     "TOO_MANY_FACES, FACE_TOO_SMALL, ...), INTERNAL_ERROR, or faced's code"},
                           "message": STR}, ["hasError", "error"]),
    "Contract4Error": obj({"error_code": {"type": "integer", "enum": [1]}, "error_msg": STR, "code": CODE_ENUM},
                          ["error_code", "error_msg"]),
    "Contract5Error": obj({"errorCode": CODE_ENUM, "errorMessage": STR}, ["errorCode", "errorMessage"]),
    "RouteError": obj({"error": obj({"code": STR, "message": STR}, ["code", "message"])}, ["error"]),
    # contract 1
    "AuthenticationRequest": obj({"apikey": STR}),
    "AuthenticationResponse": obj({"respcode": STR, "respdesc": STR, "authkey": STR, "expires_in": INT},
                                  ["respcode", "respdesc", "authkey", "expires_in"]),
    "MultiFaceExtractionRequest": obj({"image": B64, "rrn": STR}, ["image", "rrn"]),
    "MultiFaceExtractionResponse": obj({"respcode": STR, "respdesc": STR, "rrn": STR,
                                        "data": arr(obj({"confidence": {"type": "string",
                                                                        "description": "detector score 0..1"},
                                                         "image": B64}, ["confidence", "image"]))},
                                       ["respcode", "respdesc", "data"]),
    # contract 2
    "FaceSearchRequest": obj({"collection_name": STR, "face_base_64": B64,
                              "check_liveness": {"type": "boolean", "default": False},
                              "min_similarity_score": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.7},
                              "max_results": {"type": "integer", "minimum": 1, "maximum": 100, "default": 1}},
                             ["collection_name", "face_base_64"]),
    "MultiFaceSearchRequest": obj({"collection_name": STR, "multi_face_img_base_64": B64,
                                   "min_similarity_score": {"type": "number", "minimum": 0, "maximum": 1,
                                                            "default": 0.7},
                                   "max_results": {"type": "integer", "minimum": 1, "maximum": 100, "default": 1}},
                                  ["collection_name", "multi_face_img_base_64"]),
    "SearchMatch": obj({"face_base_64": B64, "metadata": {"type": "object"}, "person_id": STR, "person_name": STR,
                        "similarity_score": {"type": "number", "minimum": 0, "maximum": 1,
                                             "description": "calibrated: 0.7 = false-accept rate ~1e-4 per pair"}},
                       ["face_base_64", "metadata", "person_id", "person_name", "similarity_score"]),
    "FaceSearchResponse": arr(ref("SearchMatch")),
    "MultiFaceSearchResponse": obj({"person_search_results": arr(ref("SearchMatch")),
                                    "unrecognized_face_thumbnails_base_64": arr(B64)},
                                   ["person_search_results", "unrecognized_face_thumbnails_base_64"]),
    # contract 3
    "DetectAttributesRequest": obj({"sessionId": STR, "faceImageBase": B64,
                                    "returnFaceImage": {"type": "boolean", "default": False}}, ["faceImageBase"]),
    "DetectAttributesResponse": obj({
        "sessionId": {"type": ["string", "null"]}, "hasError": BOOL,
        "face": obj({"age": INT,
                     "gender": {"type": "integer", "minimum": -10000, "maximum": 10000,
                                "description": "10000 x (P(female) - P(male)): negative male, positive female"},
                     "passiveLivenessScore": {"type": "number", "minimum": 0, "maximum": 1,
                                              "description": "higher = more live; threshold 0.5 "
                                                             "(liveness.threshold)"},
                     "live": BOOL,
                     "rectangle": obj({"top": INT, "left": INT, "width": INT, "height": INT, "right": INT,
                                       "bottom": INT}, ["top", "left", "width", "height"]),
                     "qualityCodes": arr(STR), "faceImageBase": B64},
                    ["age", "gender", "passiveLivenessScore", "rectangle"])},
        ["hasError", "face"]),
    # contract 4
    "UnifiedDetectRequest": obj({"url": {"type": "string", "description": "http(s) URL of an image or a video "
                                         "(takes priority over img). Off by default (URL_INPUT_DISABLED); when on "
                                         "(api.url_inputs), only hosts on api.url_allow_hosts, every resolved "
                                         "address checked (non-public ones refused unless allow-listed), "
                                         "redirects re-checked, api.url_max_bytes and api.url_*_timeout_s; "
                                         "refusals: URL_INVALID, URL_SCHEME_REFUSED, URL_HOST_NOT_ALLOWED, "
                                         "URL_ADDRESS_REFUSED, URL_TOO_LARGE, URL_TIMEOUT, URL_FETCH_FAILED, "
                                         "URL_CONTENT_REFUSED. The media type comes from the bytes, not the "
                                         "extension."},
                                 "img": {"type": "string", "contentEncoding": "base64",
                                         "description": "base64 (or a data: URI) of an image, or (an extension of "
                                                        "the contract) of a video: MP4/MOV, AVI, MKV/WebM, "
                                                        "recognised by its bytes; limits api.max_video_bytes, "
                                                        "api.max_video_seconds, api.max_video_pixels (codes "
                                                        "INVALID_VIDEO, VIDEO_NO_FRAMES, VIDEO_TOO_LARGE, "
                                                        "VIDEO_TOO_LONG)"},
                                 "num_frames": {"type": "integer", "minimum": 1, "maximum": 100, "default": 5,
                                                "description": "videos: frames sampled evenly, at indices "
                                                               "floor(i * frame_count / num_frames); faces_obj is "
                                                               "keyed by frame index"},
                                 "return_face_url": {"type": "boolean", "default": False},
                                 "single_face": {"type": "boolean", "default": False}}),
    "Point": arr(INT, minItems=2, maxItems=2),
    "FrameFaces": obj({"landmarks": arr(arr(ref("Point"), minItems=6, maxItems=6)),
                       "landmarks_str": arr(STR), "region": arr(arr(INT, minItems=4, maxItems=4)),
                       "removed": {**arr(arr(INT, minItems=4, maxItems=4)),
                                   "description": "videos: regions [x, y, width, height] of the previous sampled "
                                                  "frame's faces that no face of this frame continues (greedy "
                                                  "IoU >= tracking.iou, as the camera tracker); [] for images "
                                                  "and frame 0"},
                       "frame_time": {"type": ["number", "null"], "description": "seconds (videos); null for images"},
                       "face_urls": {"type": ["array", "null"], "items": STR,
                                     "description": "URLs of the face crops on this appliance, "
                                                    "/faces/{token}.jpg, served with the key for "
                                                    "api.face_url_ttl_s seconds"},
                       "crop_region": {"type": ["array", "null"], "items": arr(INT, minItems=4, maxItems=4)},
                       "crop_landmarks": {"type": ["array", "null"], "items": arr(ref("Point"))}},
                      ["landmarks", "landmarks_str", "region", "removed", "frame_time", "face_urls",
                       "crop_region", "crop_landmarks"]),
    "UnifiedDetectResponse": obj({"error_code": {"type": "integer", "enum": [0]}, "error_msg": STR,
                                  "faces_obj": {"type": "object", "additionalProperties": ref("FrameFaces")}},
                                 ["error_code", "error_msg", "faces_obj"]),
    # contract 5
    "VerifyRequest": obj({"encoded_image1": B64, "encoded_image2": B64,
                          "compareAllFaces": {"type": "boolean", "default": False},
                          "qualityThreshold": {"type": "integer", "minimum": 21, "maximum": 100}},
                         ["encoded_image1", "encoded_image2"]),
    "VerifyFace": obj({"faceRectangle": obj({"x": INT, "y": INT, "height": INT, "width": INT},
                                            ["x", "y", "height", "width"]),
                       "points": arr(obj({"x": NUM, "y": NUM}, ["x", "y"]), minItems=4, maxItems=4),
                       "quality": {"type": "number", "minimum": 1, "maximum": 100}},
                      ["faceRectangle", "points", "quality"]),
    "VerifyResponse": obj({"matchedFaces": arr(obj({"matchResult": {"type": "integer", "enum": [0, 1]},
                                                    "confidence": {"type": "number", "minimum": 0, "maximum": 100},
                                                    "image1_face": ref("VerifyFace"),
                                                    "image2_face": ref("VerifyFace")},
                                                   ["matchResult", "image1_face", "image2_face"]))},
                          ["matchedFaces"]),
    # management
    "CollectionRequest": obj({"collection_name": STR}, ["collection_name"]),
    "Collection": obj({"collection_name": STR, "created": STR, "persons": INT, "faces": INT,
                       "embedder": obj({"model": STR, "precision": STR, "sha256": STR})},
                      ["collection_name", "created", "persons", "faces", "embedder"]),
    "Collections": obj({"collections": arr(ref("Collection"))}, ["collections"]),
    "Erased": obj({"erased": {"type": "object"}}, ["erased"]),
    "PersonRequest": obj({"collection_name": STR, "person_name": STR, "metadata": {"type": "object"},
                          "images_base_64": arr(B64, minItems=1, maxItems=management.MAX_IMAGES),
                          "force": {"type": "boolean", "default": False}},
                         ["collection_name", "person_name", "images_base_64"]),
    "PersonPatch": obj({"person_name": STR, "metadata": {"type": "object"}}),
    "FacesRequest": obj({"images_base_64": arr(B64, minItems=1, maxItems=management.MAX_IMAGES),
                         "force": {"type": "boolean", "default": False}}, ["images_base_64"]),
    "FaceOutcome": obj({"source": STR, "accepted": BOOL, "face_id": INT, "code": STR, "message": STR,
                        "quality": INT}, ["source", "accepted"]),
    "Enrolment": obj({"person_id": STR, "person_name": STR, "faces": arr(ref("FaceOutcome"))},
                     ["person_id", "faces"]),
    "Person": obj({"person_id": STR, "person_name": STR, "collection_name": STR, "metadata": {"type": "object"},
                   "created": STR, "face_ids": arr(INT)},
                  ["person_id", "person_name", "collection_name", "metadata", "created", "face_ids"]),
    "Persons": obj({"persons": arr(ref("Person")), "offset": INT, "limit": INT, "total": INT},
                   ["persons", "offset", "limit", "total"]),
    # the daemon
    "Event": obj({"event_id": STR, "seq": INT, "type": {"type": "string",
                                                         "enum": ["recognized", "unknown", "spoof", "left"]},
                  "camera": STR, "track_id": INT, "person_id": {"type": ["string", "null"]},
                  "person_name": {"type": ["string", "null"]}, "visitor_id": {"type": ["string", "null"]},
                  "score": {"type": ["number", "null"]}, "liveness": {"type": ["object", "null"], "description":
                               "{score, live} (passive), plus active: {live, signs, frames, seconds, blink, pose_deg, "
                               "deformation, texture} on cameras with active liveness"},
                  "box": arr(NUM), "ts": STR},
                 ["event_id", "seq", "type", "camera", "track_id", "ts"]),
    "Events": obj({"events": arr(ref("Event")), "limit": INT, "offset": INT,
                   "next_offset": {"type": ["integer", "null"]}}, ["events", "limit", "offset", "next_offset"]),
    "Cameras": obj({"cameras": arr(obj({"name": STR, "state": STR, "fps": NUM, "dropped": INT,
                                        "last_frame_age_s": {"type": ["number", "null"]}},
                                       ["name", "state"]))}, ["cameras"]),
    "Visitor": obj({"visitor_id": STR, "collection_name": STR, "first_seen": STR, "last_seen": STR,
                    "visits": INT, "camera": {"type": ["string", "null"]}, "faces": INT},
                   ["visitor_id", "collection_name", "first_seen", "last_seen", "visits", "faces"]),
    "Visitors": obj({"visitors": arr(ref("Visitor"))}, ["visitors"]),
    "PromoteRequest": obj({"person_name": STR, "collection_name": {"type": "string", "description":
                                                                   "default: the visitor's collection"},
                           "force": BOOL}, ["person_name"]),
    # the console
    "SessionRequest": obj({"key": {"type": "string", "description": "an API key"}}, ["key"]),
    "Session": obj({"key_name": STR, "csrf_token": {"type": "string", "description": "send it as X-CSRF-Token "
                                                    "on every state-changing request made with the cookie"},
                    "expires_in": INT}, ["key_name", "csrf_token", "expires_in"]),
    "SignedOut": obj({"signed_out": BOOL}, ["signed_out"]),
    # operations
    "Health": obj({"status": {"type": "string", "enum": ["ok", "degraded"]}, "version": STR, "uptime_s": NUM,
                   "models": {"type": "object"}, "database": {"type": "object"},
                   "pool": obj({"depth": INT, "running": INT, "workers": INT, "queue": INT, "capacity": INT})},
                  ["status", "version", "uptime_s", "models", "database", "pool"]),
}

SECURITY_SCHEMES = {
    "ApiKey": {"type": "apiKey", "in": "header", "name": "x-api-key",
               "description": "a key from `faced keys create` (contract 2, management, /openapi.json, /metrics; "
                              "contract 4's fallback)"},
    "Basic": {"type": "http", "scheme": "basic", "description": "contract 3: user = the key's name, password = "
                                                                 "the key"},
    "Bearer": {"type": "http", "scheme": "bearer", "description": "contract 4: the key (Authorization first, "
                                                                   "then x-api-key)"},
    "SubscriptionKey": {"type": "apiKey", "in": "header", "name": "Subscriptionkey", "description": "contract 5"},
    "AuthKey": {"type": "apiKey", "in": "header", "name": "authkey",
                "description": "contract 1: a token from POST /userauthentication, valid api.token_ttl_s"},
    "Session": {"type": "apiKey", "in": "cookie", "name": "faced_session",
                "description": "the console's session cookie from POST /ui/session, in place of x-api-key; "
                               "state-changing requests also need the X-CSRF-Token header"},
    "C1ApiKey": {"type": "apiKey", "in": "header", "name": "apikey",
                 "description": "contract 1's POST /userauthentication: the key"},
}
SECURITY = {"open": [], "session": [{"Session": []}], "x-api-key": [{"ApiKey": []}, {"Session": []}], "basic": [{"Basic": []}],
            "bearer": [{"Bearer": []}, {"ApiKey": []}], "subscription": [{"SubscriptionKey": []}],
            "authkey": [{"AuthKey": []}]}
SHAPE_SCHEMA = {f"contract{i}": f"Contract{i}Error" for i in range(1, 6)}

# (method, path) -> (summary, module, request schema, success status, success schema)
OPERATIONS = {
    ("POST", "/userauthentication"): ("Contract 1: exchange a key for an authkey", multi_face_extraction,
                                      "AuthenticationRequest", 200, "AuthenticationResponse"),
    ("POST", "/MultiFaceExtraction"): ("Contract 1: every face of an image, cropped", multi_face_extraction,
                                       "MultiFaceExtractionRequest", 200, "MultiFaceExtractionResponse"),
    ("POST", "/face-search"): ("Contract 2: 1:N search of one face", face_search, "FaceSearchRequest", 200,
                               "FaceSearchResponse"),
    ("POST", "/multi-face-search"): ("Contract 2: N:N search of every face", face_search,
                                     "MultiFaceSearchRequest", 200, "MultiFaceSearchResponse"),
    ("POST", "/api/v1/face/detect"): ("Contract 3: one face with age, gender and passive liveness",
                                      detect_attributes, "DetectAttributesRequest", 200, "DetectAttributesResponse"),
    ("POST", "/face/detect"): ("Contract 4: faces and landmarks of an image", unified_detect,
                               "UnifiedDetectRequest", 200, "UnifiedDetectResponse"),
    ("GET", "/faces/{token}.jpg"): ("Contract 4: a face crop from return_face_url (JPEG, for api.face_url_ttl_s; "
                                     "404 FACE_URL_NOT_FOUND after)", crops, None, 200, None),
    ("POST", "/face/verify"): ("Contract 5: compare the faces of two images", face_compare, "VerifyRequest", 200,
                               "VerifyResponse"),
    ("POST", "/collections"): ("Create a collection", management, "CollectionRequest", 201, "Collection"),
    ("GET", "/collections"): ("List collections", management, None, 200, "Collections"),
    ("DELETE", "/collections/{collection_name}"): ("Erase a collection", management, None, 200, "Erased"),
    ("POST", "/persons"): ("Enrol a person from one or more images", management, "PersonRequest", 201,
                           "Enrolment"),
    ("GET", "/persons"): ("List a collection's persons (paginated)", management, None, 200, "Persons"),
    ("GET", "/persons/{person_id}"): ("One person", management, None, 200, "Person"),
    ("PATCH", "/persons/{person_id}"): ("Rename a person or replace its metadata", management, "PersonPatch", 200,
                                        "Person"),
    ("DELETE", "/persons/{person_id}"): ("Erase a person (faces, vectors, thumbnails)", management, None, 200,
                                         "Erased"),
    ("POST", "/persons/{person_id}/faces"): ("Add faces to a person", management, "FacesRequest", 201,
                                             "Enrolment"),
    ("DELETE", "/persons/{person_id}/faces/{face_id}"): ("Erase one face", management, None, 200, "Erased"),
    ("GET", "/persons/{person_id}/faces/{face_id}/thumbnail.jpg"): ("A face's stored thumbnail (JPEG)", management,
                                                                    None, 200, None),
    ("POST", "/ui/session"): ("Console: sign in with a key (sets the session cookie)", console,
                              "SessionRequest", 201, "Session"),
    ("GET", "/ui/session"): ("Console: the current session and its CSRF token", console, None, 200, "Session"),
    ("DELETE", "/ui/session"): ("Console: sign out", console, None, 200, "SignedOut"),
    ("GET", "/events"): ("Event history, newest first (paginated)", daemon, None, 200, "Events"),
    ("GET", "/events/{event_id}"): ("One stored event", daemon, None, 200, "Event"),
    ("GET", "/events/stream"): ("Events as they happen (server-sent events)", daemon, None, 200, None),
    ("GET", "/cameras"): ("Cameras: state, frames/s, dropped frames, last frame's age", daemon, None, 200,
                          "Cameras"),
    ("GET", "/cameras/{name}/snapshot.jpg"): ("A camera's latest frame with boxes and names", daemon, None, 200,
                                               None),
    ("GET", "/visitors"): ("Recurring unknown visitors, most recently seen first", daemon, None, 200, "Visitors"),
    ("POST", "/visitors/{visitor_id}/promote"): ("Make a named person from a visitor's stored faces", daemon,
                                                 "PromoteRequest", 201, "Enrolment"),
    ("DELETE", "/visitors/{visitor_id}"): ("Erase a visitor with its faces and events", daemon, None, 200,
                                           "Erased"),
    ("GET", "/visitors/{visitor_id}/thumbnail.jpg"): ("A visitor's best face (JPEG)", daemon, None, 200, None),
    ("GET", "/health"): ("Health (open)", ops, None, 200, "Health"),
    ("GET", "/openapi.json"): ("This document", ops, None, 200, None),
    ("GET", "/metrics"): ("Prometheus metrics", ops, None, 200, None),
}

ERROR_STATUSES = {400: "bad input (INVALID_JSON, MISSING_FIELD, INVALID_ARGUMENT, INVALID_IMAGE, ...)",
                  401: "missing credential (API_KEY_MISSING); contract 1: invalid or expired authkey (TOKEN_INVALID)",
                  403: "a credential that is not a valid key (API_KEY_INVALID)",
                  404: "unknown collection, person or face",
                  409: "the collection exists, or another conflict",
                  413: "body over api.max_body_bytes (BODY_TOO_LARGE), image over images.max_bytes/max_pixels, "
                       "video over api.max_video_* (VIDEO_TOO_LARGE, VIDEO_TOO_LONG), download over "
                       "api.url_max_bytes (URL_TOO_LARGE)",
                  422: "no usable face: FACE_NOT_FOUND, TOO_MANY_FACES, quality and liveness codes, NOT_ENROLLED",
                  500: "a fault in faced (INTERNAL_ERROR, MODEL_ERROR, DB_CORRUPT)",
                  503: "busy: the inference pool is full (BUSY) or the request timed out (TIMEOUT); see Retry-After"}


def _page(limit_max: int) -> list[dict]:
    """The offset and limit query parameters of a paginated list."""
    return [{"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 0}},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": limit_max,
                                                        "default": 100}}]


def document(routes: list[RouteInfo], config) -> dict:
    paths: dict = {}
    for route in routes:
        summary, module, request, status, response = OPERATIONS[(route.method, route.path)]
        operation = {"summary": summary, "description": (module.__doc__ or "").strip(),
                     "operationId": f"{route.method.lower()}_{route.path.strip('/').replace('/', '_')}"
                                    .replace("{", "").replace("}", "").replace("-", "_").replace(".", "_"),
                     "security": SECURITY[route.credential], "responses": {}}
        if route.path == "/userauthentication":  # checked by the handler: header or JSON body
            operation["security"] = [{"C1ApiKey": []}]
        if (route.method, route.path) == ("POST", "/ui/session"):  # the key is in the JSON body
            operation["security"] = []
        parameters = [{"name": name, "in": "path", "required": True, "schema": STR}
                      for name in re.findall(r"\{(\w+)\}", route.path)]
        if route.path == "/persons" and route.method == "GET":
            parameters += [{"name": "collection_name", "in": "query", "required": True, "schema": STR},
                           *_page(management.PAGE_LIMIT)]
        if route.path == "/events":
            parameters += [{"name": name, "in": "query", "schema": STR} for name in ("camera", "person", "type")]
            parameters += [{"name": "since", "in": "query", "schema": STR,
                            "description": "ISO 8601 UTC: events at or after it"}, *_page(daemon.EVENT_LIMIT)]
        if route.path == "/visitors":
            parameters.append({"name": "collection_name", "in": "query", "schema": STR,
                               "description": "only this collection's visitors"})
        if route.path == "/MultiFaceExtraction":
            parameters.append({"name": "apikey", "in": "header", "required": False, "schema": STR,
                               "description": "\"0\" (no encryption; faced never encrypts) or the key"})
        if parameters:
            operation["parameters"] = parameters
        if request:
            operation["requestBody"] = {"required": route.path != "/userauthentication",
                                        "content": {"application/json": {"schema": ref(request)}}}
        if response:
            content = {"application/json": {"schema": ref(response)}}
        elif route.path == "/metrics":
            content = {"text/plain": {"schema": STR}}
        elif route.path == "/events/stream":
            content = {"text/event-stream": {"schema": STR}}
        elif route.path.endswith(".jpg"):
            content = {"image/jpeg": {"schema": {"type": "string", "contentMediaType": "image/jpeg"}}}
        else:
            content = {"application/json": {"schema": {"type": "object"}}}
        operation["responses"][str(status)] = {"description": "success", "content": content}
        error = ref(SHAPE_SCHEMA[route.shape])
        for code, meaning in ERROR_STATUSES.items():
            schema = {"anyOf": [error, ref("RouteError")]} if code in (404, 500) else error
            answer = {"description": meaning, "content": {"application/json": {"schema": schema}}}
            if code == 503:
                answer["headers"] = {"Retry-After": {"description": "seconds", "schema": {"type": "string"}}}
            operation["responses"][str(code)] = answer
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "faced", "version": __version__,
                 "description": "faced's LAN API: five documented contracts, management and operations. Scores "
                                "are calibrated: similarity 0.7 (the search default) is a per-pair false-accept "
                                "rate of about 1e-4, 0.6 (the 1:1 match, contract 5's 60) about 1e-3. Passive "
                                f"liveness threshold {config.liveness.threshold}. Errors keep each contract's "
                                "shape; statuses: 400 bad input, 401 missing credential, 403 wrong credential, "
                                "404 unknown entity, 413 too large, 422 no usable face, 503 busy."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"schemas": SCHEMAS, "securitySchemes": SECURITY_SCHEMES},
    }
