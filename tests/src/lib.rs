//! Test harness: starts real Redline nodes on 127.0.0.1:0.
