"""Management of collections, persons and faces, in contract 2's dialect (snake_case, `*_base_64`, its error
shape), `x-api-key`. Enrolment decides as `faced persons add` does: each image gets a face id, or the code
that refused it (a quality code, DUPLICATE_OF_OTHER_PERSON, FACE_DOES_NOT_MATCH_PERSON, an image error).

POST   /collections {"collection_name"}                      201 the collection
GET    /collections                                           {"collections": [...]}
DELETE /collections/{collection_name}                         {"erased": {...}} (verified erasure)
POST   /persons {"collection_name", "person_name", "metadata", "images_base_64": [...], "force"}
                                                              201 {"person_id", "person_name", "faces": [...]}
GET    /persons?collection_name=C&offset=0&limit=100          {"persons": [...], "offset", "limit", "total"}
GET    /persons/{person_id}                                   the person
PATCH  /persons/{person_id} {"person_name"?, "metadata"?}     the person
DELETE /persons/{person_id}                                   {"erased": {...}}
POST   /persons/{person_id}/faces {"images_base_64": [...], "force"}   201 {"person_id", "faces": [...]}
DELETE /persons/{person_id}/faces/{face_id}                   {"erased": {...}}
GET    /persons/{person_id}/faces/{face_id}/thumbnail.jpg     the face's stored 112x112 thumbnail (JPEG)

When no image of a request is accepted nothing is stored and the answer is 422 ERR_NOT_ENROLLED with each
image's outcome in metadata.faces.
"""
from __future__ import annotations

from ..errors import FacedError, InvalidInput, NotFound
from . import auth
from .http import Call, Reply, Router, check_value

SHAPE = "contract2"
MAX_IMAGES = 10
PAGE_LIMIT = 1000


class NotEnrolled(FacedError):
    code = "NOT_ENROLLED"

    def __init__(self, outcomes):
        super().__init__("no image was accepted; each image's reason is in metadata.faces")
        self.outcomes = outcomes


def outcome_json(outcome) -> dict:
    return outcome.to_dict()


def photos(call: Call) -> list:
    images = call.field("images_base_64", "array", required=True)
    if not 1 <= len(images) <= MAX_IMAGES:
        raise InvalidInput(f"images_base_64 must hold 1 to {MAX_IMAGES} images", "INVALID_ARGUMENT")
    return [call.engine.photo_base64(check_value(f"images_base_64[{index}]", text, "string"), f"image {index}")
            for index, text in enumerate(images)]


def query_int(call: Call, name: str, default: int, lo: int, hi: int) -> int:
    text = call.query.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise InvalidInput(f"the query parameter {name!r} must be a whole number", "INVALID_ARGUMENT") from None
    return check_value(name, value, "integer", lo, hi)


def face_id_param(call: Call) -> int:
    try:
        face_id = int(call.params["face_id"])
    except ValueError:
        raise InvalidInput("the face id must be a whole number", "INVALID_ARGUMENT") from None
    return check_value("face_id", face_id, "integer", 0, 2**63 - 1)


def register(router: Router) -> None:
    key = auth.X_API_KEY

    @router.route("POST", "/collections", shape=SHAPE, credential=key, body=True)
    def create_collection(call: Call):
        name = call.field("collection_name", "string", required=True)
        return Reply(call.engine.create_collection(name).to_dict(), 201)

    @router.route("GET", "/collections", shape=SHAPE, credential=key)
    def list_collections(call: Call):
        return {"collections": [c.to_dict() for c in call.engine.collections()]}

    @router.route("DELETE", "/collections/{collection_name}", shape=SHAPE, credential=key)
    def delete_collection(call: Call):
        erased = call.engine.delete_collection(call.params["collection_name"])
        _forget_crops(call)
        return {"erased": erased}

    @router.route("POST", "/persons", shape=SHAPE, credential=key, pooled=True, body=True)
    def create_person(call: Call):
        collection = call.field("collection_name", "string", required=True)
        name = call.field("person_name", "string", required=True)
        metadata = call.field("metadata", "object", default={})
        force = call.field("force", "boolean", default=False)
        call.engine.collection(collection)
        candidates = photos(call)
        enrolment = call.engine.add_person(collection, name, candidates, metadata, force)
        call.faces = sum(1 for c in candidates if c.face is not None)
        faces = [outcome_json(o) for o in enrolment.outcomes]
        if not enrolment.person_id:
            raise NotEnrolled(faces)
        return Reply({"person_id": enrolment.person_id, "person_name": enrolment.person_name, "faces": faces}, 201)

    @router.route("GET", "/persons", shape=SHAPE, credential=key)
    def list_persons(call: Call):
        collection_name = call.query.get("collection_name")
        if not collection_name:
            raise InvalidInput("the query parameter 'collection_name' is required", "MISSING_FIELD")
        offset = query_int(call, "offset", 0, 0, 2**31)
        limit = query_int(call, "limit", 100, 1, PAGE_LIMIT)
        collection = call.engine.collection(collection_name)
        persons = call.engine.persons(collection.name, offset, limit)
        return {"persons": [p.to_dict() for p in persons], "offset": offset, "limit": limit,
                "total": collection.persons}

    @router.route("GET", "/persons/{person_id}", shape=SHAPE, credential=key)
    def get_person(call: Call):
        return call.engine.person(call.params["person_id"]).to_dict()

    @router.route("PATCH", "/persons/{person_id}", shape=SHAPE, credential=key, body=True)
    def update_person(call: Call):
        name = call.field("person_name", "string")
        metadata = call.field("metadata", "object")
        if name is None and metadata is None:
            raise InvalidInput("send person_name and/or metadata to change", "MISSING_FIELD")
        return call.engine.update_person(call.params["person_id"], name, metadata).to_dict()

    @router.route("DELETE", "/persons/{person_id}", shape=SHAPE, credential=key)
    def delete_person(call: Call):
        erased = call.engine.delete_person(call.params["person_id"])
        _forget_crops(call)
        return {"erased": erased}

    @router.route("POST", "/persons/{person_id}/faces", shape=SHAPE, credential=key, pooled=True, body=True)
    def add_faces(call: Call):
        person = call.engine.person(call.params["person_id"])
        force = call.field("force", "boolean", default=False)
        candidates = photos(call)
        outcomes = call.engine.add_faces(person.id, candidates, force)
        call.faces = sum(1 for c in candidates if c.face is not None)
        faces = [outcome_json(o) for o in outcomes]
        if not any(o.accepted for o in outcomes):
            raise NotEnrolled(faces)
        return Reply({"person_id": person.id, "faces": faces}, 201)

    @router.route("DELETE", "/persons/{person_id}/faces/{face_id}", shape=SHAPE, credential=key)
    def delete_face(call: Call):
        erased = call.engine.delete_face(call.params["person_id"], face_id_param(call))
        _forget_crops(call)
        return {"erased": erased}

    @router.route("GET", "/persons/{person_id}/faces/{face_id}/thumbnail.jpg", shape=SHAPE, credential=key)
    def face_thumbnail(call: Call):
        face_id = face_id_param(call)
        person = call.engine.person(call.params["person_id"])
        if face_id not in person.face_ids:
            raise NotFound(f"person {person.id} has no face {face_id}", "FACE_ID_NOT_FOUND")
        return Reply(raw=call.engine.thumbnail(face_id), content_type="image/jpeg",
                     headers={"Cache-Control": "private, max-age=3600"})


def _forget_crops(call: Call) -> None:
    """After an erasure: served face crops are anonymous (crops.py), so every one held goes with it."""
    call.state.crops.clear()
