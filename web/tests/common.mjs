// What the browser scripts share: launching Debian's Chromium, recording every request a
// browser context makes (URL, method, body: the tests check that nothing but hashes leaves the
// device, and only to the node), and running axe-core in the page.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const axeSource = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/** Headless Chromium from $CHROMIUM (default Debian's /usr/bin/chromium). */
export function launch() {
  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
  return chromium.launch({ executablePath, args: ['--no-sandbox'] });
}

/**
 * A new browser context and page whose every request is appended to `out.requests` and every
 * console message and page error to `out.console`.
 */
export async function recordedPage(browser, out, viewport) {
  const context = await browser.newContext({ viewport });
  context.on('request', (r) => {
    const body = r.postDataBuffer();
    out.requests.push({ url: r.url(), method: r.method(), body_base64: body ? body.toString('base64') : '' });
  });
  const page = await context.newPage();
  page.on('console', (m) => out.console.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => out.console.push(`pageerror: ${e.message}`));
  return { context, page };
}

/** axe-core's violations on the page as it is now. */
export async function axe(page) {
  // Evaluated through the DevTools protocol, which the page's CSP does not govern; the page
  // itself still runs under its policy.
  await page.evaluate(axeSource);
  return page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.length }));
  });
}

/** Cookies and storage the page left behind (the pages must leave none). */
export async function leftovers(context, page) {
  return {
    cookies: await context.cookies(),
    storage: await page.evaluate(() => ({ local: localStorage.length, session: sessionStorage.length })),
  };
}

/**
 * Opens `url` in `page`, notes its HTTP status and Content-Security-Policy in `out.steps`, and
 * waits until the page says its hasher is loaded (`body[data-ready]`).
 */
export async function openPage(page, url, out) {
  const response = await page.goto(url);
  out.steps.page_status = response.status();
  out.steps.csp = response.headers()['content-security-policy'] || '';
  await page.waitForSelector('body[data-ready="true"]', { timeout: 60000 });
}
