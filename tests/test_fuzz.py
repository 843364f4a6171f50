"""Random bytes, random image headers and random metadata through decoding and enrolment: only faced's own
errors come out (FacedError with a documented code), never an unhandled exception."""
from __future__ import annotations

import io
import json
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from device.config import load_config
from device.engine import Engine
from device.errors import CODES, FacedError
from device.imaging import ImageLimits, decode_base64_image, decode_image
from device.validation import check_metadata, parse_metadata

LIMITS = ImageLimits(max_bytes=2 * 1024 * 1024, max_pixels=4_000_000)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


@st.composite
def png_like(draw) -> bytes:
    """A PNG signature and IHDR with random fields, then random (maybe compressed) data, maybe cut short."""
    width, height = draw(st.integers(0, 70000)), draw(st.integers(0, 70000))
    depth, colour = draw(st.sampled_from([1, 2, 4, 8, 16, 3, 0])), draw(st.sampled_from([0, 2, 3, 4, 6, 7]))
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, draw(st.integers(0, 2)))
    body = draw(st.binary(max_size=512))
    if draw(st.booleans()):
        body = zlib.compress(body)
    data = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")
    return data[: draw(st.integers(8, len(data)))]


@st.composite
def jpeg_like(draw) -> bytes:
    """A real small JPEG with random bytes overwritten, truncated, or its size fields changed."""
    width, height = draw(st.integers(1, 64)), draw(st.integers(1, 64))
    pixels = np.frombuffer(draw(st.binary(min_size=width * height * 3, max_size=width * height * 3)),
                           np.uint8).reshape(height, width, 3)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=draw(st.integers(5, 95)))
    data = bytearray(buffer.getvalue())
    for _ in range(draw(st.integers(0, 6))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(2, len(data)))])


def _only_faced_errors(call, *args):
    try:
        return call(*args)
    except FacedError as exc:
        assert exc.code in CODES
        return None


@FUZZ
@given(st.one_of(st.binary(max_size=2048), png_like(), jpeg_like(),
                 st.builds(lambda b: b"GIF89a" + b, st.binary(max_size=256)),
                 st.builds(lambda b: b"BM" + b, st.binary(max_size=256)),
                 st.builds(lambda b: b"RIFF\x00\x00\x00\x00WEBPVP8 " + b, st.binary(max_size=256)),
                 st.builds(lambda b: b"II*\x00" + b, st.binary(max_size=256))))
def test_decoding_random_bytes_gives_an_image_or_a_faced_error(data):
    image = _only_faced_errors(decode_image, data, LIMITS)
    if image is not None:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 and image.size > 0


@FUZZ
@given(st.text(max_size=300))
def test_decoding_random_base64_text(text):
    _only_faced_errors(decode_base64_image, text, LIMITS)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=40)


@FUZZ
@given(json_values)
def test_random_metadata_is_accepted_only_when_valid(value):
    result = _only_faced_errors(check_metadata, value)
    if result is not None:
        # What is accepted is an object that round-trips through strict JSON.
        assert isinstance(result, dict)
        assert json.loads(json.dumps(result, allow_nan=False)) == result


@FUZZ
@given(st.text(max_size=400) | st.builds(lambda n: "[" * n + "]" * n, st.integers(0, 5000)))
def test_random_metadata_text(text):
    _only_faced_errors(parse_metadata, text)


@pytest.fixture(scope="module")
def engine(tmp_path_factory, pipeline):
    path = tmp_path_factory.mktemp("fuzz") / "faced.db"
    with Engine(load_config(env={}, overrides={"store.db": str(path)}), create=True, pipeline=pipeline) as opened:
        opened.create_collection("fuzz")
        yield opened


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(photos=st.lists(st.one_of(st.binary(max_size=512), png_like(), jpeg_like()), min_size=1, max_size=3),
       name=st.text(max_size=30), metadata=json_values)
def test_enrolment_of_random_input_never_raises_anything_but_faced_errors(engine, photos, name, metadata):
    candidates = [engine.photo(data, f"photo{i}") for i, data in enumerate(photos)]
    assert all(c.face is None and c.outcome.code in CODES for c in candidates)  # nothing here is a face
    enrolment = _only_faced_errors(engine.add_person, "fuzz", name, candidates, metadata)
    assert enrolment is None or enrolment.person_id is None
