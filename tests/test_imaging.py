"""Bad input gives a clear error with a stable code, never a crash; odd but valid images decode right."""
from __future__ import annotations

import base64
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from device.errors import ImageError
from device.imaging import ImageLimits, decode_base64_image, decode_image, read_image_file


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height but carries almost no pixel data (a decompression bomb's header)."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def obama_jpeg(faces_dir) -> bytes:
    return (faces_dir / "face_recognition/tests/test_images/obama.jpg").read_bytes()


def test_empty_bytes():
    with pytest.raises(ImageError) as info:
        decode_image(b"")
    assert info.value.code == "IMAGE_EMPTY"


def test_non_image_bytes():
    with pytest.raises(ImageError) as info:
        decode_image(b"%PDF-1.4 this is not an image at all" * 10)
    assert info.value.code == "INVALID_IMAGE"


def test_truncated_jpeg(obama_jpeg):
    with pytest.raises(ImageError) as info:
        decode_image(obama_jpeg[: len(obama_jpeg) // 2])
    assert info.value.code == "INVALID_IMAGE"
    assert "truncated" in info.value.message or "corrupt" in info.value.message


def test_decompression_bomb_refused_from_header():
    with pytest.raises(ImageError) as info:
        decode_image(_png_header_only(30000, 30000))
    assert info.value.code == "IMAGE_TOO_LARGE"
    assert "pixel limit" in info.value.message


def test_byte_limit(obama_jpeg):
    with pytest.raises(ImageError) as info:
        decode_image(obama_jpeg, ImageLimits(max_bytes=len(obama_jpeg) - 1))
    assert info.value.code == "IMAGE_TOO_LARGE"


def test_nine_megabyte_base64_refused_before_decoding():
    payload = base64.b64encode(b"\xff" * (9 * 1024 * 1024)).decode()
    with pytest.raises(ImageError) as info:
        decode_base64_image(payload)
    assert info.value.code == "IMAGE_TOO_LARGE"


def test_base64_and_data_uri(obama_jpeg):
    plain = decode_image(obama_jpeg)
    encoded = base64.b64encode(obama_jpeg).decode()
    assert np.array_equal(decode_base64_image(encoded), plain)
    assert np.array_equal(decode_base64_image("data:image/jpeg;base64," + encoded), plain)
    with pytest.raises(ImageError):
        decode_base64_image("!!!! not base64 !!!!")


def test_exif_rotation_applied(faces_dir):
    # Stored 640x480 with EXIF orientation 6: shown upright it is portrait, 480 wide and 640 tall.
    image = read_image_file(str(faces_dir / "silent-face/images/sample/image_T1.jpg"))
    assert image.shape == (640, 480, 3)


def test_png_with_alpha_is_composited(faces_dir):
    image = read_image_file(str(faces_dir / "face_recognition/tests/test_images/32bit.png"))
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8


def test_sixteen_bit_png_scaled_not_clipped(obama_jpeg):
    grey = np.asarray(Image.open(io.BytesIO(obama_jpeg)).convert("L"), dtype=np.uint16) * 257
    buffer = io.BytesIO()
    Image.fromarray(grey).save(buffer, format="PNG")
    image = decode_image(buffer.getvalue())
    assert image.dtype == np.uint8 and image.shape[2] == 3
    # Scaled back to 8 bits, not saturated at 255.
    assert abs(int(image[..., 0].mean()) - int(grey.mean() / 257)) <= 1


def test_unreadable_file(tmp_path):
    with pytest.raises(ImageError) as info:
        read_image_file(str(tmp_path / "missing.jpg"))
    assert info.value.code == "IMAGE_UNREADABLE"
