// Checks the built site's hasher against the native CLI: loads target/web/report/redline_web.wasm
// through target/web/report/hashing.js (what the page runs), hashes every image, and compares
// the `pdq,quality,file` lines with `redline hash` on the same files, and md5/sha256 with Node's
// own digests. Exits 1 on any difference.
//
//   web/build.sh && cargo build -p redline-client --bin redline
//   node web/wasm/check.mjs [IMAGE...]     # default: $REDLINE_SHARED/pdq-reference/images/*
//
// REDLINE_BIN overrides the CLI (default target/debug/redline), REDLINE_SITE the site directory.

import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const site = process.env.REDLINE_SITE ?? join(root, "target/web");
const redline = process.env.REDLINE_BIN ?? join(root, "target/debug/redline");

let files = process.argv.slice(2);
if (files.length === 0) {
  const shared = process.env.REDLINE_SHARED ?? join(root, "../shared");
  const dir = join(shared, "pdq-reference/images");
  files = readdirSync(dir).sort().map((f) => join(dir, f));
}

const { loadHasher } = await import(pathToFileURL(join(site, "report/hashing.js")).href);
const hasher = await loadHasher(readFileSync(join(site, "report/redline_web.wasm")));

const failures = [];
const lines = [];
const started = performance.now();
for (const file of files) {
  const bytes = readFileSync(file);
  let h;
  try {
    h = hasher.hash(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length));
  } catch (e) {
    failures.push(`${file}: wasm refused it: ${e.message}`);
    continue;
  }
  lines.push(`${h.pdq},${h.quality},${file}`);
  for (const [name, algo] of [["md5", "md5"], ["sha256", "sha256"]]) {
    const want = createHash(algo).update(bytes).digest("hex");
    if (h[name] !== want) failures.push(`${file}: ${name} ${h[name]}, Node says ${want}`);
  }
}
const ms = performance.now() - started;
console.log(lines.join("\n"));

// The CLI prints one `pdq,quality,file` line per file, in argument order.
const native = execFileSync(redline, ["hash", ...files], { encoding: "utf8" }).trim().split("\n");
for (let i = 0; i < Math.max(native.length, lines.length); i++) {
  if (native[i] !== lines[i]) failures.push(`differs:\n  redline hash: ${native[i]}\n  wasm:         ${lines[i]}`);
}

// Refusals come back as thrown Errors carrying the Rust message, and leave the hasher usable.
try {
  hasher.hash(new TextEncoder().encode("not an image"));
  failures.push("a non-image was hashed instead of refused");
} catch (e) {
  if (!/not a recognised image format/.test(e.message)) failures.push(`unexpected refusal: ${e.message}`);
}

if (failures.length > 0) {
  console.error(failures.join("\n"));
  console.error(`FAIL: ${failures.length} problem(s) in ${files.length} images`);
  process.exit(1);
}
console.error(`OK: ${files.length}/${files.length} images hash in wasm as \`redline hash\` does (md5/sha256 too), ${(ms / files.length).toFixed(0)} ms/image`);
