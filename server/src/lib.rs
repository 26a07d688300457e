//! The Redline node.
