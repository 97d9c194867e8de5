// astreinte console: the one helper every page uses to talk to /api.
"use strict";

// The CSRF token of this session (from /api/me), sent with every change.
let csrfToken = null;

async function me() {
  const r = await fetch("/api/me", { credentials: "same-origin" });
  if (r.status === 401) {
    location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
    return null;
  }
  const user = await r.json();
  csrfToken = user.csrf_token;
  const el = document.getElementById("me");
  if (el) el.textContent = user.name + " (" + user.role + ")";
  return user;
}

// Calls the API; returns the parsed JSON (or null for 204); throws Error(message) otherwise.
async function api(method, path, body, contentType) {
  if (csrfToken === null && method !== "GET") await me();
  const headers = {};
  if (method !== "GET") headers["X-CSRF-Token"] = csrfToken || "";
  let payload = body;
  if (body !== undefined && !(body instanceof Blob) && !(body instanceof ArrayBuffer)) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  } else if (contentType) {
    headers["Content-Type"] = contentType;
  }
  const r = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  if (r.status === 401) {
    location.href = "/login?next=" + encodeURIComponent(location.pathname);
    throw new Error("logged out");
  }
  if (r.status === 204) return null;
  const type = r.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await r.json() : await r.text();
  if (!r.ok) throw new Error((data && data.error) || (r.status + " " + r.statusText));
  return data;
}

// Text for HTML (the pages build rows from API data).
function esc(s) {
  return String(s === null || s === undefined ? "" : s)
    .replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
}

document.addEventListener("DOMContentLoaded", () => {
  const out = document.getElementById("logout");
  if (out) out.addEventListener("click", async () => {
    try { await api("POST", "/api/logout"); } catch (e) { /* already out */ }
    location.href = "/login";
  });
});
