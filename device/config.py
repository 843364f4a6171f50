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
    # Lifetime of contract 1's authkey tokens (POST /userauthentication).
    token_ttl_s: int = field(default=900, metadata=_range(10, 86400))
    # Request bodies over this are refused (413) from Content-Length before reading: two 8 MiB photos in base64.
    max_body_bytes: int = field(default=24 * 1024 * 1024, metadata=_range(1024, 1024 * 1024 * 1024))
    # The inference pool: requests running at once, and requests waiting for a worker; beyond both: 503.
    workers: int = field(default=2, metadata=_range(1, 64))
    queue: int = field(default=8, metadata=_range(0, 1024))
    # A request that has not finished (queue wait included) after this many seconds is answered 503 TIMEOUT.
    timeout_s: float = field(default=30.0, metadata=_range(0.1, 3600.0))
    # HTTPS on the same port when both are set (PEM files).
    tls_cert: str = ""
    tls_key: str = ""
    # Contract 4 videos (base64 in `img` or by URL): encoded size, duration from the header, decoded frame size.
    max_video_bytes: int = field(default=16 * 1024 * 1024, metadata=_range(1024, 1024 * 1024 * 1024))
    max_video_seconds: float = field(default=300.0, metadata=_range(1.0, 86400.0))
    max_video_pixels: int = field(default=3840 * 2160, metadata=_range(10_000, 100_000_000))
    # Contract 3 and 4 URL inputs (device/api/fetch.py); off: every URL is refused without a connection.
    url_inputs: bool = False
    # Host names or IP addresses that URL inputs may reach (exact, case-insensitive; any port). A loopback,
    # private, link-local or otherwise non-public address is only reached when it is itself on this list.
    # TOML: a list of strings; environment (FACED_API_URL_ALLOW_HOSTS): comma-separated.
    url_allow_hosts: list = field(default_factory=list)
    url_connect_timeout_s: float = field(default=5.0, metadata=_range(0.1, 120.0))
    url_total_timeout_s: float = field(default=20.0, metadata=_range(0.1, 600.0))
    url_max_bytes: int = field(default=16 * 1024 * 1024, metadata=_range(1024, 1024 * 1024 * 1024))
    # return_face_url: crops are served at /faces/{token}.jpg (with the key) for this long, in memory.
    face_url_ttl_s: int = field(default=600, metadata=_range(1, 86400))
    # The web console's session cookie (POST /ui/session): its lifetime, in memory (a restart signs out).
    session_ttl_s: int = field(default=8 * 3600, metadata=_range(60, 30 * 86400))


@dataclass
class StoreConfig:
    db: str = "~/.local/share/faced/faced.db"
    # A write waits at most this long for another writer (or a reader, for an erasure's checkpoint): DB_BUSY.
    busy_timeout_s: float = field(default=10.0, metadata=_range(0.0, 600.0))


@dataclass
class MqttConfig:
    url: str = ""  # mqtt://user:pass@host:1883; empty = no broker, events stay in the outbox
    # Topics live under <prefix>/<device_id> (DESIGN: faced/<device_id>).
    prefix: str = "faced"
    keepalive_s: int = field(default=30, metadata=_range(5, 3600))
    # Reconnection back-off after the broker goes away: 1 s doubling up to this.
    reconnect_max_s: int = field(default=10, metadata=_range(1, 600))
    # mqtts:// only: a CA file to verify the broker with (empty: the system's CAs).
    ca_file: str = ""


@dataclass
class EventsConfig:
    """Camera events: the durable outbox, the history and person presence (device/events/)."""

    device_id: str = ""  # empty: the host name (letters, digits, '-' and '_')
    # Events waiting for the broker's acknowledgement; when full the oldest waiting event is dropped (counted).
    outbox_max: int = field(default=10000, metadata=_range(10, 10_000_000))
    history_days: float = field(default=30.0, metadata=_range(0.0, 3650.0))
    # A recognised person turns `absent` this long after the last of their tracks left.
    absence_timeout_s: float = field(default=30.0, metadata=_range(0.0, 86400.0))
    thumbnail: bool = True  # a small JPEG of the face in each recognized/unknown/spoof event


@dataclass
class TrackingConfig:
    """Per-track decisions of the camera loop (device/camera/tracker.py)."""

    iou: float = field(default=0.3, metadata=_range(0.01, 1.0))  # box overlap that continues a track
    lost_s: float = field(default=1.0, metadata=_range(0.05, 60.0))  # unseen this long: the track has left
    min_frames: int = field(default=3, metadata=_range(1, 1000))  # shorter tracks give no event
    votes: int = field(default=3, metadata=_range(1, 100))  # good frames that must agree to name a person
    agree: float = field(default=0.6, metadata=_range(0.5, 1.0))  # their share of the track's quality weight
    max_evidence: int = field(default=8, metadata=_range(1, 1000))  # good frames after which it is `unknown`
    # A decided track's face is embedded again this often; under same_score it is someone else (a new track).
    verify_s: float = field(default=1.0, metadata=_range(0.0, 3600.0))  # 0: never
    same_score: float = field(default=0.5, metadata=_range(0.0, 1.0))


@dataclass
class VisitorsConfig:
    """Recurring unknown visitors (device/visitors.py): an anonymous id per unknown face, kept this long."""

    retention_days: float = field(default=30.0, metadata=_range(0.0, 3650.0))  # 0: no visitors are kept
    # Calibrated score at which an unknown track is the same visitor; -1: recognition.min_similarity_score.
    match_score: float = field(default=-1.0, metadata=_range(-1.0, 1.0))
    faces: int = field(default=5, metadata=_range(1, 50))  # best faces (embedding + thumbnail) kept per visitor


@dataclass
class HomeAssistantConfig:
    """Home Assistant MQTT discovery (device/events/homeassistant.py), when a broker is configured."""

    discovery: bool = True
    prefix: str = "homeassistant"  # HA's discovery prefix; its birth message is <prefix>/status = online


# Values of a [cameras.NAME] table (validated by camera_config).
CAMERA_LIVENESS = ("passive", "active", "both", "off")
CAMERA_KEYS = ("source", "collection", "liveness", "min_quality", "match_score", "roi", "loop")


@dataclass
class CameraConfig:
    source: str  # picamera2, /dev/videoN (or a number), rtsp://..., http(s)://..., or a video file
    collection: str = ""  # empty: the database's only collection
    liveness: str = "passive"  # passive, active (motion over time), both, or off
    min_quality: int = 40  # 0-100: frames under it are not evidence
    match_score: float | None = None  # None: recognition.min_similarity_score
    roi: tuple[float, float, float, float] | None = None  # [x, y, w, h] fractions of the frame; faces centred in it
    loop: bool = False  # a video file starts again at its end


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
    # Test-time flip: average the face's and its mirror's embeddings (one more SFace run per face). It changes
    # the vectors: collections made with the other setting need `faced reembed` (README "Evaluation").
    flip: bool = False
    # Where the alignment's eye points come from: "detector" (its landmarks) or "mesh" (the face mesh's eye
    # centres; one more ~2 ms model run per face). Also part of the vectors' identity (faced reembed).
    eyes: str = field(default="detector", metadata=_choice("detector", "mesh"))


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
    events: EventsConfig = field(default_factory=EventsConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    visitors: VisitorsConfig = field(default_factory=VisitorsConfig)
    homeassistant: HomeAssistantConfig = field(default_factory=HomeAssistantConfig)
    cameras: dict = field(default_factory=dict)  # name -> CameraConfig ([cameras.NAME] tables)

    @property
    def db_path(self) -> Path:
        return Path(os.path.expanduser(self.store.db))


# `faced models tune` writes the fastest precisions it measured here, next to the database.
TUNED_NAME = "tuned.toml"

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
    path = path or env.get("FACED_CONFIG")
    layers = [(_read_toml(Path(path)), str(path))] if path else []
    layers.append((_from_env(env), "environment"))
    if overrides:
        nested: dict[str, dict[str, Any]] = {}
        for dotted, value in overrides.items():
            section, key = dotted.split(".", 1)
            nested.setdefault(section, {})[key] = value
        layers.append((nested, "command line"))
    config = _build(layers)
    # tuned.toml sits next to the database, which the layers above choose: read it now, then apply it under
    # them (defaults < tuned.toml < file < environment < flags).
    tuned = config.db_path.parent / TUNED_NAME
    if tuned.is_file():
        config = _build([(_read_toml(tuned), str(tuned))] + layers)
    return config


def _build(layers) -> Config:
    config = Config()
    for values, source in layers:
        _apply(config, values, source)
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
            if section not in sections or not key or section == "cameras":
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
        if section_name == "cameras":
            for name, table in section_values.items():
                config.cameras[name] = camera_config(name, table, source)
            continue
        section = getattr(config, section_name)
        known = {f.name: f for f in fields(section)}
        for key, raw in section_values.items():
            if key not in known:
                raise ConfigError(
                    f"{source}: unknown key {section_name}.{key}; known: {', '.join(known)}"
                )
            setattr(section, key, _coerce(known[key], raw, f"{section_name}.{key}", source))


def _coerce(spec: dataclasses.Field, raw: Any, name: str, source: str) -> Any:
    kind = list if spec.default_factory is list else type(spec.default)
    try:
        if kind is list:  # a list of strings: TOML array, or comma-separated text (environment, flags)
            if isinstance(raw, str):
                raw = [part for part in (p.strip() for p in raw.split(",")) if part]
            if not isinstance(raw, (list, tuple)) or not all(isinstance(v, str) and v.strip() for v in raw):
                raise ValueError
            value = [v.strip() for v in raw]
        elif kind is bool:
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


def camera_config(name: str, table: Any, source: str = "configuration") -> CameraConfig:
    """One [cameras.NAME] table (or `--camera NAME=SOURCE`), checked key by key."""
    where = f"{source}: cameras.{name}"
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise ConfigError(f"{where}: a camera name is letters, digits, '-' and '_'")
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table")
    unknown = [key for key in table if key not in CAMERA_KEYS]
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]}; known: {', '.join(CAMERA_KEYS)}")
    if not isinstance(table.get("source"), str) or not table["source"].strip():
        raise ConfigError(f"{where}.source is required: picamera2, /dev/video0, rtsp://..., or a video file")
    camera = CameraConfig(source=table["source"].strip())
    if "collection" in table:
        if not isinstance(table["collection"], str):
            raise ConfigError(f"{where}.collection must be a string")
        camera.collection = table["collection"]
    if "liveness" in table:
        if table["liveness"] not in CAMERA_LIVENESS:
            raise ConfigError(f"{where}.liveness = {table['liveness']!r}; choose one of {', '.join(CAMERA_LIVENESS)}")
        camera.liveness = table["liveness"]
    if "min_quality" in table:
        value = table["min_quality"]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
            raise ConfigError(f"{where}.min_quality must be a whole number from 0 to 100, got {value!r}")
        camera.min_quality = value
    if "match_score" in table:
        value = table["match_score"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise ConfigError(f"{where}.match_score must be a number from 0 to 1, got {value!r}")
        camera.match_score = float(value)
    if "roi" in table:
        value = table["roi"]
        if (not isinstance(value, (list, tuple)) or len(value) != 4
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
                or not all(0.0 <= v <= 1.0 for v in value) or value[2] <= 0 or value[3] <= 0
                or value[0] + value[2] > 1.0 + 1e-9 or value[1] + value[3] > 1.0 + 1e-9):
            raise ConfigError(f"{where}.roi must be [x, y, w, h], fractions of the frame inside it, got {value!r}")
        camera.roi = tuple(float(v) for v in value)
    if "loop" in table:
        if not isinstance(table["loop"], bool):
            raise ConfigError(f"{where}.loop must be true or false")
        camera.loop = table["loop"]
    return camera


def add_camera_flag(config: Config, flag: str) -> CameraConfig:
    """`--camera NAME=SOURCE`: a camera with the defaults (replaces a configured camera of that name)."""
    name, sep, source = flag.partition("=")
    if not sep:
        raise ConfigError(f"--camera {flag!r}: use NAME=SOURCE, e.g. door=/dev/video0")
    camera = camera_config(name.strip(), {"source": source}, "command line")
    config.cameras[name.strip()] = camera
    return camera
