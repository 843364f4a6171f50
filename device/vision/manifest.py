"""models/manifest.toml: which model files exist, in which precisions, and how faithful each one is.

The runtime refuses a file whose sha256 differs from the manifest: a model swapped or corrupted on disk
would otherwise give confidently wrong answers.
"""
from __future__ import annotations

import hashlib
import platform
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from ..errors import ModelError

MANIFEST_NAME = "manifest.toml"


def default_models_dir() -> Path:
    """models/ of a source checkout (also editable installs), else the copy a wheel installs."""
    candidates = [
        Path(__file__).resolve().parents[2] / "models",
        Path(sys.prefix) / "share" / "faced" / "models",
    ]
    for candidate in candidates:
        if (candidate / MANIFEST_NAME).is_file():
            return candidate
    return candidates[0]


@dataclass(frozen=True)
class Variant:
    model: str
    precision: str
    path: Path
    sha256: str
    shipped: bool
    passes: bool
    info: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def fidelity(self) -> dict:
        return self.info.get("fidelity", {})


class Manifest:
    def __init__(self, models_dir: str | Path | None = None):
        self.dir = Path(models_dir) if models_dir else default_models_dir()
        path = self.dir / MANIFEST_NAME
        try:
            with path.open("rb") as handle:
                self.data: dict[str, Any] = tomllib.load(handle)
        except FileNotFoundError:
            raise ModelError(f"no model manifest at {path}; set vision.models_dir") from None
        except tomllib.TOMLDecodeError as exc:
            raise ModelError(f"{path} is not valid TOML: {exc}") from None

    def models(self) -> list[str]:
        return [name for name, value in self.data.items() if isinstance(value, dict) and "variants" in value]

    def model(self, name: str) -> dict:
        entry = self.data.get(name)
        if not isinstance(entry, dict) or "variants" not in entry:
            raise ModelError(f"model {name!r} is not in {self.dir / MANIFEST_NAME}")
        return entry

    def variants(self, name: str) -> list[Variant]:
        entry = self.model(name)
        return [
            Variant(
                model=name,
                precision=precision,
                path=self.dir / info.get("file", ""),
                sha256=info.get("sha256", ""),
                shipped=bool(info.get("shipped", True)),
                passes=bool(info.get("passes", True)),
                info=info,
            )
            for precision, info in entry["variants"].items()
        ]

    def default_precision(self, name: str) -> str:
        entry = self.model(name)
        by_arch = entry.get("default_precision_by_arch", {})
        return by_arch.get(platform.machine(), entry.get("default_precision", ""))

    def variant(self, name: str, precision: str = "") -> Variant:
        """The shipped variant of `name` in `precision` (empty: this machine's default), sha256-checked."""
        precision = precision or self.default_precision(name)
        shipped = {v.precision: v for v in self.variants(name) if v.shipped}
        if precision not in shipped:
            raise ModelError(
                f"model {name!r} has no shipped {precision!r} variant; shipped: {', '.join(shipped) or 'none'}"
            )
        variant = shipped[precision]
        verify_file(variant)
        return variant

    def calibration(self, name: str) -> dict:
        return self.model(name).get("calibration", {})

    def human_check(self, name: str = "sface") -> dict:
        """The human-vs-animal classifier fitted on this embedder's output (tools/fit_human_check.py)."""
        return self.model(name).get("human_check", {})


def verify_file(variant: Variant) -> None:
    """Raise ModelError unless the file exists and its sha256 equals the manifest's."""
    if not variant.path.is_file():
        raise ModelError(f"model file {variant.path} is missing (model {variant.model}, {variant.precision})")
    actual = file_sha256(str(variant.path), variant.path.stat().st_mtime_ns, variant.path.stat().st_size)
    if actual != variant.sha256:
        raise ModelError(
            f"model file {variant.path} has sha256 {actual[:16]}..., the manifest expects "
            f"{variant.sha256[:16]}...: the file was changed or damaged; restore it or re-run tools/convert.py"
        )


@lru_cache(maxsize=64)
def file_sha256(path: str, mtime_ns: int, size: int) -> str:
    """sha256 of a file; cached per (path, mtime, size) so that reloading a model does not re-hash it."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
