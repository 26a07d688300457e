//! Glue between libFuzzer and the target bodies in `tests/src/fuzz.rs`.
//!
//! The bodies are compiled here by path, not through a dependency on `redline-e2e`: that crate
//! is the end-to-end harness (gRPC client, TLS certificate generation, process spawning), all of
//! which would be built with coverage instrumentation for nothing. The bodies need only the
//! crates under test.
//!
//! The fuzz targets are built without a sanitizer (`--sanitizer none`, see `run.sh`), so
//! libFuzzer's `-malloc_limit_mb` (which relies on sanitizer malloc hooks) does not apply and
//! LeakSanitizer does not run. This crate installs a counting global allocator instead, which
//! checks more than either:
//! - one allocation over [`MALLOC_LIMIT`] aborts at once, with its size (libFuzzer saves the
//!   input as a crash);
//! - the live heap reached while one input runs must stay under the target's documented bound
//!   ([`bodies::Target::max_heap_bytes`]), else the input panics (a crash as well);
//! - heap still held after an input ran is run a second time: one-time initialisation
//!   (a `OnceLock`, a cache filled on first use) allocates once, a leak allocates again.
//!
//! `unsafe` is confined to the [`GlobalAlloc`] impl, which forwards to the system allocator.

#[path = "../../src/fuzz.rs"]
pub mod bodies;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Largest single allocation a target may make: far above anything an honest input needs
/// (the image target's whole bound is about 14 MiB), far below what would exhaust the machine.
pub const MALLOC_LIMIT: usize = 256 << 20;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

struct Counting;

fn grew(bytes: usize) {
    if bytes > MALLOC_LIMIT {
        over_malloc_limit(bytes);
    }
    let live = LIVE.fetch_add(bytes, Relaxed) + bytes;
    PEAK.fetch_max(live, Relaxed);
}

/// Reports and aborts without allocating (we are inside the allocator).
#[cold]
fn over_malloc_limit(bytes: usize) -> ! {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = bytes;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(b"==redline-fuzz== single allocation of ");
    let _ = err.write_all(&digits[at..]);
    let _ = err.write_all(b" bytes is over the 256 MiB malloc limit\n");
    std::process::abort();
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the counters
// are plain atomics and never affect the pointers returned.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            grew(new_size);
            LIVE.fetch_sub(layout.size(), Relaxed);
        } else {
            LIVE.fetch_sub(layout.size() - new_size, Relaxed);
        }
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs the body of target `name` on one input, enforcing its heap bound and checking for
/// leaks (see the module docs).
pub fn run(name: &str, data: &[u8]) {
    let target = bodies::TARGETS
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("unknown fuzz target {name}"));
    let before = LIVE.load(Relaxed);
    PEAK.store(before, Relaxed);
    (target.run)(data);
    let peak = PEAK.load(Relaxed) - before;
    let bound = (target.max_heap_bytes)(data.len());
    assert!(
        peak <= bound,
        "{name}: {peak} bytes of live heap for a {}-byte input, over the bound of {bound}",
        data.len()
    );
    let after = LIVE.load(Relaxed);
    if after > before {
        (target.run)(data);
        let again = LIVE.load(Relaxed);
        assert!(
            again <= after,
            "{name}: leak: {} more bytes held after running the same input twice",
            again - after
        );
    }
}
