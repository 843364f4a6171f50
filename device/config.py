"""One typed configuration: defaults < TOML file < FACED_* environment < command-line flags.

Every value is validated when the configuration is built, so a typo or an out-of-range number stops the
program at start-up with a message that names the key, instead of surfacing later as odd behaviour.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from .errors import ConfigError


def _range(lo: float | None = None, hi: float | None = None) -> dict:
    return {"range": (lo, hi)}


def _choice(*values: str) -> dict:
    return {"choices": values}


@dataclass
class ApiConfig:
    host: str = "127.0.0.1"
    port: int = field(default=8080, metadata=_range(0, 65535))


@dataclass
class StoreConfig:
    db: str = "~/.local/share/faced/faced.db"
    # A write waits at most this long for another writer (or a reader, for an erasure's checkpoint): DB_BUSY.
    busy_timeout_s: float = field(default=10.0, metadata=_range(0.0, 600.0))


@dataclass
class MqttConfig:
    url: str = ""  # mqtt://user:pass@host:1883; empty = no broker, events stay in the outbox


@dataclass
class ImagesConfig:
    max_bytes: int = field(default=8 * 1024 * 1024, metadata=_range(1024, None))
    max_pixels: int = field(default=64_000_000, metadata=_range(10_000, None))


@dataclass
class VisionConfig:
    threads: int = field(default=2, metadata=_range(1, 64))
    models_dir: str = ""  # empty: the models shipped with faced


@dataclass
class DetectorConfig:
    backend: str = field(default="yunet", metadata=_choice("yunet", "blazeface"))
    precision: str = ""  # empty: the manifest's default for this machine
    # Candidates above this score are kept (YuNet: for the face check below; see README "Detection").
    score_threshold: float = field(default=0.5, metadata=_range(0.05, 1.0))
    nms_threshold: float = field(default=0.3, metadata=_range(0.05, 1.0))
    # Photos are detected on a copy whose long side is at most this; crops come from the full image.
    max_side: int = field(default=640, metadata=_range(160, 4096))
    # A second, finer pass on large images that may hold small faces (group photos); 0 turns it off.
    fine_max_side: int = field(default=1280, metadata=_range(0, 8192))
    # Second opinion from BlazeFace on each candidate: rejects animal faces and clutter. A candidate is
    # kept when the geometric mean of YuNet's score and the check's score reaches accept_threshold.
    verify: bool = True
    accept_threshold: float = field(default=0.65, metadata=_range(0.0, 1.0))
    # Human check on each kept candidate (YuNet back-end, needs verify): a logistic regression on SFace's
    # response to the aligned face rejects animal faces. A candidate is kept when its probability of being a
    # human face reaches human_threshold (README "Detection" has the DET curve).
    human_check: bool = True
    human_threshold: float = field(default=0.5, metadata=_range(0.0, 1.0))
    min_face_px: float = field(default=8.0, metadata=_range(0.0, None))


@dataclass
class EmbedderConfig:
    precision: str = ""  # empty: the manifest's default for this machine


@dataclass
class AttributesConfig:
    age_precision: str = ""  # empty: the manifest's default for this machine
    gender_precision: str = ""


@dataclass
class QualityConfig:
    """Thresholds of the quality codes (device/vision/quality.py)."""

    min_eye_distance: float = field(default=28.0, metadata=_range(0.0, None))
    max_face_fraction: float = field(default=0.8, metadata=_range(0.0, 1.0))
    border_margin: float = field(default=0.02, metadata=_range(0.0, 0.5))
    max_box_outside: float = field(default=0.10, metadata=_range(0.0, 1.0))
    max_yaw: float = field(default=35.0, metadata=_range(0.0, 90.0))
    max_pitch: float = field(default=30.0, metadata=_range(0.0, 90.0))
    min_eyes_open: float = field(default=0.25, metadata=_range(0.0, 1.0))
    min_mesh_presence: float = field(default=0.5, metadata=_range(0.0, 1.0))


@dataclass
class LivenessConfig:
    """Passive liveness (MiniFASNet V2 + V1SE, fused). See README "Liveness"."""

    threshold: float = field(default=0.5, metadata=_range(0.0, 1.0))
    v2_precision: str = ""  # empty: the manifest's default for this machine
    v1se_precision: str = ""
    # Boxes the models are not trusted on: low detector confidence or an implausible shape.
    min_detector_score: float = field(default=0.8, metadata=_range(0.0, 1.0))
    min_box_aspect: float = field(default=0.6, metadata=_range(0.0, 10.0))  # height / width
    max_box_aspect: float = field(default=2.5, metadata=_range(0.0, 10.0))


@dataclass
class RecognitionConfig:
    # Calibrated score (0..1) at or above which two faces are the same person (1:1 compare).
    match_score: float = field(default=0.6, metadata=_range(0.0, 1.0))
    # Default for 1:N search (contract 2's min_similarity_score).
    min_similarity_score: float = field(default=0.7, metadata=_range(0.0, 1.0))


@dataclass
class Config:
    api: ApiConfig = field(default_factory=ApiConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    images: ImagesConfig = field(default_factory=ImagesConfig)
    vision: VisionConfig = field(default_factory=VisionConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    embedder: EmbedderConfig = field(default_factory=EmbedderConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    attributes: AttributesConfig = field(default_factory=AttributesConfig)
    liveness: LivenessConfig = field(default_factory=LivenessConfig)
    recognition: RecognitionConfig = field(default_factory=RecognitionConfig)

    @property
    def db_path(self) -> Path:
        return Path(os.path.expanduser(self.store.db))


# Where each model's precision is chosen (section.key), by the manifest's model name.
PRECISION_KEYS = {
    "yunet": "detector.precision",
    "sface": "embedder.precision",
    "age": "attributes.age_precision",
    "gender": "attributes.gender_precision",
    "minifasnet_v2": "liveness.v2_precision",
    "minifasnet_v1se": "liveness.v1se_precision",
}


def configured_precisions(config: Config) -> dict[str, str]:
    """model -> the precision the configuration asks for ("" = the manifest's default)."""
    result = {}
    for model, dotted in PRECISION_KEYS.items():
        section, key = dotted.split(".")
        result[model] = getattr(getattr(config, section), key)
    return result


# Short environment names that installers use (DESIGN: command line and configuration conventions).
_ENV_ALIASES = {
    "FACED_DB": ("store", "db"),
    "FACED_API_HOST": ("api", "host"),
    "FACED_API_PORT": ("api", "port"),
    "FACED_MQTT_URL": ("mqtt", "url"),
}


def load_config(
    path: str | os.PathLike | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build the configuration. `overrides` maps "section.key" to values from command-line flags."""
    env = os.environ if env is None else env
    config = Config()
    path = path or env.get("FACED_CONFIG")
    if path:
        _apply(config, _read_toml(Path(path)), source=str(path))
    _apply(config, _from_env(env), source="environment")
    if overrides:
        nested: dict[str, dict[str, Any]] = {}
        for dotted, value in overrides.items():
            section, key = dotted.split(".", 1)
            nested.setdefault(section, {})[key] = value
        _apply(config, nested, source="command line")
    return config


def _read_toml(path: Path) -> dict:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def _from_env(env: Mapping[str, str]) -> dict:
    sections = {f.name: f for f in fields(Config)}
    found: dict[str, dict[str, str]] = {}
    for name, value in env.items():
        if name in _ENV_ALIASES:
            section, key = _ENV_ALIASES[name]
        elif name.startswith("FACED_") and name != "FACED_CONFIG" and name != "FACED_TEST_DATA":
            rest = name[len("FACED_"):].lower()
            section, _, key = rest.partition("_")
            if section not in sections or not key:
                continue  # not a config variable (e.g. FACED_SOMETHING_ELSE used by tools)
        else:
            continue
        found.setdefault(section, {})[key] = value
    return found


def _apply(config: Config, values: Mapping[str, Any], source: str) -> None:
    sections = {f.name: f for f in fields(Config)}
    for section_name, section_values in values.items():
        if section_name not in sections:
            raise ConfigError(f"{source}: unknown section [{section_name}]; known: {', '.join(sections)}")
        if not isinstance(section_values, Mapping):
            raise ConfigError(f"{source}: [{section_name}] must be a table")
        section = getattr(config, section_name)
        known = {f.name: f for f in fields(section)}
        for key, raw in section_values.items():
            if key not in known:
                raise ConfigError(
                    f"{source}: unknown key {section_name}.{key}; known: {', '.join(known)}"
                )
            setattr(section, key, _coerce(known[key], raw, f"{section_name}.{key}", source))


def _coerce(spec: dataclasses.Field, raw: Any, name: str, source: str) -> Any:
    kind = type(spec.default)
    try:
        if kind is bool:
            value = _to_bool(raw)
        elif kind is int:
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError
            value = int(raw)
        elif kind is float:
            if isinstance(raw, bool):
                raise ValueError
            value = float(raw)
        else:
            if not isinstance(raw, str):
                raise ValueError
            value = raw
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: {name} must be a {kind.__name__}, got {raw!r}") from None
    lo, hi = spec.metadata.get("range", (None, None))
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ConfigError(f"{source}: {name} = {value} is outside [{lo}, {hi if hi is not None else 'inf'}]")
    choices = spec.metadata.get("choices")
    if choices and value not in choices:
        raise ConfigError(f"{source}: {name} = {value!r}; choose one of {', '.join(choices)}")
    return value


def _to_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)
