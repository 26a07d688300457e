//! Typed Redline clients.
