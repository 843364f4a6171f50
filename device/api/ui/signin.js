// Sign-in: the key goes in the body of POST /ui/session only; the page keeps nothing but the cookie it sets.
const form = document.getElementById("signin");
const message = document.getElementById("status");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const field = document.getElementById("key");
  const key = field.value;
  field.value = "";
  message.textContent = "Signing in…";
  const response = await fetch("/ui/session", {
    method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ key }),
  });
  if (response.ok) {
    location.assign("/ui/people.html");
    return;
  }
  let body = {};
  try { body = await response.json(); } catch { /* not JSON */ }
  message.textContent = `Sign-in refused: ${body.message || response.status}`;
  message.dataset.kind = "error";
  field.focus();
});
