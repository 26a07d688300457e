// Drives the victim's page (/report/) in headless Chromium the way a reporter would, and
// writes down everything a test needs to judge it; tests/tests/web_report.rs starts the node,
// runs this, and asserts on the output (this script asserts nothing itself beyond "the page
// got that far", so the rules live in one place, in Rust).
//
// Environment:
//   REDLINE_URL      the node, e.g. http://127.0.0.1:40123
//   REDLINE_IMAGES   a directory of images to report (every file in it, sorted)
//   REDLINE_OUT      a directory for report.json and the screenshots
//   REDLINE_TOKEN    a `submit` token: the analyst's approval step between report and check
//   CHROMIUM         the browser (default /usr/bin/chromium)
//
// Every request the browser makes is recorded (URL, method, body) from the browser context,
// so nothing the page or the hasher sends escapes the record.
import fs from 'node:fs';
import path from 'node:path';
import { axe, launch, leftovers, openPage, recordedPage } from './common.mjs';

const base = process.env.REDLINE_URL;
const imagesDir = process.env.REDLINE_IMAGES;
const outDir = process.env.REDLINE_OUT;
const token = process.env.REDLINE_TOKEN;

const out = { rows: [], requests: [], console: [], steps: {} };
const save = () => fs.writeFileSync(path.join(outDir, 'report.json'), JSON.stringify(out, null, 1));

const browser = await launch();
try {
  const { context, page } = await recordedPage(browser, out, { width: 1000, height: 900 });

  await openPage(page, `${base}/report/`, out);
  out.axe_empty = await axe(page);

  const files = fs.readdirSync(imagesDir).sort().map((f) => path.join(imagesDir, f));
  const started = Date.now();
  await page.setInputFiles('#files', files);
  await page.waitForFunction(
    (n) => document.querySelectorAll('#results tbody tr').length + document.querySelectorAll('[data-failed]').length >= n
      || document.getElementById('error').textContent !== '',
    files.length,
    { timeout: 300000 },
  );
  out.steps.hash_ms = Date.now() - started;
  out.rows = await page.$$eval('#results tbody tr', (rows) => rows.map((r) => ({
    file: r.dataset.file, pdq: r.dataset.pdq, quality: Number(r.dataset.quality),
  })));
  out.steps.error_after_hashing = await page.textContent('#error');

  await page.click('#send');
  await page.waitForSelector('#case:not([hidden])', { timeout: 30000 });
  out.case = {
    id: await page.textContent('#case-id'),
    pin: await page.textContent('#case-pin'),
    status: await page.textContent('#case-status'),
  };
  out.axe_case = await axe(page);
  await page.screenshot({ path: path.join(outDir, 'report-page.png'), fullPage: true });

  // The hotline's analyst approves the case (from this script, not the browser, so the
  // browser's record holds only what the reporter's page sent).
  const approved = await fetch(`${base}/v1/reports/approve`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ case_id: out.case.id }),
  });
  out.steps.approve_status = approved.status;
  out.steps.approved = await approved.json();

  // The reporter comes back with her case number and PIN (a fresh page: nothing was kept).
  await page.reload();
  await page.waitForSelector('body[data-ready="true"]');
  await page.fill('#check-id', out.case.id);
  await page.fill('#check-pin', out.case.pin.toLowerCase().replaceAll('-', ''));
  await page.click('#check');
  await page.waitForSelector('#check-result[data-status]');
  out.steps.checked = await page.getAttribute('#check-result', 'data-status');
  await page.fill('#check-pin', 'WRONG-PIN0-0000-0000-0000');
  await page.click('#check');
  await page.waitForFunction(() => document.getElementById('error').textContent !== '');
  out.steps.wrong_pin_error = await page.textContent('#error');
  await page.fill('#check-pin', out.case.pin);
  await page.click('#withdraw');
  await page.click('#withdraw-yes');
  await page.waitForSelector('#check-result[data-status="withdrawn"]', { timeout: 30000 });
  out.steps.withdrawn = await page.getAttribute('#check-result', 'data-status');
  out.axe_check = await axe(page);
  await page.screenshot({ path: path.join(outDir, 'report-withdrawn.png'), fullPage: true });
  Object.assign(out, await leftovers(context, page));
} catch (e) {
  out.failure = String(e && e.stack || e);
} finally {
  save();
  await browser.close();
}
