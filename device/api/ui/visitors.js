// Visitors: recurring unknown faces (GET /visitors) with their visit times; promote one to a person
// (POST /visitors/{id}/promote) or forget it (DELETE /visitors/{id}).
import { api, clear, collections, el, errorText, start, status } from "./common.js";

const list = document.getElementById("visitors");
const dialog = document.getElementById("promote");
const collectionSelect = document.getElementById("promote-collection");
let promoting = null;

function when(text) {
  return text ? new Date(text).toLocaleString() : "?";
}

function card(visitor) {
  const id = visitor.visitor_id;
  return el("li", { class: "card", "data-visitor-id": id },
    el("img", { src: `/visitors/${encodeURIComponent(id)}/thumbnail.jpg`, alt: "", width: 112, height: 112 }),
    el("h3", { class: "name", text: `Visitor ${id.slice(0, 8)}` }),
    el("p", { class: "meta", text: `${visitor.visits} visit(s) · ${visitor.faces} face(s) · ${visitor.camera || ""}` }),
    el("p", { class: "small", text: `first ${when(visitor.first_seen)} · last ${when(visitor.last_seen)}` }),
    el("div", { class: "actions" },
      el("button", { type: "button", text: "Promote", onclick: () => promote(visitor) }),
      el("button", { type: "button", class: "danger", text: "Forget", onclick: () => forget(visitor) })));
}

function promote(visitor) {
  promoting = visitor;
  document.getElementById("promote-name").value = "";
  document.getElementById("promote-error").textContent = "";
  collectionSelect.value = visitor.collection_name;
  dialog.showModal();
}

async function forget(visitor) {
  try {
    await api("DELETE", `/visitors/${encodeURIComponent(visitor.visitor_id)}`);
    status(`Forgot visitor ${visitor.visitor_id.slice(0, 8)}`, "ok");
    await load();
  } catch (error) { status(errorText(error), "error"); }
}

document.getElementById("promote-cancel").addEventListener("click", () => dialog.close());
document.getElementById("promote-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const body = await api("POST", `/visitors/${encodeURIComponent(promoting.visitor_id)}/promote`,
      { person_name: document.getElementById("promote-name").value, collection_name: collectionSelect.value });
    dialog.close();
    status(`Promoted to ${body.person_name}`, "ok");
    await load();
  } catch (error) { document.getElementById("promote-error").textContent = errorText(error); }
});

async function load() {
  const { visitors } = await api("GET", "/visitors");
  clear(list);
  if (!visitors.length) list.append(el("li", { text: "No recurring visitor yet." }));
  for (const visitor of visitors) list.append(card(visitor));
}

await start();
await collections(collectionSelect);
try { await load(); } catch (error) { status(errorText(error), "error"); }
