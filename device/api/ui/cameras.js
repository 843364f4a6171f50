// Cameras: a live view per camera from its snapshot endpoint, refreshed about every 2 s (one request at a
// time per camera, none while the page is hidden), with frames/s, dropped frames and the liveness mode.
import { api, clear, el, errorText, start, status } from "./common.js";

const REFRESH_MS = 2000;
const list = document.getElementById("cameras");
const views = new Map();

function view(camera) {
  const image = el("img", { alt: `latest frame of ${camera.name}`, width: 640, height: 360 });
  const stats = el("dl", { class: "stats" });
  const item = el("li", { class: "camera", "data-camera": camera.name },
    el("h2", { text: camera.name }), image, stats);
  let loading = false;
  image.addEventListener("load", () => { loading = false; });
  image.addEventListener("error", () => { loading = false; });
  const entry = {
    item, image, stats,
    refresh() {
      if (loading || document.hidden) return;
      loading = true;
      image.src = `/cameras/${encodeURIComponent(camera.name)}/snapshot.jpg?t=${Date.now()}`;
    },
  };
  views.set(camera.name, entry);
  list.append(item);
  return entry;
}

function show(entry, camera) {
  clear(entry.stats);
  const rows = [["state", camera.state], ["frames/s", camera.fps], ["dropped", camera.dropped],
    ["liveness", camera.liveness], ["collection", camera.collection || "(the only one)"],
    ["last frame", camera.last_frame_age_s === null ? "none yet" : `${camera.last_frame_age_s} s ago`]];
  if (camera.error) rows.push(["error", camera.error]);
  for (const [name, value] of rows) {
    entry.stats.append(el("dt", { text: name }), el("dd", { text: value, "data-stat": name }));
  }
}

async function tick() {
  try {
    const { cameras } = await api("GET", "/cameras");
    if (!cameras.length) status("No camera is configured ([cameras.NAME] in the configuration).");
    for (const camera of cameras) {
      const entry = views.get(camera.name) || view(camera);
      show(entry, camera);
      if (camera.last_frame_age_s !== null) entry.refresh();
    }
  } catch (error) { status(errorText(error), "error"); }
}

await start();
await tick();
setInterval(tick, REFRESH_MS);
