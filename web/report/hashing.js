// Hashes images in the browser, bit for bit as `redline hash` does: the wasm module is Redline's
// own Rust hashing code (web/wasm, built by web/build.sh), so the image never leaves the page.
//
//   import { loadHasher } from "./hashing.js";
//   const hasher = await loadHasher("redline_web.wasm");
//   const { pdq, quality, md5, sha256 } = hasher.hash(new Uint8Array(await file.arrayBuffer()));
//
// hash() throws an Error whose message says why an image was refused (not an image, truncated,
// over a size limit). The module imports nothing; its exports and the result layout are
// documented in web/wasm/src/lib.rs (`ffi`).

const RESULT_HEADER = 4; // a result buffer: u32 little-endian JSON length, then the JSON

/**
 * Loads the hasher. `source` is the module's URL (string or URL), fetched and compiled while it
 * downloads, or its bytes (ArrayBuffer or a typed array), e.g. read from disk in Node.js.
 * @returns {Promise<{hash(bytes: Uint8Array): {pdq: string, quality: number, md5: string, sha256: string}}>}
 */
export async function loadHasher(source) {
  const { module, instance } = await instantiate(source);
  let exports = instance.exports;

  function hash(bytes) {
    if (bytes instanceof ArrayBuffer) bytes = new Uint8Array(bytes);
    if (!(bytes instanceof Uint8Array)) throw new TypeError("hash() takes a Uint8Array of the file's bytes");
    if (exports === null) {
      // The last call trapped (a bug, not a bad image): its memory may be inconsistent, so start
      // over with a fresh instance of the already compiled module (synchronous, and small).
      exports = new WebAssembly.Instance(module, {}).exports;
    }
    const ex = exports;
    try {
      return hashWith(ex, bytes);
    } catch (e) {
      if (e instanceof WebAssembly.RuntimeError) exports = null;
      throw e;
    }
  }

  return { hash };
}

async function instantiate(source) {
  if (source instanceof ArrayBuffer || ArrayBuffer.isView(source)) {
    return WebAssembly.instantiate(source, {});
  }
  const response = await fetch(source);
  if (!response.ok) throw new Error(`cannot load ${source}: HTTP ${response.status}`);
  if (typeof WebAssembly.instantiateStreaming === "function") {
    try {
      return await WebAssembly.instantiateStreaming(response.clone(), {});
    } catch (e) {
      // Served without `Content-Type: application/wasm`: compile the downloaded bytes instead.
      if (!(e instanceof TypeError)) throw e;
    }
  }
  return WebAssembly.instantiate(await response.arrayBuffer(), {});
}

// Copies `bytes` into the module, hashes them, and frees both buffers. Views of `memory.buffer`
// are taken after each call: the memory may grow during a call, which detaches older views. If a
// call traps, the instance (and its memory, so every buffer) is dropped by the caller: freeing in
// a broken instance could only trap again and hide the first error.
function hashWith(ex, bytes) {
  const input = ex.redline_alloc(bytes.length) >>> 0; // pointers are unsigned 32-bit
  if (input === 0) {
    throw new Error(`image is ${bytes.length} bytes, too large for the hasher's memory`);
  }
  new Uint8Array(ex.memory.buffer, input, bytes.length).set(bytes);
  const result = ex.redline_hash_file(input, bytes.length) >>> 0;
  ex.redline_free(input, bytes.length);
  const len = new DataView(ex.memory.buffer).getUint32(result, true);
  const json = new TextDecoder().decode(new Uint8Array(ex.memory.buffer, result + RESULT_HEADER, len));
  ex.redline_result_free(result);
  const out = JSON.parse(json);
  if (typeof out.error === "string") throw new Error(out.error);
  return { pdq: out.pdq, quality: out.quality, md5: out.md5, sha256: out.sha256 };
}
