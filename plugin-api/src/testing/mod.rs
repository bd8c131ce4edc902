//! Test your plugin without building a `.so`: drive a [`crate::Sink`] or
//! [`crate::Source`] in a plain `#[tokio::test]`, in process, through the same adapter
//! and panic guard the host uses ([`SinkHarness`], [`SourceHarness`], with batches built
//! from JSON values, text or bytes: [`TestBatch`]), and check the behaviour every
//! connector must show in one call ([`conformance`]).
//!
//! Enable it for tests only:
//!
//! ```toml
//! [dev-dependencies]
//! ld-plugin-api = { version = "0.1", features = ["testing"] }
//! tokio = { version = "1", features = ["macros", "rt-multi-thread"] }
//! ```
//!
//! Link one plugin crate per test binary: each crate's `export_plugin!` exports the same
//! root-module symbol, so two plugin crates in one binary fail to link ("duplicate
//! symbol"). Integration tests (`tests/*.rs`) are a binary each.

mod batch;
pub mod conformance;
mod sink;
mod source;

pub use batch::{TestBatch, TestMessage};
pub use sink::SinkHarness;
pub use source::{PolledBatch, SourceHarness};
