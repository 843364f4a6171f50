// People: per collection, thumbnails and metadata; enrol from several photos with each photo's verdict;
// add photos, rename, edit metadata, erase with confirmation.
import { api, clear, collections, dropZone, el, errorText, readBase64, start, status } from "./common.js";

const select = document.getElementById("collection");
const list = document.getElementById("people");
const verdicts = document.getElementById("verdicts");
const enrolForm = document.getElementById("enrol");
const photosInput = document.getElementById("enrol-photos");
let chosen = [];

function parseMetadata(text) {
  if (!text.trim()) return {};
  const value = JSON.parse(text);
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw new Error("metadata must be a JSON object");
  return value;
}

// Each photo's outcome, by position: the API names them "image 0", "image 1"...
function showVerdicts(files, outcomes) {
  clear(verdicts);
  outcomes.forEach((outcome, index) => {
    const name = files[index] ? files[index].name : outcome.source;
    const text = outcome.accepted ? "accepted" : `refused: ${outcome.code}${outcome.message ? ` (${outcome.message})` : ""}`;
    verdicts.append(el("li", { class: outcome.accepted ? "ok" : "refused", "data-photo": name },
      el("strong", { text: name }), " ", el("span", { class: "verdict", text })));
  });
}

function outcomesOf(error) {
  return (error.body && error.body.metadata && error.body.metadata.faces) || null;
}

async function images(files) {
  return Promise.all(files.map((file) => readBase64(file)));
}

dropZone(document.getElementById("enrol-drop"), photosInput, (files) => {
  chosen = files;
  status(`${files.length} photo(s) chosen`);
});

enrolForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const files = chosen.length ? chosen : [...photosInput.files];
  if (!files.length) { status("choose one or more photos", "error"); return; }
  let metadata;
  try { metadata = parseMetadata(document.getElementById("enrol-metadata").value); } catch (error) {
    status(`metadata: ${error.message}`, "error");
    return;
  }
  status("Enrolling…");
  try {
    const body = await api("POST", "/persons", {
      collection_name: select.value, person_name: document.getElementById("enrol-name").value,
      metadata, images_base_64: await images(files),
    });
    showVerdicts(files, body.faces);
    status(`Enrolled ${body.person_name}`, "ok");
    enrolForm.reset();
    chosen = [];
    await load();
  } catch (error) {
    const outcomes = outcomesOf(error);
    if (outcomes) showVerdicts(files, outcomes);
    status(`Not enrolled: ${errorText(error)}`, "error");
  }
});

document.getElementById("new-collection").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = document.getElementById("new-collection-name");
  try {
    await api("POST", "/collections", { collection_name: input.value });
    sessionStorage.setItem("collection", input.value);
    select.value = "";
    input.value = "";
    await collections(select);
    await load();
  } catch (error) { status(errorText(error), "error"); }
});

select.addEventListener("change", load);

// ------------------------------------------------------------------------------------ edit and erase
const editDialog = document.getElementById("edit");
let editing = null;

function edit(person) {
  editing = person;
  document.getElementById("edit-name").value = person.person_name;
  document.getElementById("edit-metadata").value = JSON.stringify(person.metadata, null, 1);
  document.getElementById("edit-error").textContent = "";
  editDialog.showModal();
}

document.getElementById("edit-cancel").addEventListener("click", () => editDialog.close());
document.getElementById("edit-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const metadata = parseMetadata(document.getElementById("edit-metadata").value);
    await api("PATCH", `/persons/${encodeURIComponent(editing.person_id)}`,
      { person_name: document.getElementById("edit-name").value, metadata });
    editDialog.close();
    status("Saved", "ok");
    await load();
  } catch (error) { document.getElementById("edit-error").textContent = errorText(error); }
});

const confirmDialog = document.getElementById("confirm");
function confirmErase(person) {
  document.getElementById("confirm-text").textContent =
    `Erase ${person.person_name} with all ${person.face_ids.length} face(s)? This cannot be undone.`;
  confirmDialog.returnValue = "";
  confirmDialog.showModal();
  confirmDialog.addEventListener("close", async () => {
    if (confirmDialog.returnValue !== "erase") return;
    try {
      await api("DELETE", `/persons/${encodeURIComponent(person.person_id)}`);
      status(`Erased ${person.person_name}`, "ok");
      await load();
    } catch (error) { status(errorText(error), "error"); }
  }, { once: true });
}

async function addPhotos(person, files) {
  status(`Adding ${files.length} photo(s) to ${person.person_name}…`);
  try {
    const body = await api("POST", `/persons/${encodeURIComponent(person.person_id)}/faces`,
      { images_base_64: await images(files) });
    showVerdicts(files, body.faces);
    status(`Added photos to ${person.person_name}`, "ok");
    await load();
  } catch (error) {
    const outcomes = outcomesOf(error);
    if (outcomes) showVerdicts(files, outcomes);
    status(errorText(error), "error");
  }
}

function card(person) {
  const id = person.person_id;
  const faces = el("div", { class: "thumbs" });
  for (const faceId of person.face_ids.slice(0, 6)) {
    faces.append(el("img", {
      src: `/persons/${encodeURIComponent(id)}/faces/${faceId}/thumbnail.jpg`, alt: `face ${faceId}`,
      width: 56, height: 56, loading: "lazy",
    }));
  }
  const add = el("input", { type: "file", accept: "image/jpeg,image/png", multiple: true, id: `add-${id}`,
    class: "visually-hidden" });
  add.addEventListener("change", () => addPhotos(person, [...add.files]));
  const metadata = Object.keys(person.metadata).length ? JSON.stringify(person.metadata) : "no metadata";
  return el("li", { class: "card", "data-person-id": id },
    faces,
    el("h3", { class: "name", text: person.person_name }),
    el("p", { class: "meta", text: metadata }),
    el("p", { class: "small", text: `${person.face_ids.length} face(s) · ${id}` }),
    el("div", { class: "actions" },
      el("label", { for: `add-${id}`, class: "button", tabindex: 0, text: "Add photos",
        onkeydown: (event) => { if (event.key === "Enter" || event.key === " ") { event.preventDefault(); add.click(); } } }),
      add,
      el("button", { type: "button", text: "Edit", onclick: () => edit(person) }),
      el("button", { type: "button", class: "danger", text: "Erase", onclick: () => confirmErase(person) })));
}

async function load() {
  clear(list);
  if (!select.value) { list.append(el("li", { text: "No collection yet: create one above." })); return; }
  const persons = [];
  for (let offset = 0; ; offset += 1000) {
    const page = await api("GET", `/persons?collection_name=${encodeURIComponent(select.value)}&offset=${offset}&limit=1000`);
    persons.push(...page.persons);
    if (persons.length >= page.total || !page.persons.length) break;
  }
  if (!persons.length) list.append(el("li", { text: "Nobody enrolled in this collection." }));
  for (const person of persons) list.append(card(person));
}

await start();
await collections(select);
await load();
