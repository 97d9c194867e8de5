// astreinte console: the one helper every page uses to talk to /api, and the few that write
// times, durations and words in the reader's language (UI_LANG, UI_ZONE and UI_ROLE are set
// by the page: see src/admin/i18n.rs).
"use strict";

// The CSRF token of this session (from /api/me), sent with every change.
let csrfToken = null;

function uiLang() { return typeof UI_LANG === "string" ? UI_LANG : "en"; }
function uiZone() { return typeof UI_ZONE === "string" ? UI_ZONE : "America/Toronto"; }
// The reader's language: L("Acknowledged.", "Pris en charge.").
function L(en, fr) { return uiLang() === "fr" ? fr : en; }

const ROLE_NAMES = { admin: ["admin", "admin"], technician: ["technician", "technicien"], viewer: ["viewer", "lecture seule"] };

async function me() {
  const r = await fetch("/api/me", { credentials: "same-origin" });
  if (r.status === 401) {
    location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
    return null;
  }
  const user = await r.json();
  csrfToken = user.csrf_token;
  const el = document.getElementById("me");
  const role = ROLE_NAMES[user.role] || [user.role, user.role];
  if (el) el.textContent = user.name + " (" + L(role[0], role[1]) + ")";
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
    throw new Error(L("logged out", "déconnecté"));
  }
  if (r.status === 204) return null;
  const type = r.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await r.json() : await r.text();
  if (!r.ok) throw new Error(apiError(data, r.status));
  return data;
}

// An API refusal in the reader's language: the server sends `error_fr` beside `error` when it
// has the French; a refusal without a message (a malformed request) says its HTTP status.
function apiError(data, status) {
  if (data && typeof data === "object") {
    const m = uiLang() === "fr" ? (data.error_fr || data.error) : data.error;
    if (m) return m;
  }
  return L("the server refused the request (HTTP " + status + ")", "le serveur a refusé la demande (HTTP " + status + ")");
}

// Text for HTML (the pages build rows from API data).
function esc(s) {
  return String(s === null || s === undefined ? "" : s)
    .replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
}

// Times are always in the schedule's zone, and say which: "2026-03-12 02:14 HAE" (French) or
// "… EDT" (English), whatever the browser's own zone.
const timeFormats = {};
function timeParts(iso, seconds) {
  const key = uiLang() + (seconds ? "s" : "");
  if (!timeFormats[key]) {
    const opts = { timeZone: uiZone(), year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZoneName: "short" };
    if (seconds) opts.second = "2-digit";
    timeFormats[key] = new Intl.DateTimeFormat(uiLang() === "fr" ? "fr-CA" : "en-CA", opts);
  }
  const p = {};
  for (const x of timeFormats[key].formatToParts(new Date(iso))) p[x.type] = x.value;
  return p;
}
function fmtWhen(iso) {
  if (!iso) return "";
  try {
    const p = timeParts(iso, false);
    return p.year + "-" + p.month + "-" + p.day + " " + p.hour + ":" + p.minute + " " + p.timeZoneName;
  } catch (e) { return String(iso); }
}
// Only the time of day: "02:14:05 HAE".
function fmtTimeOfDay(iso) {
  try {
    const p = timeParts(iso, true);
    return p.hour + ":" + p.minute + ":" + p.second + " " + p.timeZoneName;
  } catch (e) { return String(iso); }
}
// A clock: "12:34" or "1:02:03" under a day, "2 d 11 h" / "2 j 11 h" beyond; "late …" past it.
function fmtClock(s) {
  const late = s < 0;
  let a = Math.abs(s);
  let text;
  if (a >= 86400) {
    const d = Math.floor(a / 86400), h = Math.floor((a % 86400) / 3600);
    text = d + L(" d ", " j ") + h + " h";
  } else {
    const h = Math.floor(a / 3600); a -= h * 3600;
    const m = Math.floor(a / 60); const sec = a - m * 60;
    const mm = String(m).padStart(2, "0") + ":" + String(sec).padStart(2, "0");
    text = h > 0 ? h + ":" + mm : mm;
  }
  return late ? L("late ", "en retard de ") + text : text;
}

document.addEventListener("DOMContentLoaded", () => {
  const out = document.getElementById("logout");
  if (out) out.addEventListener("click", async () => {
    try { await api("POST", "/api/logout"); } catch (e) { /* already out */ }
    location.href = "/login";
  });
  // On a phone the menu folds into one button.
  const toggle = document.getElementById("menu-toggle");
  if (toggle) toggle.addEventListener("click", () => {
    const header = document.getElementById("top");
    const open = header.classList.toggle("open");
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
  });
});

// A table or chart wider than a phone scrolls inside itself: it takes the keyboard focus then,
// so that it can be scrolled without a mouse (and says what it is).
function markScrollers() {
  document.querySelectorAll("main table, main #chart, main .scroll").forEach(el => {
    const scrolls = el.scrollWidth > el.clientWidth + 1;
    if (scrolls && !el.hasAttribute("tabindex")) {
      el.setAttribute("tabindex", "0");
      if (!el.hasAttribute("aria-label")) {
        const h = el.closest("section") && el.closest("section").querySelector("h2");
        el.setAttribute("aria-label", h ? h.textContent : L("Table", "Tableau"));
      }
    } else if (!scrolls && el.getAttribute("tabindex") === "0") {
      el.removeAttribute("tabindex");
    }
  });
}
let scrollerFrame = 0;
function queueScrollers() {
  if (scrollerFrame) return;
  scrollerFrame = requestAnimationFrame(() => { scrollerFrame = 0; markScrollers(); });
}
document.addEventListener("DOMContentLoaded", () => {
  const main = document.querySelector("main");
  if (main) new MutationObserver(queueScrollers).observe(main, { childList: true, subtree: true });
  window.addEventListener("resize", queueScrollers);
  queueScrollers();
});
