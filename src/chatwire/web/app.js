// chatwire's pages: sign in, then the chat page (#/), the settings page (#/settings), the
// usage page (#/usage) and, for admins, the admin page (#/admin).

import { adminPage } from "./admin.js";
import { ApiError, json, setCsrf } from "./api.js";
import { chatPage } from "./chat.js";
import { clear, field, h } from "./dom.js";
import { settingsPage } from "./settings.js";
import { usagePage } from "./usage.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const who = document.getElementById("who");

const adminLink = document.getElementById("admin-link");

// Each page by its address; each is given the session (who is signed in, and their role).
const PAGES = { "#/": chatPage, "#/settings": settingsPage, "#/usage": usagePage, "#/admin": adminPage };
let current = null;

async function session() {
  try {
    return await json("GET", "/api/session");
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return null;
    throw error;
  }
}

function signedIn(info) {
  setCsrf(info.csrf_token);
  current = info;
  who.textContent = info.user;
  adminLink.hidden = info.role !== "admin";
  nav.hidden = false;
}

async function show() {
  const page = PAGES[location.hash] || chatPage;
  for (const link of nav.querySelectorAll("a[data-page]")) {
    link.toggleAttribute("aria-current", link.getAttribute("href") === (PAGES[location.hash] ? location.hash : "#/"));
  }
  await page(main, current);
}

function signInPage(message = "") {
  nav.hidden = true;
  const token = h("input", { type: "password", id: "token", name: "token", required: true, autocomplete: "off" });
  const error = h("p", { class: "error", id: "sign-in-error", role: "alert" }, message);
  const form = h(
    "form",
    { class: "panel sign-in", id: "sign-in" },
    h("h1", {}, "Sign in to chatwire"),
    field("Your chatwire token", token,
      "A token from 'chatwire users create NAME' or 'chatwire tokens create NAME'."),
    error,
    h("button", { type: "submit" }, "Sign in"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      await signIn(token.value.trim());
    } catch (failure) {
      error.textContent = failure.message;
      token.focus();
    }
  });
  clear(main).append(form);
  token.focus();
}

async function signIn(token, link) {
  const info = await json("POST", "/api/session", link ? { link } : { token });
  signedIn(info);
  await show();
}

document.getElementById("sign-out").addEventListener("click", async () => {
  try {
    await json("DELETE", "/api/session");
  } catch {
    // signed out already
  }
  setCsrf(null);
  current = null;
  signInPage();
});

window.addEventListener("hashchange", () => {
  if (!nav.hidden) show();
});

async function start() {
  // A sign-in link carries a one-time code in its fragment (never sent to a server nor
  // logged): it is traded for a session and taken out of the address bar at once.
  const link = /^#signin=([\w-]+)$/.exec(location.hash);
  if (link) {
    history.replaceState(null, "", location.pathname);
    try {
      return await signIn(null, link[1]);
    } catch (failure) {
      return signInPage(failure.message);
    }
  }
  const info = await session();
  if (info) {
    signedIn(info);
    await show();
  } else {
    signInPage();
  }
}

start().catch((error) => {
  clear(main).append(h("p", { class: "error", role: "alert" }, error.message));
});
