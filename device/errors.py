"""One error type for everything faced refuses, with a stable machine-readable code.

Callers (CLI, API, camera loop) map `code` to their own words; the message is for humans.
"""
from __future__ import annotations


class FacedError(Exception):
    code = "ERROR"

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self)

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message}


class ImageError(FacedError):
    """Input that is not a usable image (empty, truncated, too large, unknown format)."""

    code = "INVALID_IMAGE"


class ModelError(FacedError):
    """A model file that is missing, altered or not in the manifest."""

    code = "MODEL_ERROR"


class ConfigError(FacedError):
    code = "CONFIG_ERROR"
