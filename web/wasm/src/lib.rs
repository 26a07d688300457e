//! Redline's image hashing for the browser: the report page hashes a victim's images on their own
//! machine (the images are never uploaded) and must get bit for bit the hashes `redline hash`
//! and the node compute, or the report would not match the lists. So this is not a port: it is
//! `redline_hashing::hash_image` itself, with the same `image` decoders and limits, compiled to
//! `wasm32-unknown-unknown` (web/build.sh) and loaded by `web/report/hashing.js`.
//!
//! [`hash_file_json`] is the whole job, in safe Rust, and is what the native tests check. The
//! [`ffi`] module wraps it in C-ABI exports (no wasm-bindgen: no generated glue to ship or keep
//! in step with a CLI version; the module needs no imports).

use redline_hashing::{DecodeLimits, SignalType};
use serde_json::json;

/// The signals the page sends, in the order `redline submit FILE` computes them.
pub const SIGNALS: [SignalType; 3] = [SignalType::Pdq, SignalType::Md5, SignalType::Sha256];

/// Hashes the encoded image `bytes` (a whole file: JPEG, PNG, WebP, GIF, BMP or TIFF) exactly as
/// the CLI's `hash_file` does: [`redline_hashing::hash_image`] under [`DecodeLimits::default`].
///
/// Returns `{"pdq":"<64 hex>","quality":N,"md5":"<32 hex>","sha256":"<64 hex>"}`, or
/// `{"error":"<message>"}` when the image is refused (not an image, truncated, over a limit);
/// the messages name the problem and never contain image bytes. JSON, not a struct, because this
/// crosses into JavaScript as text.
pub fn hash_file_json(bytes: &[u8]) -> String {
    match redline_hashing::hash_image(bytes, &DecodeLimits::default(), &SIGNALS) {
        Ok(signals) => {
            let mut out = serde_json::Map::new();
            for s in signals {
                out.insert(s.signal_type.name().to_owned(), s.hex().into());
                if s.signal_type == SignalType::Pdq {
                    // As `redline hash` prints it: 0..=100, 0 when absent.
                    out.insert("quality".to_owned(), s.quality.map_or(0, u32::from).into());
                }
            }
            serde_json::Value::Object(out).to_string()
        }
        Err(e) => json!({ "error": e.to_string() }).to_string(),
    }
}

/// The module's exports. Everything crosses as pointers into the wasm linear memory and lengths
/// (`usize` is 32 bits on wasm32), so this is the one place with `unsafe`.
///
/// Protocol (what `hashing.js` does):
/// 1. `p = redline_alloc(n)`; null means the memory could not grow (image too large for it).
/// 2. Copy the file's `n` bytes to `p`; `r = redline_hash_file(p, n)`; `redline_free(p, n)`.
/// 3. At `r`: a 4-byte little-endian length `m`, then `m` bytes of UTF-8 JSON (see
///    [`hash_file_json`]). Read it, then `redline_result_free(r)`.
///
/// Memory may grow during any call, which detaches JavaScript views of the old buffer: take a
/// fresh view of `memory.buffer` after each call. A trap (a bug: the hashing code does not panic
/// on hostile input) leaves the instance unusable; the loader then makes a new one.
#[allow(unsafe_code)]
pub mod ffi {
    use super::hash_file_json;

    /// Bytes before the JSON in a result buffer: its length, `u32` little-endian.
    pub const RESULT_HEADER: usize = 4;

    /// A buffer of `len` bytes for the caller to fill, or null if it cannot be allocated (so a
    /// huge file is an error the page can show, not an abort). Free it with [`redline_free`].
    #[unsafe(no_mangle)]
    pub extern "C" fn redline_alloc(len: usize) -> *mut u8 {
        let mut buf = Vec::new();
        if buf.try_reserve_exact(len).is_err() {
            return std::ptr::null_mut();
        }
        buf.resize(len, 0u8);
        Box::into_raw(buf.into_boxed_slice()).cast::<u8>()
    }

    /// Frees a buffer from [`redline_alloc`]; `len` must be the length it was allocated with.
    /// Null is ignored.
    ///
    /// # Safety
    /// `ptr` is null or came from `redline_alloc(len)` and was not freed yet.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn redline_free(ptr: *mut u8, len: usize) {
        if !ptr.is_null() {
            // SAFETY: the caller passes back a `Box<[u8]>` of `len` bytes made by redline_alloc.
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, len)) });
        }
    }

    /// Hashes the `len` bytes at `ptr` (see [`hash_file_json`]) and returns a result buffer (see
    /// the module docs), to be freed with [`redline_result_free`]. The input is not freed. A null
    /// `ptr` hashes zero bytes (which is refused as empty).
    ///
    /// # Safety
    /// `ptr` is null or points to `len` readable bytes that stay unchanged during the call.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn redline_hash_file(ptr: *const u8, len: usize) -> *mut u8 {
        let bytes: &[u8] = if ptr.is_null() {
            &[]
        } else {
            // SAFETY: the caller guarantees `len` bytes at `ptr` for the duration of the call.
            unsafe { std::slice::from_raw_parts(ptr, len) }
        };
        let json = hash_file_json(bytes);
        let len = u32::try_from(json.len()).expect("a result's JSON is far below 4 GiB");
        let mut buf = Vec::with_capacity(RESULT_HEADER + json.len());
        buf.extend_from_slice(&len.to_le_bytes());
        buf.extend_from_slice(json.as_bytes());
        Box::into_raw(buf.into_boxed_slice()).cast::<u8>()
    }

    /// Frees a result buffer from [`redline_hash_file`] (its length is in its header). Null is
    /// ignored.
    ///
    /// # Safety
    /// `ptr` is null or came from `redline_hash_file` and was not freed yet.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn redline_result_free(ptr: *mut u8) {
        if ptr.is_null() {
            return;
        }
        // SAFETY: a result buffer starts with its 4-byte JSON length, and is a `Box<[u8]>` of
        // that many bytes plus the header (made by redline_hash_file, not freed yet).
        unsafe {
            let header: [u8; RESULT_HEADER] = std::ptr::read(ptr.cast());
            let total = RESULT_HEADER + u32::from_le_bytes(header) as usize;
            drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                ptr, total,
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::Digest;
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    /// `$REDLINE_SHARED`, else `../shared` beside the workspace root, when it has the PDQ
    /// reference images; `None` (after saying so) on machines without it.
    fn shared_dir() -> Option<PathBuf> {
        let dir = match std::env::var_os("REDLINE_SHARED") {
            Some(d) => PathBuf::from(d),
            None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
        };
        if dir.join("pdq-reference/expected.csv").is_file() {
            Some(dir)
        } else {
            eprintln!(
                "SKIP: no PDQ reference images at {} (set REDLINE_SHARED to the shared folder)",
                dir.display()
            );
            None
        }
    }

    fn parse(json: &str) -> serde_json::Value {
        serde_json::from_str(json).unwrap_or_else(|e| panic!("not JSON ({e}): {json}"))
    }

    /// `file -> (pdq, quality)` from the reference C++ hasher's expected.csv.
    fn reference(dir: &std::path::Path) -> BTreeMap<String, (String, u64)> {
        let csv = std::fs::read_to_string(dir.join("pdq-reference/expected.csv")).unwrap();
        csv.lines()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let cols: Vec<&str> = l.split(',').collect();
                (
                    cols[0].to_owned(),
                    (cols[1].to_owned(), cols[2].parse().unwrap()),
                )
            })
            .collect()
    }

    #[test]
    fn reference_images_hash_as_the_native_path_does() {
        let Some(dir) = shared_dir() else {
            return;
        };
        let expected = reference(&dir);
        let mut names: Vec<_> = std::fs::read_dir(dir.join("pdq-reference/images"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        assert!(names.len() >= 30, "only {} reference images", names.len());
        let (mut as_reference, mut in_csv) = (0, 0);
        for path in &names {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let bytes = std::fs::read(path).unwrap();
            let got = parse(&hash_file_json(&bytes));
            let native =
                redline_hashing::hash_image(&bytes, &DecodeLimits::default(), &SIGNALS).unwrap();
            let pdq = native[0].hex();
            let quality = u64::from(native[0].quality.unwrap());
            assert_eq!(got["pdq"], pdq.as_str(), "{name}");
            assert_eq!(got["quality"], quality, "{name}");
            assert_eq!(got["md5"], hex::encode(md5::Md5::digest(&bytes)), "{name}");
            assert_eq!(
                got["sha256"],
                hex::encode(sha2::Sha256::digest(&bytes)),
                "{name}"
            );
            assert_eq!(got.as_object().unwrap().len(), 4, "{name}: {got}");
            // redline-hashing is within a few bits of Meta's reference, not always identical
            // (its own tests bound the distance); where it is identical, so must this be.
            if let Some((ref_pdq, ref_quality)) = expected.get(&name) {
                in_csv += 1;
                if *ref_pdq == pdq && *ref_quality == quality {
                    as_reference += 1;
                    assert_eq!(got["pdq"], ref_pdq.as_str(), "{name}");
                    assert_eq!(got["quality"], *ref_quality, "{name}");
                }
            }
        }
        println!(
            "{} images hashed as natively; {as_reference}/{in_csv} also bit-identical to the reference",
            names.len()
        );
    }

    #[test]
    fn refusals_are_json_errors() {
        for bytes in [
            &b""[..],
            b"not an image at all",
            b"\xFF\xD8\xFF\xE0truncated",
        ] {
            let got = parse(&hash_file_json(bytes));
            let msg = got["error"].as_str().unwrap_or_else(|| panic!("{got}"));
            assert!(!msg.is_empty());
            assert_eq!(got.as_object().unwrap().len(), 1, "{got}");
        }
    }

    /// The exports, natively, as hashing.js drives them: alloc, copy, hash, free, read, free.
    #[test]
    #[allow(unsafe_code)]
    fn exports_round_trip() {
        let bytes = b"definitely not a PNG";
        let p = ffi::redline_alloc(bytes.len());
        assert!(!p.is_null());
        // SAFETY: `p` has `bytes.len()` bytes from redline_alloc; every buffer is freed once.
        let json = unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
            let r = ffi::redline_hash_file(p, bytes.len());
            ffi::redline_free(p, bytes.len());
            let n = u32::from_le_bytes(std::ptr::read(r.cast::<[u8; 4]>())) as usize;
            let json = std::str::from_utf8(std::slice::from_raw_parts(r.add(4), n))
                .unwrap()
                .to_owned();
            ffi::redline_result_free(r);
            json
        };
        assert_eq!(json, hash_file_json(bytes));
        assert!(parse(&json)["error"].is_string());
        assert!(ffi::redline_alloc(usize::MAX).is_null());
    }
}
