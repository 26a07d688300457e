// Drives the hotline's console (/console/) in headless Chromium the way an analyst would, and
// writes down everything a test needs to judge it in console.json; the lead's Rust test starts
// the node, runs this, and asserts on the output (this script asserts nothing itself beyond
// "the page got that far", so the rules live in one place, in Rust).
//
// Environment:
//   REDLINE_URL         the node, e.g. http://127.0.0.1:40123
//   REDLINE_OUT         a directory for console.json and the screenshots
//   REDLINE_TOKEN       a token with every scope
//   REDLINE_WEAK_TOKEN  a token with only the `match` scope
//   REDLINE_CASE        the case number of a queued report, approved through the review panel
//   REDLINE_IMAGE       an image file to search for (hashed in the page)
//   CHROMIUM            the browser (default /usr/bin/chromium)
//
// Every request the browser makes is recorded (URL, method, body) from the browser context,
// so nothing the page or the hasher sends escapes the record.
import fs from 'node:fs';
import path from 'node:path';
import { axe, launch, leftovers, openPage, recordedPage } from './common.mjs';

const base = process.env.REDLINE_URL;
const outDir = process.env.REDLINE_OUT;
const token = process.env.REDLINE_TOKEN;
const weakToken = process.env.REDLINE_WEAK_TOKEN;
const caseId = process.env.REDLINE_CASE;
const image = process.env.REDLINE_IMAGE;

const PANELS = ['connect', 'origins', 'growth', 'federation', 'evidence', 'review', 'search', 'submit', 'retract'];

const out = { requests: [], console: [], steps: {} };
const save = () => fs.writeFileSync(path.join(outDir, 'console.json'), JSON.stringify(out, null, 1));

const errors = (page) => page.evaluate((panels) => Object.fromEntries(
  panels.map((p) => [p, (document.getElementById(`${p}-error`) || { textContent: null }).textContent]),
), PANELS);

const queue = (page) => page.$$eval('#review-queue [data-case]', (cases) => cases.map((c) => c.dataset.case));

async function connect(page, withToken, n) {
  await page.fill('#token', withToken);
  await page.click('#connect-button');
  await page.waitForFunction((k) => Number(document.body.dataset.loaded || 0) >= k, n, { timeout: 60000 });
}

// Clicks `button`, then the confirmation `yes` that appears, and waits until `done` holds.
async function confirmed(page, button, yes, done, arg) {
  await page.click(button);
  await page.waitForSelector(`${yes}:visible`, { timeout: 10000 });
  await page.click(yes);
  await page.waitForFunction(done, arg, { timeout: 60000 });
}

const browser = await launch();
try {
  const { context, page } = await recordedPage(browser, out, { width: 1100, height: 900 });

  await openPage(page, `${base}/console/`, out);
  out.axe_empty = await axe(page);

  // Connected with every scope: every panel loads.
  await connect(page, token, 1);
  out.steps.connect_status = await page.textContent('#connect-status');
  out.origins = await page.$$eval('#origins-table tbody tr', (rows) => rows.map((r) => ({
    origin: r.dataset.origin, size: Number(r.dataset.size), active: Number(r.dataset.active),
  })));
  out.growth_lines = await page.$$eval('#growth-chart polyline', (lines) => lines.map((l) => ({
    origin: l.dataset.origin,
    points: (l.getAttribute('points') || '').trim().split(/\s+/).filter((p) => p !== '').length,
  })));
  out.growth_table = await page.$$eval('#growth-table tbody tr', (rows) => rows.map((r) => r.textContent));
  out.peers = await page.$$eval('#federation-picture .peer', (gs) => gs.map((g) => ({
    url: g.dataset.url, state: g.dataset.state, text: g.textContent,
  })));
  out.evidence_rows = await page.$$eval('#evidence-table tbody tr', (rows) => rows.map((r) => r.dataset.id));
  out.queue = await queue(page);
  out.errors = await errors(page);
  await page.screenshot({ path: path.join(outDir, 'console.png'), fullPage: true });
  out.axe_loaded = await axe(page);

  // Approve the queued case through the review panel.
  const block = `#review-queue [data-case="${caseId}"]`;
  await page.fill(`${block} input.labels`, 'ncii,reviewed');
  await confirmed(page, `${block} button.approve`, `${block} button.approve-yes`,
    () => /listed/.test(document.getElementById('review-status').textContent)
      || document.getElementById('review-error').textContent !== '');
  out.approved = await page.textContent('#review-status');
  out.approve_error = await page.textContent('#review-error');
  out.queue_after = await queue(page);

  // Search by an image, fingerprinted in the page.
  await page.setInputFiles('#search-image', image);
  await page.waitForFunction(() => /^Search done/.test(document.getElementById('search-status').textContent)
    || document.getElementById('search-error').textContent !== '', null, { timeout: 120000 });
  out.search_computed = await page.textContent('#search-computed');
  out.search_results = await page.$$eval('#search-results [data-index]', (items) => items.map((i) => ({
    origin: i.dataset.origin, index: Number(i.dataset.index),
  })));
  out.search_text = await page.textContent('#search-results');
  out.search_error = await page.textContent('#search-error');

  // Reconnect with a token that may only match: every other panel says why it is empty.
  await connect(page, weakToken, 2);
  out.weak_errors = await errors(page);
  out.weak_panels = {
    origins: await page.$$eval('#origins-table tbody tr', (r) => r.length),
    growth_lines: await page.$$eval('#growth-chart polyline', (r) => r.length),
    peers: await page.$$eval('#federation-picture .peer', (r) => r.length),
    evidence: await page.$$eval('#evidence-table tbody tr', (r) => r.length),
    queue: (await queue(page)).length,
  };
  await page.fill('#submit-pdq', 'ab'.repeat(32));
  await confirmed(page, '#submit-button', '#submit-yes',
    () => document.getElementById('submit-error').textContent !== ''
      || /^Done/.test(document.getElementById('submit-status').textContent));
  out.weak_submit_error = await page.textContent('#submit-error');
  out.weak_submit_status = await page.textContent('#submit-status');
  await page.fill('#retract-index', '0');
  await page.fill('#retract-reason', 'test');
  await confirmed(page, '#retract-button', '#retract-yes',
    () => document.getElementById('retract-error').textContent !== ''
      || /retracted/.test(document.getElementById('retract-status').textContent));
  out.weak_retract_error = await page.textContent('#retract-error');
  out.weak_retract_status = await page.textContent('#retract-status');
  await page.screenshot({ path: path.join(outDir, 'console-weak.png'), fullPage: true });
  out.axe_weak = await axe(page);
  Object.assign(out, await leftovers(context, page));
} catch (e) {
  out.failure = String(e && e.stack || e);
} finally {
  save();
  await browser.close();
}
