// Times the browser's hasher (the page's hashing.js and redline_web.wasm, as /report/ loads
// them) in headless Chromium on the files of REDLINE_IMAGES, ROUNDS times each, and writes
// {"images", "rounds", "seconds", "per_second"} to REDLINE_OUT/bench.json. Run by
// tests/benches/browser_hashing.rs, which times the native hasher on the same files in the
// same run and prints the ratio.
import fs from 'node:fs';
import path from 'node:path';
import { launch } from './common.mjs';

const base = process.env.REDLINE_URL;
const dir = process.env.REDLINE_IMAGES;
const rounds = Number(process.env.ROUNDS || '3');
const files = fs.readdirSync(dir).sort().map((f) => fs.readFileSync(path.join(dir, f)).toString('base64'));

const browser = await launch();
try {
  const page = await browser.newPage();
  await page.goto(`${base}/report/`);
  await page.waitForSelector('body[data-ready="true"]');
  const result = await page.evaluate(async ({ files, rounds }) => {
    const { loadHasher } = await import('/report/hashing.js');
    const hasher = await loadHasher('/report/redline_web.wasm');
    const images = files.map((b) => Uint8Array.from(atob(b), (c) => c.charCodeAt(0)));
    hasher.hash(images[0]); // warm-up: compiled code, grown memory
    const started = performance.now();
    let quality = 0;
    for (let r = 0; r < rounds; r += 1) {
      for (const bytes of images) quality += hasher.hash(bytes).quality;
    }
    const seconds = (performance.now() - started) / 1000;
    return { images: images.length, rounds, seconds, per_second: (images.length * rounds) / seconds, quality };
  }, { files, rounds });
  fs.writeFileSync(path.join(process.env.REDLINE_OUT, 'bench.json'), JSON.stringify(result));
} finally {
  await browser.close();
}
