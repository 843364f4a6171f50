// Events: the history (GET /events) filtered by person, camera and type, then live from /events/stream
// (server-sent events; the cookie authenticates it). Each event links to its JSON (GET /events/{id}).
import { api, clear, el, errorText, start, status } from "./common.js";

const timeline = document.getElementById("timeline");
const person = document.getElementById("f-person");
const camera = document.getElementById("f-camera");
const type = document.getElementById("f-type");
const liveState = document.getElementById("live-state");
const faces = new Map(); // person id -> a face id for its thumbnail (or null)

async function faceOf(personId) {
  if (!faces.has(personId)) {
    faces.set(personId, api("GET", `/persons/${encodeURIComponent(personId)}`)
      .then((p) => p.face_ids[0] ?? null).catch(() => null));
  }
  return faces.get(personId);
}

function matches(event) {
  return (!person.value || event.person_id === person.value) && (!camera.value || event.camera === camera.value)
    && (!type.value || event.type === type.value);
}

function item(event, live) {
  const thumb = el("img", { alt: "", width: 56, height: 56, class: "placeholder" });
  if (!event.person_id && event.visitor_id) {
    thumb.addEventListener("error", () => thumb.removeAttribute("src"), { once: true });  // forgotten since
    thumb.src = `/visitors/${encodeURIComponent(event.visitor_id)}/thumbnail.jpg`;
    thumb.classList.remove("placeholder");
  }
  if (event.person_id) {
    faceOf(event.person_id).then((faceId) => {
      if (faceId !== null) {
        thumb.src = `/persons/${encodeURIComponent(event.person_id)}/faces/${faceId}/thumbnail.jpg`;
        thumb.classList.remove("placeholder");
      }
    });
  }
  const who = event.person_name || (event.type === "left" ? "someone" : "unknown");
  const score = event.score === null || event.score === undefined ? "" : ` · score ${Number(event.score).toFixed(2)}`;
  return el("li", { class: `event ${event.type}${live ? " live" : ""}`, "data-event-id": event.event_id, "data-type": event.type },
    thumb,
    el("div", {},
      el("strong", { class: "name", text: who }), " ",
      el("span", { class: "badge", text: event.type }),
      el("p", { class: "small", text: `${new Date(event.ts).toLocaleString()} · ${event.camera} · track ${event.track_id}${score}` }),
      el("a", { href: `/events/${encodeURIComponent(event.event_id)}`, text: "JSON", target: "_blank", rel: "noopener" })));
}

async function load() {
  const query = new URLSearchParams({ limit: "100" });
  if (person.value) query.set("person", person.value);
  if (camera.value) query.set("camera", camera.value);
  if (type.value) query.set("type", type.value);
  try {
    const { events } = await api("GET", `/events?${query}`);
    clear(timeline);
    for (const event of events) timeline.append(item(event, false));
    if (!events.length) status("No event yet for these filters.");
    else status("");
  } catch (error) { status(errorText(error), "error"); }
}

async function fillFilters() {
  const { cameras } = await api("GET", "/cameras");
  for (const c of cameras) camera.append(el("option", { value: c.name, text: c.name }));
  const { collections } = await api("GET", "/collections");
  for (const collection of collections) {
    const { persons } = await api("GET", `/persons?collection_name=${encodeURIComponent(collection.collection_name)}&limit=1000`);
    for (const p of persons) person.append(el("option", { value: p.person_id, text: `${p.person_name} (${collection.collection_name})` }));
  }
}

function live() {
  const source = new EventSource("/events/stream");
  source.onopen = () => { liveState.textContent = "live: new events appear at the top"; };
  source.onerror = () => { liveState.textContent = "live stream interrupted; reconnecting…"; };
  for (const name of ["recognized", "unknown", "spoof", "left"]) {
    source.addEventListener(name, (message) => {
      const event = JSON.parse(message.data);
      if (!matches(event) || timeline.querySelector(`[data-event-id="${CSS.escape(event.event_id)}"]`)) return;
      timeline.prepend(item(event, true));
      while (timeline.children.length > 500) timeline.lastElementChild.remove();
    });
  }
}

for (const select of [person, camera, type]) select.addEventListener("change", load);
await start();
await fillFilters();
await load();
live();
