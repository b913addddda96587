// The console's entry: the sign-in gate and a hash router over the views (#/, #/d/ID, #/start,
// #/councils, #/status). Nothing is shown until one API call has succeeded with this tab's token
// (or without one, when the fleet has no api_token).
import { api, onUnauthorized, token } from "./api.js";
import { openBoard } from "./board.js";
import { openCouncils, openStart } from "./forms.js";
import { openList, openStatus } from "./views.js";

const view = document.getElementById("view");
const top = document.getElementById("top");
const signIn = document.getElementById("sign-in");
let close = () => {};  // the open view's cleanup (timers, streams)

function showSignIn(message = "") {
  close();
  close = () => {};
  view.replaceChildren();
  top.hidden = true;
  signIn.hidden = false;
  document.getElementById("sign-in-error").textContent = message;
  document.getElementById("token").focus();
}

function route() {
  close();
  const hash = location.hash.replace(/^#/, "") || "/";
  const [, name, arg] = hash.split("/");
  for (const a of top.querySelectorAll("[data-nav]")) {
    a.classList.toggle("active", a.dataset.nav === (name || "list"));
  }
  view.replaceChildren();
  const open = { d: () => openBoard(view, decodeURIComponent(arg || "")), start: () => openStart(view),
    councils: () => openCouncils(view), status: () => openStatus(view) }[name] || (() => openList(view));
  close = open() || (() => {});
  window.scrollTo(0, 0);
}

async function enter() {
  try {
    await api("/status");  // any data call: 401 means this tab has no (valid) token
  } catch (e) {
    if (e.status === 401) return;  // onUnauthorized showed the sign-in
    view.replaceChildren(document.createTextNode(`The fleet did not answer: ${e.message}`));
  }
  signIn.hidden = true;
  top.hidden = false;
  document.getElementById("sign-out").hidden = !token.get();
  route();
}

onUnauthorized(() => {
  const had = token.get();
  token.clear();
  showSignIn(had ? "That token was refused." : "");
});

document.getElementById("sign-in-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("token");
  token.set(input.value.trim());
  input.value = "";
  enter();
});
document.getElementById("sign-out").addEventListener("click", () => { token.clear(); showSignIn(); });
window.addEventListener("hashchange", () => { if (!top.hidden) route(); });
enter();
