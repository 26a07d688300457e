//! Connections: how the gRPC listener accepts them and what bounds each one before and
//! beside the HTTP/2 server.

pub mod opening;

pub use opening::{opening_deadline, OpeningDeadline};
