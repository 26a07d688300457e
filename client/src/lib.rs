//! Typed Redline clients, for hotlines ([`HotlineClient`]), platforms and auditors
//! ([`Auditor`]). Verification reuses `redline_proto` (the same code the server runs), so an
//! auditor trusts nothing a node says: only origin keys it was given.

pub mod audit;
pub mod connect;
pub mod hotline;

pub use audit::{AuditError, AuditReport, Auditor, TrustedSize};
pub use connect::{connect, ClientError};
pub use hotline::HotlineClient;
