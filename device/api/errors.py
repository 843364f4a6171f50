"""One mapping from faced's error codes (device/errors.py) to each contract's own error shape and status.

The HTTP status is always `CODES[code].status` (400 bad input, 401 missing credential, 403 wrong credential,
404 unknown entity, 413 too large, 422 no usable face, 503 busy), so every contract answers the same failure
with the same status; only the body's words differ. Contract 1's invalid or expired authkey is TOKEN_INVALID,
401 with respcode "401", as the contract shows.
"""
from __future__ import annotations

from http import HTTPStatus

from ..errors import CODES, FacedError

# Contract 2 (and the management and ops endpoints, which speak its dialect): faced code -> contract code.
CONTRACT2_CODES = {
    "FACE_NOT_FOUND": "ERR_FACE_NOT_DETECTED",
    "API_KEY_MISSING": "ERR_API_KEY_NOT_PRESENT",
    "API_KEY_INVALID": "ERR_API_KEY_NOT_VALID",
    "COLLECTION_NOT_FOUND": "ERR_NOT_FOUND",
    "PERSON_NOT_FOUND": "ERR_NOT_FOUND",
    "FACE_ID_NOT_FOUND": "ERR_NOT_FOUND",
    "NOT_FOUND": "ERR_NOT_FOUND",
    "IMAGE_EMPTY": "ERR_BASE64_IMAGE_CANNOT_BE_DECODED",
    "INVALID_IMAGE": "ERR_BASE64_IMAGE_CANNOT_BE_DECODED",
}
CONTRACT2_MESSAGES = {
    "ERR_FACE_NOT_DETECTED": "A face could not be detected in the image(s).",
    "ERR_API_KEY_NOT_PRESENT": "The API key is missing from the request.",
    "ERR_API_KEY_NOT_VALID": "The API key is not valid.",
    "ERR_NOT_FOUND": "The requested entity could not be found.",
    "ERR_LIVENESS_ERROR": "A liveness error occurred. Please check the supplied image and the error metadata.",
    "ERR_BASE64_IMAGE_CANNOT_BE_DECODED": "The posted Base64 image(s) could not be decoded as JPEG/PNG bytes.",
}
# Contract 2's liveness metadata codes: with check_liveness, these (quality gates and FACE_NOT_LIVE) answer
# ERR_LIVENESS_ERROR; FACE_NOT_FOUND stays ERR_FACE_NOT_DETECTED ("if no face is found, liveness is not checked").
LIVENESS_METADATA_CODES = ("TOO_MANY_FACES", "FACE_CROPPED", "FACE_TOO_SMALL", "FACE_TOO_CLOSE",
                           "FACE_CLOSE_TO_BORDER", "FACE_ANGLE_TOO_LARGE", "FACE_IS_OCCLUDED", "EYES_CLOSED",
                           "FACE_LOW_CONFIDENCE", "FACE_BOX_DEGENERATE", "FACE_NOT_LIVE")


def status_of(exc: FacedError) -> int:
    return CODES[exc.code].status


def _server_fault(exc: FacedError) -> bool:
    return status_of(exc) >= 500 and exc.code not in ("BUSY", "TIMEOUT", "DB_BUSY", "DB_READ_ONLY")


def contract1(exc: FacedError, echo: dict) -> dict:
    """{"respcode": "401", "respdesc": "Unauthorized - ...", "rrn"?}; plus faced's stable `code`."""
    status = status_of(exc)
    body = {"respcode": str(status), "respdesc": f"{HTTPStatus(status).phrase} - {exc.message}"}
    if isinstance(echo.get("rrn"), str):
        body["rrn"] = echo["rrn"]
    body["code"] = exc.code
    return body


def contract2(exc: FacedError, echo: dict) -> dict:
    """{"code": "ERR_...", "message", "metadata": {"code": faced's code}}."""
    if echo.get("check_liveness") and exc.code in LIVENESS_METADATA_CODES:
        code = "ERR_LIVENESS_ERROR"
    else:
        code = CONTRACT2_CODES.get(exc.code, f"ERR_{exc.code}")
    message = CONTRACT2_MESSAGES.get(code, exc.message)
    metadata = {"code": exc.code, "detail": exc.message}
    if getattr(exc, "outcomes", None) is not None:  # enrolment: each image's outcome
        metadata["faces"] = exc.outcomes
    return {"code": code, "message": message, "metadata": metadata}


def contract3(exc: FacedError, echo: dict) -> dict:
    """{"sessionId", "hasError": true, "error": CODE}: the quality codes by their own names, server faults as
    INTERNAL_ERROR, every other failure by faced's code; plus `message`."""
    session = echo.get("sessionId")
    return {"sessionId": session if isinstance(session, str) else None, "hasError": True,
            "error": "INTERNAL_ERROR" if _server_fault(exc) else exc.code, "message": exc.message}


def contract4(exc: FacedError, echo: dict) -> dict:
    """{"error_code": 1, "error_msg"}; plus faced's stable `code`."""
    return {"error_code": 1, "error_msg": exc.message, "code": exc.code}


def contract5(exc: FacedError, echo: dict) -> dict:
    """Contract 5 shows no error shape; faced answers {"errorCode": faced's code, "errorMessage"}."""
    return {"errorCode": exc.code, "errorMessage": exc.message}


SHAPES = {"contract1": contract1, "contract2": contract2, "contract3": contract3, "contract4": contract4,
          "contract5": contract5}
