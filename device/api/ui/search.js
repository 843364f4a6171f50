// Search: one photo, every face with its match or "unknown" (POST /multi-face-search, the N:N endpoint).
import { api, clear, collections, dropZone, el, errorText, readBase64, start, status } from "./common.js";

const select = document.getElementById("collection");
const results = document.getElementById("results");
const input = document.getElementById("search-photo");
let chosen = null;

function face(thumbnail, title, detail, known) {
  return el("li", { class: `card ${known ? "known" : "unknown"}` },
    el("img", { src: `data:image/jpeg;base64,${thumbnail}`, alt: "", width: 112, height: 112 }),
    el("h3", { class: "name", text: title }),
    detail ? el("p", { class: "meta", text: detail }) : null);
}

async function search(file) {
  clear(results);
  status(`Searching ${file.name}…`);
  try {
    const body = await api("POST", "/multi-face-search", {
      collection_name: select.value, multi_face_img_base_64: await readBase64(file), max_results: 1,
    });
    for (const match of body.person_search_results) {
      const metadata = Object.keys(match.metadata).length ? ` · ${JSON.stringify(match.metadata)}` : "";
      results.append(face(match.face_base_64, match.person_name,
        `score ${match.similarity_score.toFixed(2)}${metadata}`, true));
    }
    for (const thumbnail of body.unrecognized_face_thumbnails_base_64) results.append(face(thumbnail, "unknown", "", false));
    const count = body.person_search_results.length + body.unrecognized_face_thumbnails_base_64.length;
    status(`${count} face(s) in ${file.name}`, "ok");
  } catch (error) { status(errorText(error), "error"); }
}

dropZone(document.getElementById("search-drop"), input, (files) => { chosen = files[0] || null; if (chosen) search(chosen); });
document.getElementById("search").addEventListener("submit", (event) => {
  event.preventDefault();
  const file = chosen || input.files[0];
  if (file) search(file);
});

await start();
await collections(select);
