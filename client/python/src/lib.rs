//! `redline._redline`, the native module of the `redline` Python package: Redline's Rust core
//! (redline-hashing, redline-proto, redline-client) bound with PyO3, so Python hashes, matches
//! and verifies with the one implementation the node and the `redline` command use.
//!
//! Modules, one job each: [`hashing`] (PDQ, vPDQ, md5/sha256 of files), [`client`] (a
//! connection to a node: matching and verification), [`matching`] (match results),
//! [`verify`] (verified logs and their updates), [`runtime`] (the async calls, GIL released),
//! [`errors`] (the exception hierarchy).

mod client;
mod errors;
mod hashing;
mod matching;
mod runtime;
mod verify;

use pyo3::prelude::*;

#[pymodule]
fn _redline(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(hashing::pdq, m)?)?;
    m.add_function(wrap_pyfunction!(hashing::pdq_from_rgb, m)?)?;
    m.add_function(wrap_pyfunction!(hashing::hash_image, m)?)?;
    m.add_function(wrap_pyfunction!(hashing::md5, m)?)?;
    m.add_function(wrap_pyfunction!(hashing::sha256, m)?)?;
    m.add_function(wrap_pyfunction!(hashing::hamming_distance, m)?)?;
    m.add_function(wrap_pyfunction!(hashing::vpdq_frames, m)?)?;
    m.add_function(wrap_pyfunction!(hashing::vpdq_signal_str, m)?)?;
    m.add_class::<hashing::Signal>()?;
    m.add_class::<hashing::VpdqFrame>()?;
    m.add_class::<client::Client>()?;
    m.add_class::<matching::Match>()?;
    m.add_class::<matching::VideoMatch>()?;
    m.add_class::<matching::QueryResult>()?;
    m.add_class::<verify::VerifiedLog>()?;
    m.add_class::<verify::ListedEntry>()?;
    m.add_class::<verify::LogUpdate>()?;
    m.add_class::<verify::UpdateBatch>()?;
    m.add("RedlineError", py.get_type::<errors::RedlineError>())?;
    m.add("InputError", py.get_type::<errors::InputError>())?;
    m.add("HashingError", py.get_type::<errors::HashingError>())?;
    m.add("NodeError", py.get_type::<errors::NodeError>())?;
    m.add(
        "UnreachableError",
        py.get_type::<errors::UnreachableError>(),
    )?;
    m.add(
        "AuthenticationError",
        py.get_type::<errors::AuthenticationError>(),
    )?;
    m.add(
        "PermissionDeniedError",
        py.get_type::<errors::PermissionDeniedError>(),
    )?;
    m.add(
        "VerificationError",
        py.get_type::<errors::VerificationError>(),
    )?;
    Ok(())
}
