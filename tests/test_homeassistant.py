"""Home Assistant MQTT discovery through the real daemon and a real mosquitto: payloads checked against HA's
documented keys, a person enrolled through the API appears, an erased one disappears (empty retained config),
and everything is published again after a simulated HA birth message and after the broker restarts."""
from __future__ import annotations

import base64
import json
import urllib.request

from tests.conftest import Subscriber, wait_for
from tests.test_daemon import Daemon, _camera, _copy, daemons, enrolled  # noqa: F401 (fixtures)

# From HA's MQTT documentation (integrations/binary_sensor.mqtt, sensor.mqtt, mqtt "Discovery" and "Using
# availability topics"): required keys of each entity type, the keys HA accepts (a typo would be ignored by HA,
# silently), and what the device block needs to create a device (identifiers or connections) when unique_id is set.
HA_KEYS = {
    "binary_sensor": {
        "required": {"state_topic"},  # documented as optional, but an entity without it never changes state
        "accepted": {"availability_topic", "payload_available", "payload_not_available", "availability",
                     "availability_mode", "device", "device_class", "enabled_by_default", "encoding",
                     "entity_category", "expire_after", "force_update", "icon", "json_attributes_template",
                     "json_attributes_topic", "name", "object_id", "off_delay", "payload_off", "payload_on", "qos",
                     "state_topic", "unique_id", "value_template", "default_entity_id"},
        "device_classes": {"presence", "occupancy", "motion", "door", "connectivity", "problem", "safety"},
    },
    "sensor": {
        "required": {"state_topic"},  # required by HA's sensor.mqtt
        "accepted": {"availability_topic", "payload_available", "payload_not_available", "availability",
                     "availability_mode", "device", "device_class", "enabled_by_default", "encoding",
                     "entity_category", "expire_after", "force_update", "icon", "json_attributes_template",
                     "json_attributes_topic", "last_reset_value_template", "name", "object_id",
                     "suggested_display_precision", "qos", "state_class", "state_topic", "unique_id",
                     "unit_of_measurement", "value_template", "default_entity_id", "options"},
        "device_classes": set(),
    },
}
# What faced promises on top (README "Home Assistant"): one device, availability, stable unique ids.
FACED_REQUIRED = {"unique_id", "name", "device", "availability_topic", "payload_available", "payload_not_available"}
BINARY_REQUIRED = {"payload_on", "payload_off", "device_class"}
DEVICE_KEYS = {"identifiers", "name", "model", "manufacturer", "sw_version"}


def _check_config(topic: str, config: dict, device_id: str) -> str:
    parts = topic.split("/")
    assert parts[0] == "homeassistant" and parts[-1] == "config" and len(parts) == 5, topic
    component = parts[1]
    table = HA_KEYS[component]
    assert table["required"] <= set(config), (topic, table["required"] - set(config))
    assert FACED_REQUIRED <= set(config), (topic, FACED_REQUIRED - set(config))
    assert set(config) <= table["accepted"], (topic, set(config) - table["accepted"])
    if component == "binary_sensor":
        assert BINARY_REQUIRED <= set(config), topic
        assert config["device_class"] in table["device_classes"]
        assert config["payload_on"] != config["payload_off"]
    device = config["device"]
    assert DEVICE_KEYS <= set(device) and device["identifiers"] == [f"faced_{device_id}"]
    assert config["availability_topic"] == f"faced/{device_id}/availability"
    assert (config["payload_available"], config["payload_not_available"]) == ("online", "offline")
    assert config["state_topic"].startswith(f"faced/{device_id}/")
    return component


class Retained:
    """The latest retained payload per topic, as a subscriber joining now would see it."""

    def __init__(self, subscriber: Subscriber):
        self.subscriber = subscriber

    def latest(self) -> dict[str, bytes]:
        with self.subscriber.lock:
            result = {}
            for topic, payload, _ in self.subscriber.messages:
                result[topic] = payload
            return result

    def configs(self) -> dict[str, dict]:
        return {t: json.loads(p) for t, p in self.latest().items()
                if t.startswith("homeassistant/") and t.endswith("/config") and p}


def _call(daemon: Daemon, method: str, path: str, body: dict | None = None):
    request = urllib.request.Request(f"http://127.0.0.1:{daemon.port}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"x-api-key": daemon.key, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.status, json.loads(response.read())


def test_discovery_follows_enrolment_and_erasure_and_birth(tmp_path, data, enrolled, broker, daemons):  # noqa: F811
    lin_id = enrolled[1]
    subscriber = Subscriber(broker.url, "#")
    retained = Retained(subscriber)
    try:
        daemon = Daemon(tmp_path, _copy(enrolled, tmp_path), _camera(data, liveness="off"), broker.url,
                        device="home-1")
        daemons.append(daemon.start())
        wait_for(lambda: len(retained.configs()) >= 3, 60, what="discovery configs")
        configs = retained.configs()
        components = [_check_config(t, c, "home-1") for t, c in configs.items()]
        assert components.count("sensor") == 1 and components.count("binary_sensor") == 2
        person = next(c for c in configs.values() if c["state_topic"].endswith(f"person/{lin_id}/state"))
        assert person["device_class"] == "presence" and person["name"] == "Lin-Manuel Miranda"
        assert (person["payload_on"], person["payload_off"]) == ("present", "absent")
        camera = next(c for c in configs.values() if c.get("json_attributes_topic"))
        assert camera["state_topic"] == "faced/home-1/camera/door/last_person"
        assert len({c["unique_id"] for c in configs.values()}) == len(configs)
        # camera attributes (fps, dropped) and the last person seen
        wait_for(lambda: b"fps" in retained.latest().get("faced/home-1/camera/door/attributes", b""), 30,
                 what="camera attributes")
        attributes = json.loads(retained.latest()["faced/home-1/camera/door/attributes"])
        assert {"fps", "dropped"} <= set(attributes)
        wait_for(lambda: retained.latest().get("faced/home-1/camera/door/last_person") not in (None, b"none"), 120,
                 what="a person seen by the camera")

        # a person enrolled through the API appears; erased, the retained config is emptied
        photo = base64.b64encode((data / "faces/face_recognition/examples/obama.jpg").read_bytes()).decode()
        status, created = _call(daemon, "POST", "/persons", {"collection_name": "home", "person_name": "Barack",
                                                            "images_base_64": [photo]})
        assert status == 201
        new_id = created["person_id"]
        topic = next(iter(t for t in configs if lin_id in t)).replace(lin_id, new_id)
        wait_for(lambda: topic in retained.configs(), 30, what="the new person's discovery config")
        _check_config(topic, retained.configs()[topic], "home-1")
        assert retained.latest()[f"faced/home-1/person/{new_id}/state"] == b"absent"
        status, _ = _call(daemon, "DELETE", f"/persons/{new_id}")
        assert status == 200
        wait_for(lambda: retained.latest().get(topic) == b"", 30, what="the erased person's empty config")

        # HA's birth message: every config and state again
        before = len(subscriber.messages)
        subscriber.client.publish("homeassistant/status", "online", qos=1)
        wait_for(lambda: sum(1 for t, _, _ in subscriber.messages[before:] if t.endswith("/config")) >= 3, 30,
                 what="discovery published again after the birth message")
        again = {t for t, _, _ in subscriber.messages[before:]}
        assert set(retained.configs()) <= again
        assert f"faced/home-1/person/{lin_id}/state" in again and "faced/home-1/camera/door/unknown" in again
        assert topic not in again  # the erased person stays gone

        # the broker restarts: the daemon publishes everything again once reconnected (live messages: retain
        # flag off; what the broker replays from its store to the re-subscribing client has it on)
        before = len(subscriber.messages)
        broker.stop()
        broker.start()
        wait_for(lambda: sum(1 for t, _, retain in subscriber.messages[before:]
                             if t.endswith("/config") and not retain) >= 3, 60,
                 what="discovery published again after the broker restarted")
        wait_for(lambda: any(t == f"faced/home-1/person/{lin_id}/state" and not retain
                             for t, _, retain in subscriber.messages[before:]), 30, what="states again")
    finally:
        subscriber.close()
    # a client that connects now (HA after a restart) gets the retained configs, without the erased person
    late = Subscriber(broker.url, "homeassistant/#")
    try:
        wait_for(lambda: len(Retained(late).configs()) >= 3, 30, what="retained configs for a new client")
        assert topic not in Retained(late).configs()
        assert all(retain for _, _, retain in late.messages)  # retained, all of them
    finally:
        late.close()
