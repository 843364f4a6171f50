"""Every error faced reports, in one place: its stable code, the HTTP status it maps to, and its meaning.

Errors are raised by class wherever a caller can cause them (`raise NotFound(..., "PERSON_NOT_FOUND")`). A
class has a default code; a few classes carry several related codes (an image can be empty, too large or
corrupt). Front ends never invent codes: the CLI prints `code: message` (or `{"error": {"code", "message"}}`
with --json) and exits 1, the HTTP API maps `CODES[code].status` into each contract's own error shape.
`tests/test_errors.py` checks that every code raised in the package is listed here and in the README.
"""
from __future__ import annotations

from typing import NamedTuple


class Code(NamedTuple):
    status: int  # HTTP status
    meaning: str


# Stable error codes. Scripts and Home Assistant automations rely on them: add, never rename.
CODES: dict[str, Code] = {
    # input images
    "IMAGE_EMPTY": Code(400, "the image is empty"),
    "INVALID_IMAGE": Code(400, "not an image, or corrupt or truncated"),
    "IMAGE_TOO_LARGE": Code(413, "over images.max_bytes or images.max_pixels"),
    "IMAGE_UNREADABLE": Code(400, "the image file cannot be read"),
    # faces and quality (device/vision/quality.py decides them)
    "FACE_NOT_FOUND": Code(422, "no face in the image"),
    "TOO_MANY_FACES": Code(422, "more than one face where one is required"),
    "FACE_TOO_SMALL": Code(422, "eye distance under quality.min_eye_distance"),
    "FACE_TOO_CLOSE": Code(422, "face wider than quality.max_face_fraction of the image"),
    "FACE_CLOSE_TO_BORDER": Code(422, "face within quality.border_margin of an edge"),
    "FACE_CROPPED": Code(422, "a landmark or too much of the face outside the image"),
    "FACE_ANGLE_TOO_LARGE": Code(422, "head turned or tilted beyond quality.max_yaw / max_pitch"),
    "EYES_CLOSED": Code(422, "eye openness under quality.min_eyes_open"),
    "FACE_IS_OCCLUDED": Code(422, "face mesh presence under quality.min_mesh_presence"),
    "FACE_LOW_CONFIDENCE": Code(422, "detector score too low to trust liveness"),
    "FACE_BOX_DEGENERATE": Code(422, "implausible face box shape for liveness"),
    "FACE_NOT_LIVE": Code(422, "passive liveness score under liveness.threshold"),
    "DUPLICATE_OF_OTHER_PERSON": Code(409, "the face is already enrolled as another person"),
    "FACE_DOES_NOT_MATCH_PERSON": Code(422, "the photo does not match the person's other photos"),
    "NOT_ENROLLED": Code(422, "no photo of the person was accepted (each photo's reason is listed)"),
    "FACE_QUALITY_TOO_LOW": Code(422, "no face of an image reaches the requested quality threshold"),
    # the store
    "DB_NOT_FOUND": Code(404, "the database file does not exist (only commands that create data create it)"),
    "NOT_A_FACED_DB": Code(400, "the file is not a faced database (another application's, or not SQLite)"),
    "DB_READ_ONLY": Code(503, "the database file or its folder is read-only"),
    "DB_BUSY": Code(503, "another writer held the database longer than store.busy_timeout_s"),
    "DB_CORRUPT": Code(500, "the database file is damaged"),
    "DB_TOO_NEW": Code(400, "the database was written by a newer faced"),
    "DB_UNAVAILABLE": Code(500, "the database cannot be opened or created at this path"),
    "COLLECTION_NOT_FOUND": Code(404, "no collection of that name"),
    "COLLECTION_EXISTS": Code(409, "a collection of that name exists"),
    "PERSON_NOT_FOUND": Code(404, "no person with that id"),
    "PERSON_EXISTS": Code(409, "a person with that id exists"),
    "FACE_ID_NOT_FOUND": Code(404, "no enrolled face with that id"),
    "EMBEDDER_MISMATCH": Code(409, "the collection's vectors come from another embedder: run faced reembed"),
    "AMBIGUOUS_COLLECTION": Code(400, "several collections exist: name one"),
    "INVALID_NAME": Code(400, "a collection or person name that is empty, too long or has control characters"),
    "INVALID_METADATA": Code(400, "metadata that is not a JSON object of depth <= 8, <= 16 KiB, finite numbers"),
    "INVALID_EXPORT": Code(400, "the file is not a faced export"),
    "INVALID_THUMBNAIL": Code(500, "a stored thumbnail cannot be decoded"),
    "FILE_EXISTS": Code(409, "the output file exists"),
    "FILE_NOT_FOUND": Code(404, "the input file does not exist"),
    "NOT_A_FOLDER": Code(400, "the path is not a folder"),
    "NO_PERSONS": Code(400, "the folder has no subfolders (one per person)"),
    "NO_PHOTOS": Code(400, "a person's subfolder holds no photo"),
    "OUTPUT_ERROR": Code(400, "an output file cannot be written"),
    "ENCODE_ERROR": Code(500, "an image cannot be encoded"),
    # requests and options
    "INVALID_ARGUMENT": Code(400, "an option or request field out of range or of the wrong type"),
    "MISSING_FIELD": Code(400, "a required request field is missing"),
    "INVALID_JSON": Code(400, "the request body is not a JSON object"),
    "BODY_TOO_LARGE": Code(413, "the request body is over api.max_body_bytes"),
    "URL_INPUT_DISABLED": Code(400, "URL inputs are off (api.url_inputs); send the image as base64"),
    "URL_INVALID": Code(400, "the URL cannot be parsed, has no host, or carries a user name or password"),
    "URL_SCHEME_REFUSED": Code(400, "the URL (or a redirect) is not http:// or https://"),
    "URL_HOST_NOT_ALLOWED": Code(400, "the URL's host (or a redirect's) is not on api.url_allow_hosts"),
    "URL_ADDRESS_REFUSED": Code(400, "the host resolves to a loopback, private, link-local, multicast, "
                                     "unspecified or reserved address that is not allow-listed"),
    "URL_TOO_LARGE": Code(413, "the download is over api.url_max_bytes"),
    "URL_TIMEOUT": Code(400, "the download passed api.url_connect_timeout_s or api.url_total_timeout_s"),
    "URL_FETCH_FAILED": Code(400, "the download failed: no answer, an HTTP error status, or too many redirects"),
    "URL_CONTENT_REFUSED": Code(400, "the downloaded bytes are not an image or video (or not what was declared)"),
    "INVALID_VIDEO": Code(400, "a video that cannot be opened or decoded, or that is truncated"),
    "VIDEO_NO_FRAMES": Code(400, "the video holds no frame"),
    "VIDEO_TOO_LARGE": Code(413, "over api.max_video_bytes or api.max_video_pixels"),
    "VIDEO_TOO_LONG": Code(413, "the video's header says it is longer than api.max_video_seconds"),
    "FACE_URL_NOT_FOUND": Code(404, "no face crop at that URL: it expired (api.face_url_ttl_s) or was erased"),
    "API_KEY_MISSING": Code(401, "no credential in the request"),
    "API_KEY_INVALID": Code(403, "the credential is not a valid key"),
    "TOKEN_INVALID": Code(401, "the authkey is not valid or has expired"),
    "SESSION_INVALID": Code(401, "the console's session cookie is unknown or expired: sign in again"),
    "CSRF_TOKEN_INVALID": Code(403, "a state-changing request with the session cookie lacks its X-CSRF-Token"),
    "KEY_NOT_FOUND": Code(404, "no API key of that name"),
    "KEY_EXISTS": Code(409, "an API key of that name exists"),
    "NOT_FOUND": Code(404, "no such endpoint"),
    "METHOD_NOT_ALLOWED": Code(405, "the endpoint does not take this method"),
    "BUSY": Code(503, "the inference pool is full: retry after Retry-After seconds"),
    "TIMEOUT": Code(503, "the request took longer than api.timeout_s"),
    # the appliance
    "CONFIG_ERROR": Code(400, "a configuration key is unknown or out of range"),
    "ADDRESS_IN_USE": Code(400, "the API port is in use"),
    "NO_API_KEYS": Code(400, "serving beyond loopback needs an API key: run `faced keys create --name NAME`"),
    "TLS_ERROR": Code(400, "api.tls_cert / api.tls_key cannot be loaded, or only one of them is set"),
    "MODEL_ERROR": Code(500, "a model file is missing, altered or cannot be loaded"),
    "NO_DATA": Code(400, "the photos a benchmark needs are not present (pass them, or set FACED_TEST_DATA)"),
    "CAMERA_NOT_FOUND": Code(404, "no camera of that name"),
    "EVENT_NOT_FOUND": Code(404, "no stored event with that id (unknown, or pruned after events.history_days)"),
    "VISITOR_NOT_FOUND": Code(404, "no unknown visitor with that id (forgotten, expired, or promoted)"),
    "VISITORS_OFF": Code(400, "visitors are not kept (visitors.retention_days = 0)"),
    "NO_FRAME": Code(503, "the camera has not delivered a frame yet"),
    "NO_REFERENCE": Code(400, "the reference models for `faced bench --reference` are not present"),
    "INTERNAL_ERROR": Code(500, "a fault in faced itself (a bug): reported with its cause in the log"),
}


class FacedError(Exception):
    """Base of every error a caller can cause or that faced reports as a handled failure."""

    code = "INTERNAL_ERROR"

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if self.code not in CODES:  # a typo here would reach scripts as an undocumented code
            raise ValueError(f"undocumented error code {self.code!r}")

    @property
    def http_status(self) -> int:
        return CODES[self.code].status

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message}


class ImageError(FacedError):
    """Input that is not a usable image (empty, truncated, too large, unknown format)."""

    code = "INVALID_IMAGE"


class FaceError(FacedError):
    """An image whose faces cannot answer the request (none, too many, a quality or liveness code)."""

    code = "FACE_NOT_FOUND"


class NotFound(FacedError):
    code = "NOT_FOUND"


class Conflict(FacedError):
    code = "FILE_EXISTS"


class EmbedderMismatch(FacedError):
    code = "EMBEDDER_MISMATCH"


class InvalidInput(FacedError):
    """A name, metadata, option or request field that is not acceptable."""

    code = "INVALID_ARGUMENT"


class StoreError(FacedError):
    """The database file cannot be used: missing, foreign, read-only, busy or damaged."""

    code = "DB_UNAVAILABLE"


class AuthError(FacedError):
    code = "API_KEY_MISSING"


class Busy(FacedError):
    """No room to run the request now (a full inference pool, a timeout)."""

    code = "BUSY"

    def __init__(self, message: str, code: str | None = None, retry_after: int = 1):
        super().__init__(message, code)
        self.retry_after = retry_after


class ModelError(FacedError):
    """A model file that is missing, altered or not in the manifest."""

    code = "MODEL_ERROR"


class ConfigError(FacedError):
    code = "CONFIG_ERROR"
