"""Model files are checked against the manifest's sha256; a changed file is refused with a clear message."""
from __future__ import annotations

import shutil

import pytest

from device.errors import ModelError
from device.vision.manifest import Manifest, default_models_dir
from device.vision.runtime import TFLiteModel


@pytest.fixture
def models_copy(tmp_path):
    target = tmp_path / "models"
    shutil.copytree(default_models_dir(), target)
    return target


def test_every_shipped_file_verifies():
    manifest = Manifest()
    for name in manifest.models():
        for variant in manifest.variants(name):
            if variant.shipped:
                assert manifest.variant(name, variant.precision).path.is_file()


def test_altered_file_is_refused(models_copy):
    manifest = Manifest(models_copy)
    variant = manifest.variant("sface")
    data = bytearray(variant.path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    variant.path.write_bytes(bytes(data))
    with pytest.raises(ModelError) as info:
        Manifest(models_copy).variant("sface")
    assert "sha256" in str(info.value) and variant.path.name in str(info.value)


def test_missing_file_and_unknown_precision(models_copy):
    manifest = Manifest(models_copy)
    variant = manifest.variant("yunet")
    variant.path.unlink()
    with pytest.raises(ModelError, match="missing"):
        Manifest(models_copy).variant("yunet", variant.precision)
    with pytest.raises(ModelError, match="no shipped 'fp64' variant"):
        manifest.variant("sface", "fp64")


def test_missing_manifest(tmp_path):
    with pytest.raises(ModelError, match="no model manifest"):
        Manifest(tmp_path)


def test_runtime_loads_with_thread_count():
    model = TFLiteModel(Manifest().variant("sface"), threads=1)
    assert model.input_shape == (1, 112, 112, 3)
