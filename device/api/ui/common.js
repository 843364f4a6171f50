// Shared by every page: the session (CSRF token from GET /ui/session), JSON calls with the cookie, DOM helpers.
// Names and metadata are only ever set with textContent (el() below), never as HTML.

let csrf = null;

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && (body.error || body)) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || "";
    this.body = body;
  }
}

function toSignIn() {
  location.assign("/ui/signin.html");
}

export async function session() {
  const response = await fetch("/ui/session", { credentials: "same-origin", cache: "no-store" });
  if (response.status === 401) {
    toSignIn();
    throw new ApiError(401, null);
  }
  const body = await response.json();
  csrf = body.csrf_token;
  return body;
}

export async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRF-Token"] = csrf;
  const response = await fetch(path, {
    method, headers, credentials: "same-origin", cache: "no-store",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let value = null;
  try { value = text ? JSON.parse(text) : null; } catch { value = text; }
  if (response.status === 401) toSignIn();
  if (!response.ok) throw new ApiError(response.status, value);
  return value;
}

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = String(value);
    else if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
}

export function status(message, kind = "info") {
  const box = document.getElementById("status");
  if (!box) return;
  box.textContent = message;
  box.dataset.kind = kind;
}

export function errorText(error) {
  return error.code ? `${error.code}: ${error.message}` : error.message;
}

export function readBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

// A drop zone that is also a keyboard-reachable file chooser: `input` is an <input type=file>.
export function dropZone(zone, input, onFiles) {
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    onFiles([...event.dataTransfer.files]);
  });
  input.addEventListener("change", () => onFiles([...input.files]));
}

export async function collections(select) {
  const { collections: list } = await api("GET", "/collections");
  const previous = select.value || sessionStorage.getItem("collection");
  clear(select);
  for (const c of list) select.append(el("option", { value: c.collection_name, text: c.collection_name }));
  if (list.some((c) => c.collection_name === previous)) select.value = previous;
  select.addEventListener("change", () => sessionStorage.setItem("collection", select.value));
  return list;
}

const PAGES = [["people.html", "People"], ["search.html", "Search"], ["cameras.html", "Cameras"],
  ["events.html", "Events"], ["visitors.html", "Visitors"], ["status.html", "Status"]];

// The header of every page (after the session is known): navigation and sign-out.
export async function start() {
  const me = await session();
  const current = location.pathname.split("/").pop() || "people.html";
  const nav = el("nav", { "aria-label": "Pages" });
  for (const [href, label] of PAGES) {
    nav.append(el("a", { href, text: label, "aria-current": href === current ? "page" : null }));
  }
  const signOut = el("button", { type: "button", id: "sign-out", text: "Sign out" });
  signOut.addEventListener("click", async () => {
    try { await api("DELETE", "/ui/session"); } finally { toSignIn(); }
  });
  const header = document.getElementById("top");
  header.append(el("span", { class: "brand", text: "faced" }), nav, signOut);
  return me;
}
