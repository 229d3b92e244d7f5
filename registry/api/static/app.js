// The console: sign in with a token, then one page per task, chosen by the URL's hash (#/servers,
// #/reviews/<server>/<version>, …). Pages are plain ES modules; nothing is built, nothing is fetched
// from anywhere but this server. The page hides what a role cannot do; the API is what enforces it.
import { api, fail, isAdmin, isReviewer, pending, setStatus, token, user } from "/ui/core.js";
import { closeChat, loadChatSessions } from "/ui/chat.js";
import * as servers from "/ui/servers.js";
import * as reviews from "/ui/reviews.js";
import * as owners from "/ui/owners.js";
import * as approvals from "/ui/approvals.js";
import * as audit from "/ui/audit.js";
import * as admin from "/ui/admin.js";

// route name → render(view, ...params); "chat" shows the static chat panel instead.
const ROUTES = {
  servers: (view, name) => name ? servers.renderServer(view, name) : servers.renderList(view),
  reviews: (view, name, version) => name ? reviews.renderReview(view, name, version) : reviews.renderQueue(view),
  register: view => owners.renderRegister(view),
  approvals: view => approvals.render(view),
  audit: view => audit.render(view),
  keys: view => admin.renderKeys(view),
  teams: view => admin.renderTeams(view),
  clients: view => admin.renderClients(view),
};

let generation = 0;

function parseHash() {
  const path = location.hash.replace(/^#\/?/, "").split("?")[0];
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const route = parts.length && (parts[0] in ROUTES || parts[0] === "chat") ? parts[0] : "servers";
  return { route, params: parts.slice(1) };
}

function markNav(route) {
  for (const a of document.querySelectorAll("#nav a[data-route]")) {
    if (a.dataset.route === route) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
}

function showNav() {
  const owner = Boolean(user.me && user.me.teams && user.me.teams.length);
  for (const li of document.querySelectorAll("#nav li[data-needs]")) {
    const need = li.dataset.needs;
    li.hidden = !user.me || (need === "admin" && !isAdmin()) || (need === "reviewer" && !isReviewer())
      || (need === "audit" && !isReviewer() && !owner);
  }
}

async function navigate(focus = true) {
  const { route, params } = parseHash();
  const mine = ++generation;
  markNav(route);
  setStatus(pending.flash || "", "ok");
  pending.flash = null;
  const view = document.getElementById("view");
  const chat = document.getElementById("chat");
  chat.hidden = route !== "chat";
  view.hidden = route === "chat";
  document.title = (route.charAt(0).toUpperCase() + route.slice(1)) + " · Bastion console";
  if (!token() || !user.me) {
    view.replaceChildren();
    if (route !== "chat") {
      const p = document.createElement("p");
      p.className = "signin";
      p.textContent = "Paste a token (bastion token --user … or an API key) in the field above to use the console.";
      view.append(p);
    }
    return;
  }
  if (route === "chat") {
    await loadChatSessions();
    if (focus) document.getElementById("chat-heading").focus();
    return;
  }
  view.replaceChildren();
  view.setAttribute("aria-busy", "true");
  try {
    await ROUTES[route](view, ...params);
  } catch (error) {
    if (mine === generation) fail(error);
  } finally {
    if (mine === generation) view.removeAttribute("aria-busy");
  }
  if (focus && mine === generation) {
    const title = view.querySelector(".page-title");
    if (title) title.focus({ preventScroll: true });
  }
}

async function signIn() {
  user.me = null;
  document.getElementById("who").textContent = "";
  document.getElementById("signout").hidden = !token();
  if (token()) {
    try {
      user.me = await api("/v1/me");
      const me = user.me;
      document.getElementById("who").textContent = me.subject + " (" + me.roles.join(", ")
        + (me.teams.length ? "; teams: " + me.teams.join(", ") : "") + ")";
    } catch (error) { fail(error); }
  }
  showNav();
  await navigate(false);
}

document.getElementById("login").addEventListener("submit", event => {
  event.preventDefault();
  sessionStorage.setItem("bastion-token", document.getElementById("token").value.trim());
  document.getElementById("token").value = "";
  closeChat();
  signIn();
});
document.getElementById("signout").addEventListener("click", () => {
  sessionStorage.removeItem("bastion-token");
  closeChat();
  signIn();
});
window.addEventListener("hashchange", () => navigate(true));

signIn();
