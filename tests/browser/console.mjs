// Drives Debian's chromium through the console as an admin would (run by tests/console_browser.rs):
// log in, see a ticket's countdown, acknowledge it, look at the SLA report, upload a prompt.
// Screenshots go to $SHOTS. Prints one JSON line of what it saw; exits non-zero on any failure.
import { chromium } from "playwright-core";

const { BASE, NAME, PASS, TICKET, WAV, SHOTS } = process.env;
const seen = {};
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.setDefaultTimeout(20000);
  const errors = [];
  page.on("pageerror", e => errors.push(String(e)));

  // Not logged in: the console sends us to the login page, which brings us back.
  await page.goto(BASE + "/tickets");
  await page.waitForURL(/\/login/);
  await page.fill("#name", NAME);
  await page.fill("#password", PASS);
  await page.click("#login button[type=submit]");
  await page.waitForURL(/\/tickets/);

  // The ticket with its live countdown.
  const row = page.locator(`tr[data-ticket="${TICKET}"]`);
  await row.waitFor();
  const countdown = row.locator(".countdown");
  await countdown.waitFor();
  const first = (await countdown.textContent()).trim();
  await page.waitForTimeout(2100);
  const later = (await countdown.textContent()).trim();
  seen.countdown = [first, later, await countdown.getAttribute("class")];
  await page.screenshot({ path: SHOTS + "/tickets.png", fullPage: true });

  // Its page: acknowledge.
  await row.locator("a").first().click();
  await page.waitForURL(new RegExp("/tickets/" + TICKET));
  // Acknowledging asks for one confirmation.
  page.once("dialog", d => d.accept());
  await page.click("#ack");
  await page.locator("#top-facts .status", { hasText: "acknowledged" }).waitFor();
  seen.acknowledged = true;
  await page.screenshot({ path: SHOTS + "/ticket.png", fullPage: true });

  // The SLA report and its chart.
  await page.goto(BASE + "/sla");
  await page.locator("svg").first().waitFor();
  seen.sla_chart = await page.locator("svg").count();
  await page.screenshot({ path: SHOTS + "/sla.png", fullPage: true });

  // Upload a prompt: the French language choice, the first thing callers hear.
  await page.goto(BASE + "/prompts");
  const prompt = page.locator('tr[data-prompt="fr/language-choice"]');
  await prompt.waitFor();
  await prompt.locator("input.upload").setInputFiles(WAV);
  await page.locator('tr[data-prompt="fr/language-choice"][data-version="1"]').waitFor();
  seen.uploaded = true;
  await page.screenshot({ path: SHOTS + "/prompts.png", fullPage: false });

  seen.page_errors = errors;
  console.log(JSON.stringify(seen));
} finally {
  await browser.close();
}
