// The console where the night is run (tests/console_browser.rs): a technician on a 390×844
// phone, in French then in English, finds a ticket by the tracking number a caller reads out,
// sees who was paged, acknowledges it with one confirmation and has the callback number as a
// tel: link; an admin goes through every page at 390×844 and 1366×800 in both languages (no
// horizontal scroll at 390 px, targets of 44 px, axe-core: no serious or critical violation,
// a screenshot of each); a viewer sees no admin control. Prints one JSON line of what it saw;
// exits non-zero on the first failure.
import { chromium } from "playwright-core";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const { BASE, SHOTS, TECH, TECH_PASS, ADMIN, ADMIN_PASS, VIEWER, VIEWER_PASS, TICKET_FR, TICKET_EN,
  TECH_NAME, CALLBACK_FR, CALLBACK_EN } = process.env;
const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const PHONE = { width: 390, height: 844 };
const DESKTOP = { width: 1366, height: 800 };
const PAGES = ["/tickets", "/tickets/" + TICKET_FR, "/sla", "/drill", "/oncall", "/hours", "/prompts",
  "/announcements", "/audit"];
const seen = { pages: [], axe: {}, screenshots: [], page_errors: [] };

function fail(what) { throw new Error(what); }
// Waits for a condition of this script's own state (a dialog seen), checked every 50 ms.
async function until(what, cond) {
  for (let i = 0; i < 400; i++) { if (cond()) return; await new Promise(r => setTimeout(r, 50)); }
  fail("waited 20 s for " + what);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});

async function session(viewport, locale) {
  const context = await browser.newContext({ viewport, locale, hasTouch: viewport.width < 500,
    isMobile: viewport.width < 500, deviceScaleFactor: 1 });
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  page.on("pageerror", e => seen.page_errors.push(page.url() + ": " + String(e)));
  return { context, page };
}

async function logIn(page, name, pass, next) {
  await page.goto(BASE + next);
  await page.waitForURL(/\/login/);
  await page.fill("#name", name);
  await page.fill("#password", pass);
  await page.click("#login button[type=submit]");
  await page.waitForURL(url => !url.pathname.startsWith("/login"));
}

// Everything a page must hold at any size: no horizontal scroll, and (on a phone) every
// control at least 44 px tall.
async function checkLayout(page, label, phone) {
  await page.waitForLoadState("networkidle");
  const m = await page.evaluate(() => ({
    scroll: document.scrollingElement.scrollWidth, inner: window.innerWidth,
    lang: document.documentElement.lang,
    small: [...document.querySelectorAll("button, select, input:not([type=checkbox]):not([type=file]), header a, a.tel, summary")]
      .filter(e => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0 && getComputedStyle(e).visibility !== "hidden"; })
      .filter(e => e.getBoundingClientRect().height < 43.5)
      .map(e => e.outerHTML.slice(0, 80)),
  }));
  if (m.scroll > m.inner) fail(label + ": scrolls sideways (" + m.scroll + " > " + m.inner + ")");
  if (phone && m.small.length) fail(label + ": targets under 44 px: " + m.small.join(" | "));
  return m;
}

async function axe(page, label) {
  await page.evaluate(AXE);
  const r = await page.evaluate(async () => {
    const out = await window.axe.run(document, { resultTypes: ["violations"] });
    return out.violations.map(v => ({ id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 3).map(n => n.target.join(" ")) }));
  });
  seen.axe[label] = r.length;
  const bad = r.filter(v => v.impact === "serious" || v.impact === "critical");
  if (bad.length) fail(label + ": axe-core: " + JSON.stringify(bad));
}

async function shot(page, name) {
  const path = SHOTS + "/" + name + ".png";
  await page.screenshot({ path, fullPage: true });
  seen.screenshots.push(path);
}

function slug(p) { return p === "/tickets/" + TICKET_FR ? "ticket" : p.replace(/^\//, "").replace(/\//g, "-"); }

try {
  // 1. The technician on a phone, in French (their person's language), then English (the switch).
  for (const [lang, ticket, callbackTel] of [["fr", TICKET_FR, CALLBACK_FR], ["en", TICKET_EN, CALLBACK_EN]]) {
    const { context, page } = await session(PHONE, lang === "fr" ? "fr-CA" : "en-CA");
    await logIn(page, TECH, TECH_PASS, "/tickets");
    if (lang === "en") {
      // The person's language is French: the switch in the header turns the console English.
      await page.click("header a.lang");
      await page.locator("html[lang=en]").waitFor({ state: "attached" });
    }
    const htmlLang = await page.evaluate(() => document.documentElement.lang);
    if (htmlLang !== lang) fail("the console is in " + htmlLang + ", not " + lang);
    await checkLayout(page, lang + " tickets (technician)", true);
    // From another tab, the title says an S1 waits for someone (2, then 1 once acknowledged).
    const waiting = lang === "fr" ? "(2) S1" : "(1) S1";
    for (let i = 0; i < 400 && !(await page.title()).startsWith(waiting); i++) await new Promise(r => setTimeout(r, 50));
    seen["title_" + lang] = await page.title();
    if (!seen["title_" + lang].startsWith(waiting)) fail("the title does not show the waiting S1: " + seen["title_" + lang]);
    // The nav folds into one button; opened, every link fits the screen.
    if (await page.locator("#nav").isVisible()) fail("the nav is open on a phone before the menu is tapped");
    await page.click("#menu-toggle");
    await page.locator("#nav a[href='/tickets']").waitFor();
    const navFits = await page.evaluate(() => [...document.querySelectorAll("#nav a")]
      .filter(a => a.offsetParent !== null).every(a => a.getBoundingClientRect().right <= window.innerWidth));
    if (!navFits) fail("a nav link is off screen");
    const audit = await page.locator("#nav a[href='/audit']").isVisible();
    if (audit) fail("a technician sees Audit in the menu");
    // The caller reads out the tracking number, with a space in it.
    await page.fill("#find-number", ticket.slice(0, 4) + " " + ticket.slice(4));
    await page.click("#find button[type=submit]");
    await page.waitForURL(new RegExp("/tickets/" + ticket));
    await page.locator("#top-facts .tel.callback").waitFor();
    const facts = await page.locator("#top-facts").innerText();
    if (!facts.includes(TECH_NAME)) fail("who was paged is not on the ticket: " + facts);
    const tel = await page.locator("#top-facts a.tel.callback").getAttribute("href");
    if (tel !== callbackTel) fail("callback link " + tel + ", expected " + callbackTel);
    // The voicemail player is above the actions, on the first screen.
    const audioTop = await page.locator("#voicemail audio").evaluate(e => e.getBoundingClientRect().top);
    if (audioTop > PHONE.height) fail("the voicemail player is below the fold (" + audioTop + " px)");
    // Acknowledge: one confirmation, accepted; the note field empties.
    await page.fill("#reason", "je rappelle / calling back");
    const asked = [];
    page.once("dialog", d => { asked.push(d.message()); d.accept(); });
    await page.click("#ack");
    await until("the acknowledgement's confirmation", () => asked.length === 1);
    await page.locator("#top-facts", { hasText: "tech1" }).waitFor();
    if (asked.length !== 1) fail("acknowledging asked " + asked.length + " confirmations");
    const note = await page.inputValue("#reason");
    if (note !== "") fail("the note stayed in the field: " + note);
    // Dismissing the confirmation of Resolve changes nothing.
    page.once("dialog", d => { asked.push(d.message()); d.dismiss(); });
    await page.click("#resolve");
    await until("the resolution's confirmation", () => asked.length === 2);
    const status = await page.locator("#top-facts .status").innerText();
    if (!/pris en charge|acknowledged/.test(status)) fail("status after a dismissed resolve: " + status);
    await checkLayout(page, lang + " ticket (technician)", true);
    await shot(page, "phone-" + lang + "-technician-ticket");
    seen[lang] = { asked, tel, status, facts: facts.slice(0, 300) };
    // Tapping the number: the browser is handed the tel: link (no page load here).
    await page.locator("#top-facts a.tel.callback").click({ noWaitAfter: true }).catch(() => {});
    await context.close();
  }

  // 2. The admin: every page, both sizes, both languages: layout, axe-core, a screenshot.
  for (const lang of ["fr", "en"]) {
    for (const [size, viewport] of [["phone", PHONE], ["desktop", DESKTOP]]) {
      const { context, page } = await session(viewport, lang === "fr" ? "fr-CA" : "en-US");
      await page.goto(BASE + "/login");
      await checkLayout(page, lang + " " + size + " /login", size === "phone");
      await axe(page, lang + " " + size + " /login");
      await shot(page, size + "-" + lang + "-login");
      await logIn(page, ADMIN, ADMIN_PASS, "/tickets");
      for (const p of PAGES) {
        await page.goto(BASE + p);
        const m = await checkLayout(page, lang + " " + size + " " + p, size === "phone");
        if (m.lang !== lang) fail(p + " is in " + m.lang + ", not " + lang);
        await axe(page, lang + " " + size + " " + p);
        await shot(page, size + "-" + lang + "-" + slug(p));
        seen.pages.push(lang + " " + size + " " + p);
      }
      await context.close();
    }
  }

  // 3. A viewer: no Audit, no action on a ticket.
  {
    const { context, page } = await session(PHONE, "en-CA");
    await logIn(page, VIEWER, VIEWER_PASS, "/tickets/" + TICKET_FR);
    await page.locator("#top-facts .status").waitFor();
    if (await page.locator("#ack").isVisible()) fail("a viewer sees Acknowledge");
    await page.click("#menu-toggle");
    if (await page.locator("#nav a[href='/audit']").isVisible()) fail("a viewer sees Audit");
    seen.viewer = "no actions, no audit";
    await context.close();
  }
  console.log(JSON.stringify(seen));
} finally {
  await browser.close();
}
