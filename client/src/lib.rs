//! Typed Redline clients, for hotlines ([`HotlineClient`]), platforms ([`PlatformClient`]) and
//! auditors ([`Auditor`]), plus what the `redline` command builds on: trusted keys and audit
//! state ([`trust`]), plain-file log dumps ([`dump`]) and other tools' list formats ([`lists`]).
//!
//! Verification reuses `redline_proto` (the same code the server runs), so an auditor trusts
//! nothing a node says: only origin keys it was given. Every client can carry a bearer token
//! ([`BearerAuth`]), sent as `authorization: Bearer <token>` on each call.

pub mod audit;
pub mod connect;
pub mod dump;
pub mod hotline;
pub mod lists;
pub mod platform;
pub mod trust;

pub use audit::{AuditError, AuditReport, Auditor, LogVerifier, TrustedSize, VerifiedLog};
pub use connect::{connect, connect_with_token, AuthChannel, BearerAuth, ClientError, NodeTarget};
pub use hotline::HotlineClient;
pub use platform::{MatchOptions, PlatformClient};
pub use trust::{AuditState, KeyRing};
