"""Home Assistant MQTT discovery (retained, under `homeassistant.prefix`, default `homeassistant/`).

One HA device per appliance (identifiers ["faced_<device_id>"], name, model, manufacturer, sw_version) holds:
- per enrolled person a `binary_sensor` (device_class presence) on faced's retained `person/<id>/state`
  (payload_on `present`, payload_off `absent`); created when the person appears in the database and removed
  (an empty retained config) when they are erased, whichever process did it (the CLI, the API): the daemon
  polls the persons table every POLL_S (one indexed SELECT of ids and names);
- per camera a `sensor` whose state is the last person seen (`unknown` for an unknown visitor), with fps and
  dropped frames as attributes (json_attributes_topic), and a `binary_sensor` "unknown visitor" (ON while an
  unknown track is in view).
Every entity uses faced's availability topic (`online`/`offline`, the last will). Configs and states are
retained and published again on every (re)connection to the broker and on HA's birth message
(`<prefix>/status` = `online`), so HA restarting or the broker losing its retained messages changes nothing.

The payloads are built by pure functions (configs); `Discovery` publishes them through the Publisher's client.
"""
from __future__ import annotations

import json
import logging
import threading
import time

from .. import __version__

log = logging.getLogger("faced.homeassistant")
POLL_S = 2.0
ATTRIBUTES_S = 10.0


def device_block(device_id: str) -> dict:
    return {"identifiers": [f"faced_{device_id}"], "name": f"faced {device_id}", "model": "faced face recognition",
            "manufacturer": "faced", "sw_version": __version__}


def _topic_id(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


def _node(device_id: str) -> str:
    return f"faced_{_topic_id(device_id)}"


def person_config_topic(prefix: str, device_id: str, person_id: str) -> str:
    """A person's discovery topic (its config; an empty retained config removes the entity)."""
    return f"{prefix}/binary_sensor/{_node(device_id)}/person_{_topic_id(person_id)}/config"


def configs(prefix: str, root: str, device_id: str, persons: dict[str, str], cameras: list[str]) -> dict:
    """Discovery topic -> config payload (dict) for every entity."""
    node = _node(device_id)
    common = {"availability_topic": f"{root}/availability", "payload_available": "online",
              "payload_not_available": "offline", "device": device_block(device_id)}
    result = {}
    for person_id, name in persons.items():
        result[person_config_topic(prefix, device_id, person_id)] = {
            "name": name, "unique_id": f"{node}_person_{person_id}", "object_id": f"faced_{_topic_id(name)}",
            "device_class": "presence", "state_topic": f"{root}/person/{person_id}/state",
            "payload_on": "present", "payload_off": "absent", "icon": "mdi:account", **common}
    for camera in cameras:
        cid = _topic_id(camera)
        result[f"{prefix}/sensor/{node}/camera_{cid}/config"] = {
            "name": f"{camera} last person", "unique_id": f"{node}_camera_{cid}_last_person",
            "state_topic": f"{root}/camera/{camera}/last_person",
            "json_attributes_topic": f"{root}/camera/{camera}/attributes", "icon": "mdi:cctv", **common}
        result[f"{prefix}/binary_sensor/{node}/camera_{cid}_unknown/config"] = {
            "name": f"{camera} unknown visitor", "unique_id": f"{node}_camera_{cid}_unknown",
            "device_class": "occupancy", "state_topic": f"{root}/camera/{camera}/unknown",
            "payload_on": "ON", "payload_off": "OFF", "icon": "mdi:account-question", **common}
    return result


class Discovery:
    """Keeps HA's view current: persons added or erased by any process, camera states from the events."""

    def __init__(self, publisher, store, prefix: str, device_id: str, cameras: dict):
        self.publisher = publisher
        self.store = store
        self.prefix = prefix
        self.device_id = device_id
        self.cameras = cameras  # name -> Camera (status() for fps and dropped)
        self.root = publisher.root
        self.persons: dict[str, str] = {}  # id -> name of the persons whose configs are published
        self.camera_state = {name: {"last_person": "none", "unknown": set()} for name in cameras}
        self._lock = threading.Lock()
        self._next_attributes = 0.0
        publisher.subscriptions[f"{prefix}/status"] = self._birth
        publisher.on_connected.append(self.publish_all)

    # ------------------------------------------------------------------------------------ publishing
    def _publish(self, topic: str, payload, retain: bool = True) -> None:
        if not self.publisher.connected:
            return  # everything goes out again on the next connection
        text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
        self.publisher.client.publish(topic, text, qos=1, retain=retain)

    def publish_all(self) -> None:
        """Every config, then every state (connection, HA's birth message)."""
        with self._lock:
            self.persons = self._read_persons()
            for topic, payload in configs(self.prefix, self.root, self.device_id, self.persons,
                                          list(self.cameras)).items():
                self._publish(topic, payload)
            states = dict(self.store.connection.execute("SELECT person_id, state FROM person_state"))
            for person_id in self.persons:
                self._publish(f"{self.root}/person/{person_id}/state", states.get(person_id, "absent"))
            for camera in self.cameras:
                self._publish_camera(camera)
            self._publish_attributes()
        log.info("home assistant: published discovery for %d persons and %d cameras", len(self.persons),
                 len(self.cameras))

    def _birth(self, payload: str) -> None:
        if payload.strip().lower() == "online":
            self.publish_all()

    def _read_persons(self) -> dict[str, str]:
        return dict(self.store.connection.execute("SELECT id, name FROM persons ORDER BY id"))

    def poll(self) -> None:
        """Persons enrolled, renamed or erased since the last look (by this or another process)."""
        if not self.publisher.connected:
            return
        with self._lock:
            current = self._read_persons()
            if current == self.persons:
                self._maybe_attributes()
                return
            for person_id in set(self.persons) - set(current):
                self._publish(person_config_topic(self.prefix, self.device_id, person_id), "")
            changed = {p: n for p, n in current.items() if self.persons.get(p) != n}
            for topic, payload in configs(self.prefix, self.root, self.device_id, changed, []).items():
                self._publish(topic, payload)
            for person_id in set(changed) - set(self.persons):
                self._publish(f"{self.root}/person/{person_id}/state", "absent")
            self.persons = current
            self._maybe_attributes()

    # ------------------------------------------------------------------------------------ camera states
    def on_event(self, event: dict) -> None:
        """EventSink listener: a camera's last person and its unknown-visitor sensor."""
        camera = event.get("camera")
        state = self.camera_state.get(camera)
        if state is None:
            return
        kind = event["type"]
        with self._lock:
            if kind == "recognized":
                state["last_person"] = event["person_name"]
            elif kind == "unknown":
                state["last_person"] = "unknown"
                state["unknown"].add(event["track_id"])
            elif kind == "left" and event["track_id"] in state["unknown"]:
                state["unknown"].discard(event["track_id"])
            else:
                return
            self._publish_camera(camera)

    def _publish_camera(self, camera: str) -> None:
        state = self.camera_state[camera]
        self._publish(f"{self.root}/camera/{camera}/last_person", state["last_person"])
        self._publish(f"{self.root}/camera/{camera}/unknown", "ON" if state["unknown"] else "OFF")

    def _maybe_attributes(self) -> None:
        now = time.monotonic()
        if now >= self._next_attributes:
            self._publish_attributes()

    def _publish_attributes(self) -> None:
        self._next_attributes = time.monotonic() + ATTRIBUTES_S
        for name, camera in self.cameras.items():
            status = camera.status()
            self._publish(f"{self.root}/camera/{name}/attributes",
                          {"fps": status["fps"], "dropped": status["dropped"], "state": status["state"],
                           "source_fps": status["source_fps"]})
