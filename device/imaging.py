"""Safe decoding of untrusted image bytes into RGB uint8 arrays.

Limits are checked before pixels are decoded: a byte limit on the input, and a pixel limit read from the
image header (a 30000x30000 PNG is a few kilobytes of header and gigabytes of pixels). EXIF orientation is
applied, alpha is composited onto white, 16-bit and palette images are reduced to 8-bit RGB.
"""
from __future__ import annotations

import base64
import binascii
import io
import re
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError

DEFAULT_MAX_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_PIXELS = 64_000_000

_DATA_URI = re.compile(r"^data:image/[\w.+-]+;base64,", re.IGNORECASE)


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = DEFAULT_MAX_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS


def decode_image(data: bytes, limits: ImageLimits = ImageLimits()) -> np.ndarray:
    """Decode image bytes (JPEG, PNG, WebP, BMP, TIFF, GIF: whatever Pillow reads) to an HxWx3 RGB array."""
    if not data:
        raise ImageError("the image is empty (0 bytes)", "IMAGE_EMPTY")
    if len(data) > limits.max_bytes:
        raise ImageError(
            f"the image is {len(data) / 1e6:.1f} MB, over the {limits.max_bytes / 1e6:.1f} MB limit",
            "IMAGE_TOO_LARGE",
        )
    try:
        image = Image.open(io.BytesIO(data))  # reads the header only
        width, height = image.size
        if width * height > limits.max_pixels:
            raise ImageError(
                f"the image is {width}x{height} pixels, over the {limits.max_pixels:,} pixel limit",
                "IMAGE_TOO_LARGE",
            )
        image.load()
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError(f"the image is over the {limits.max_pixels:,} pixel limit ({exc})",
                         "IMAGE_TOO_LARGE") from None
    except UnidentifiedImageError:
        raise ImageError("the bytes are not an image in a known format", "INVALID_IMAGE") from None
    except (OSError, SyntaxError, ValueError) as exc:
        # Pillow reports truncated or corrupt data as OSError ("image file is truncated", "broken data stream").
        raise ImageError(f"the image data is corrupt or truncated ({exc})", "INVALID_IMAGE") from None
    return _to_rgb_array(image)


def decode_base64_image(text: str, limits: ImageLimits = ImageLimits()) -> np.ndarray:
    """Decode a base64 string, with or without a data: URI prefix."""
    if not isinstance(text, str) or not text.strip():
        raise ImageError("the base64 image is empty", "IMAGE_EMPTY")
    payload = _DATA_URI.sub("", text.strip(), count=1)
    # base64 grows data by 4/3: refuse before decoding what cannot fit the byte limit.
    if len(payload) * 3 // 4 > limits.max_bytes + 3:
        raise ImageError(f"the image is over the {limits.max_bytes / 1e6:.1f} MB limit", "IMAGE_TOO_LARGE")
    try:
        data = base64.b64decode(payload, validate=False)
    except (binascii.Error, ValueError):
        raise ImageError("the image is not valid base64", "INVALID_IMAGE") from None
    return decode_image(data, limits)


def read_image_file(path: str, limits: ImageLimits = ImageLimits()) -> np.ndarray:
    """Read and decode an image file, with the same limits as network input."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(limits.max_bytes + 1)
    except OSError as exc:
        raise ImageError(f"cannot read {path}: {exc.strerror or exc}", "IMAGE_UNREADABLE") from None
    return decode_image(data, limits)


def _to_rgb_array(image: Image.Image) -> np.ndarray:
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit (or 32-bit integer) greyscale: scale to 8 bits instead of clipping.
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if values.max(initial=0) > 255 else 255.0
        image = Image.fromarray(np.clip(values * (255.0 / top), 0, 255).astype(np.uint8), "L")
    elif image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        span = max(values.max(initial=0) - values.min(initial=0), 1e-9)
        image = Image.fromarray(((values - values.min()) * (255.0 / span)).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))
