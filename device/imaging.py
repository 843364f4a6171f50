"""Safe decoding of untrusted image bytes into RGB uint8 arrays.

Limits are checked before pixels are decoded: a byte limit on the input, and a pixel limit read from the
image header (a 30000x30000 PNG is a few kilobytes of header and gigabytes of pixels). EXIF orientation is
applied, alpha is composited onto white, 16-bit and palette images are reduced to 8-bit RGB.
"""
from __future__ import annotations

import base64
import binascii
import io
import os
import re
import struct
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .config import ImagesConfig
from .errors import ImageError

_DATA_URI = re.compile(r"^data:image/[\w.+-]+;base64,", re.IGNORECASE)
MIB = 1024 * 1024


@dataclass(frozen=True)
class ImageLimits:
    # The defaults are the [images] section's (config.py holds them once).
    max_bytes: int = ImagesConfig.max_bytes
    max_pixels: int = ImagesConfig.max_pixels

    @classmethod
    def from_config(cls, images: ImagesConfig) -> "ImageLimits":
        return cls(max_bytes=images.max_bytes, max_pixels=images.max_pixels)


def _too_many_bytes(size: int, limits: ImageLimits, approximate: bool = False) -> ImageError:
    return ImageError(f"the image is {'about ' if approximate else ''}{size / MIB:.1f} MiB, over the "
                      f"{limits.max_bytes / MIB:.1f} MiB limit (images.max_bytes)", "IMAGE_TOO_LARGE")


def decode_image(data: bytes, limits: ImageLimits = ImageLimits()) -> np.ndarray:
    """Decode image bytes (JPEG, PNG, WebP, BMP, TIFF, GIF: whatever Pillow reads) to an HxWx3 RGB array."""
    if not data:
        raise ImageError("the image is empty (0 bytes)", "IMAGE_EMPTY")
    if len(data) > limits.max_bytes:
        raise _too_many_bytes(len(data), limits)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own pixel limit decides
            image = Image.open(io.BytesIO(data))  # reads the header only
            width, height = image.size
            if width < 1 or height < 1:
                raise ImageError(f"the image is {width}x{height} pixels: it has no pixels", "INVALID_IMAGE")
            if width * height > limits.max_pixels:
                raise ImageError(
                    f"the image is {width}x{height} pixels ({width * height / 1e6:.0f} megapixels), over the "
                    f"{limits.max_pixels / 1e6:.0f} megapixel limit (images.max_pixels)", "IMAGE_TOO_LARGE")
            image.load()
            return _to_rgb_array(image)
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise ImageError(f"the image would decode to more than the {limits.max_pixels / 1e6:.0f} megapixel "
                         "limit (images.max_pixels): refused as a decompression bomb", "IMAGE_TOO_LARGE") from None
    except UnidentifiedImageError:
        raise ImageError("the bytes are not an image in a known format", "INVALID_IMAGE") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, struct.error, ZeroDivisionError,
            MemoryError) as exc:
        # Pillow reports truncated or corrupt data as OSError ("image file is truncated", "broken data stream");
        # malformed headers of some formats surface as the others.
        raise ImageError(f"the image data is corrupt or truncated ({type(exc).__name__}: {exc})",
                         "INVALID_IMAGE") from None


def decode_base64_image(text: str, limits: ImageLimits = ImageLimits()) -> np.ndarray:
    """Decode a base64 string, with or without a data: URI prefix."""
    return decode_image(decode_base64(text, limits), limits)


def decode_base64(text: str, limits: ImageLimits = ImageLimits()) -> bytes:
    """The bytes of a base64 image string, with or without a data: URI prefix (not yet decoded as an image)."""
    if not isinstance(text, str) or not text.strip():
        raise ImageError("the base64 image is empty", "IMAGE_EMPTY")
    payload = _DATA_URI.sub("", text.strip(), count=1)
    # base64 grows data by 4/3: refuse before decoding what cannot fit the byte limit.
    if len(payload) * 3 // 4 > limits.max_bytes + 3:
        raise _too_many_bytes(len(payload) * 3 // 4, limits, approximate=True)
    try:
        data = base64.b64decode(payload, validate=False)
    except (binascii.Error, ValueError):
        raise ImageError("the image is not valid base64", "INVALID_IMAGE") from None
    if not data:
        raise ImageError("the base64 image is empty", "IMAGE_EMPTY")
    return data


def read_file(path: str, limits: ImageLimits = ImageLimits()) -> bytes:
    """An image file's bytes, refused when over the byte limit (its real size in the message)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(limits.max_bytes + 1)
            if len(data) > limits.max_bytes:
                size = os.fstat(handle.fileno()).st_size
                raise _too_many_bytes(max(size, len(data)), limits)
    except IsADirectoryError:
        raise ImageError(f"cannot read {path}: it is a folder", "IMAGE_UNREADABLE") from None
    except OSError as exc:
        raise ImageError(f"cannot read {path}: {exc.strerror or exc}", "IMAGE_UNREADABLE") from None
    return data


def read_image_file(path: str, limits: ImageLimits = ImageLimits()) -> np.ndarray:
    """Read and decode an image file, with the same limits as network input."""
    return decode_image(read_file(path, limits), limits)


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ImageError("cannot encode the image as JPEG", "ENCODE_ERROR")
    return data.tobytes()


def encode_thumbnail(aligned_rgb: np.ndarray) -> bytes:
    """The aligned 112x112 crop as a JPEG (quality 95: `faced reembed` recomputes vectors from it)."""
    return encode_jpeg(aligned_rgb, 95)


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
