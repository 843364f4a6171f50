"""Typed configuration: precedence defaults < file < environment < flags, and clear validation errors."""
from __future__ import annotations

import pytest

from device.config import load_config
from device.errors import ConfigError


def test_defaults():
    config = load_config(env={})
    assert (config.api.host, config.api.port) == ("127.0.0.1", 8080)
    assert config.mqtt.url == ""
    assert config.recognition.min_similarity_score == 0.7


def test_precedence(tmp_path):
    path = tmp_path / "faced.toml"
    path.write_text('[api]\nport = 9000\nhost = "127.0.0.2"\n[detector]\nscore_threshold = 0.5\n')
    config = load_config(path, env={"FACED_API_PORT": "9100", "FACED_DETECTOR_SCORE_THRESHOLD": "0.55"},
                         overrides={"api.port": 9200})
    assert config.api.host == "127.0.0.2"  # file
    assert config.detector.score_threshold == 0.55  # environment beats file
    assert config.api.port == 9200  # flag beats environment


def test_env_aliases_and_config_file_variable(tmp_path):
    path = tmp_path / "faced.toml"
    path.write_text("[vision]\nthreads = 3\n")
    config = load_config(env={"FACED_CONFIG": str(path), "FACED_DB": "/tmp/x.db",
                              "FACED_MQTT_URL": "mqtt://h:1883"})
    assert config.vision.threads == 3
    assert config.store.db == "/tmp/x.db"
    assert config.mqtt.url == "mqtt://h:1883"


@pytest.mark.parametrize("text, fragment", [
    ("[api]\nprot = 1\n", "unknown key api.prot"),
    ("[nope]\nx = 1\n", "unknown section [nope]"),
    ("[api]\nport = 'eighty'\n", "api.port must be a int"),
    ("[api]\nport = 70000\n", "api.port = 70000 is outside"),
    ("[detector]\nbackend = 'dlib'\n", "choose one of yunet"),
    ("[api\n", "not valid TOML"),
])
def test_invalid_file_names_the_key(tmp_path, text, fragment):
    path = tmp_path / "faced.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert fragment in str(info.value)


def test_bad_environment_value():
    with pytest.raises(ConfigError) as info:
        load_config(env={"FACED_DETECTOR_VERIFY": "maybe"})
    assert "detector.verify" in str(info.value)


def test_readme_lists_every_key_with_its_default():
    import dataclasses
    import re

    try:
        import tomllib
    except ModuleNotFoundError:
        import tomli as tomllib
    from device.config import CAMERA_KEYS, Config
    from tests.conftest import REPO

    text = (REPO / "README.md").read_text()
    block = re.search(r"## Configuration.*?```toml\n(.*?)```", text, re.S).group(1)
    documented = tomllib.loads(block)
    defaults = Config()
    for section in dataclasses.fields(Config):
        if section.name == "cameras":
            assert set(documented["cameras"]["door"]) == set(CAMERA_KEYS)
            continue
        values = dataclasses.asdict(getattr(defaults, section.name))
        assert documented.get(section.name) == values, section.name


def test_cameras_tables_and_flag(tmp_path):
    from device.config import add_camera_flag

    path = tmp_path / "faced.toml"
    path.write_text('[cameras.door]\nsource = "/dev/video0"\ncollection = "home"\nliveness = "off"\n'
                    'min_quality = 50\nmatch_score = 0.8\nroi = [0.1, 0.0, 0.5, 1.0]\nloop = false\n')
    config = load_config(path, env={})
    door = config.cameras["door"]
    assert (door.source, door.collection, door.liveness, door.min_quality, door.match_score, door.roi) == (
        "/dev/video0", "home", "off", 50, 0.8, (0.1, 0.0, 0.5, 1.0))
    add_camera_flag(config, "yard=rtsp://cam/stream")
    assert config.cameras["yard"].liveness == "passive" and config.cameras["yard"].match_score is None


@pytest.mark.parametrize("table, fragment", [
    ('[cameras.door]\ncollection = "x"\n', "cameras.door.source is required"),
    ('[cameras.door]\nsource = "a"\nliveness = "blink"\n', "choose one of passive, active, both, off"),
    ('[cameras.door]\nsource = "a"\nroi = [0.5, 0, 0.6, 1]\n', "cameras.door.roi"),
    ('[cameras.door]\nsource = "a"\nmin_quality = 101\n', "min_quality"),
    ('[cameras.door]\nsource = "a"\nfps = 3\n', "unknown key fps"),
    ('[events]\noutbox_max = 1\n', "events.outbox_max"),
])
def test_invalid_camera_and_events_settings(tmp_path, table, fragment):
    path = tmp_path / "faced.toml"
    path.write_text(table)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert fragment in str(info.value)


def test_url_allow_hosts_list(tmp_path):
    from device.config import load_config
    from device.errors import ConfigError

    assert load_config(env={}).api.url_allow_hosts == [] and load_config(env={}).api.url_inputs is False
    path = tmp_path / "faced.toml"
    path.write_text('[api]\nurl_allow_hosts = ["media.example", "192.0.2.7"]\n')
    assert load_config(path, env={}).api.url_allow_hosts == ["media.example", "192.0.2.7"]
    env = {"FACED_API_URL_ALLOW_HOSTS": " a.example, b.example ,"}
    assert load_config(env=env).api.url_allow_hosts == ["a.example", "b.example"]
    for bad in ('url_allow_hosts = "x"\nurl_allow_hosts = 3', 'url_allow_hosts = [1]', 'url_allow_hosts = [""]'):
        path.write_text("[api]\n" + bad.split("\n")[-1] + "\n")
        with pytest.raises(ConfigError, match="url_allow_hosts"):
            load_config(path, env={})
    path.write_text("[api]\nface_url_ttl_s = 0\n")
    with pytest.raises(ConfigError, match="face_url_ttl_s"):
        load_config(path, env={})
