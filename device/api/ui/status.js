// Status: version, models and precisions, broker, outbox depth, database size, and checks from /health.
import { api, el, errorText, start, status } from "./common.js";

function check(list, ok, name, detail) {
  list.append(el("li", { class: ok ? "ok" : "refused" }, el("strong", { text: ok ? "ok" : "FAIL" }), ` ${name}: `,
    el("span", { text: detail })));
}

function row(dl, name, value) {
  dl.append(el("dt", { text: name }), el("dd", { text: value, "data-detail": name }));
}

await start();
try {
  const health = await api("GET", "/health");
  const checks = document.getElementById("checks");
  const models = Object.entries(health.models);
  check(checks, health.status === "ok", "database", health.status === "ok" ? "readable" : JSON.stringify(health.database));
  const missing = models.filter(([, m]) => m.loaded === false).map(([name]) => name);
  check(checks, !missing.length, "models", missing.length ? `not loaded: ${missing.join(", ")}` : `${models.length} present`);
  const broker = health.broker || { configured: false };
  const configured = broker.configured !== false;
  check(checks, !configured || broker.connected, "broker",
    configured ? (broker.connected ? "connected" : `disconnected${broker.last_error ? ` (${broker.last_error})` : ""}`)
      : "not configured (events stay in the outbox)");
  for (const [name, camera] of Object.entries(health.cameras || {})) {
    check(checks, camera.state === "running", `camera ${name}`, `${camera.state}, ${camera.fps} frames/s, ${camera.dropped} dropped`);
  }
  const body = document.querySelector("#models tbody");
  for (const [name, model] of models) {
    body.append(el("tr", {}, el("td", { text: name }), el("td", { text: model.precision }),
      el("td", { text: model.loaded === null ? "on demand" : model.loaded ? "yes" : "no" })));
  }
  const details = document.getElementById("details");
  row(details, "version", health.version);
  row(details, "uptime", `${Math.round(health.uptime_s)} s`);
  for (const [name, value] of Object.entries(health.database)) row(details, `database ${name}`, String(value));
  if (health.outbox) row(details, "outbox depth", `${health.outbox.depth} (dropped ${health.outbox.dropped})`);
  row(details, "inference pool", `${health.pool.running} running, ${health.pool.depth} waiting, ${health.pool.workers} workers`);
} catch (error) { status(errorText(error), "error"); }
