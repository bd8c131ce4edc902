//! # ld-plugin-api: write connectors for ld-connectord
//!
//! A connector is a Rust `cdylib` that the `ld-connectord` daemon loads at run time. A
//! **sink** writes stream messages into an external system; a **source** reads an
//! external system into a stream. This crate is the only dependency a plugin needs:
//! implement [`Sink`] or [`Source`], describe the `plugin_config` with `serde` and
//! `schemars`, and export the library with [`export_plugin!`].
//!
//! ```
//! use ld_plugin_api::{export_plugin, InstanceContext, PluginError, Sink, SinkBatch};
//!
//! /// The `plugin_config` of an instance. Its JSON Schema is published in the catalog,
//! /// and a config that does not parse is refused before the instance starts.
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! #[serde(deny_unknown_fields)]
//! struct LineCountConfig {
//!     /// Log a line every `every` messages.
//!     every: u64,
//! }
//!
//! struct LineCountSink {
//!     every: u64,
//!     seen: u64,
//! }
//!
//! impl Sink for LineCountSink {
//!     type Config = LineCountConfig;
//!
//!     fn new(config: LineCountConfig, _ctx: &InstanceContext) -> Result<Self, PluginError> {
//!         if config.every == 0 {
//!             return Err(PluginError::invalid_config("plugin_config.every: must be at least 1"));
//!         }
//!         Ok(LineCountSink { every: config.every, seen: 0 })
//!     }
//!
//!     // Messages borrow the host's buffer: reading them allocates nothing.
//!     async fn consume(&mut self, batch: SinkBatch<'_>) -> Result<(), PluginError> {
//!         for message in batch.messages() {
//!             self.seen += 1;
//!             if self.seen % self.every == 0 {
//!                 // Forwarded to the daemon's log, inside the instance's span.
//!                 tracing::info!(offset = message.offset(), "seen {} messages", self.seen);
//!             }
//!         }
//!         Ok(()) // Ok: the host commits the batch's offsets.
//!     }
//! }
//!
//! export_plugin! {
//!     key: "line-count",
//!     name: "Line count",
//!     description: "Counts messages and logs progress",
//!     sink: LineCountSink,
//! }
//! # fn main() {}
//! ```
//!
//! In `Cargo.toml`:
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! ld-plugin-api = "0.1"
//! serde = { version = "1", features = ["derive"] }
//! schemars = "0.8"
//! tracing = "0.1"
//! ```
//!
//! ## Rules the SDK enforces for you
//!
//! - **Panics** in any entry point or future are caught at the boundary and reported as a
//!   [`PluginError`] of kind [`ErrorKind::Panicked`]; the daemon and other instances go on.
//!   Keep `panic = "unwind"` (the default) in your release profile.
//! - **Async I/O**: every future runs with the library's own tokio runtime entered, so
//!   `tokio::net`, `tokio::time` and `tokio::spawn` work. Never block the thread.
//! - **Logs** from `tracing` (and the `log` crate) are forwarded to the daemon.
//! - **Errors** carry a kind: [`ErrorKind::Transient`] is retried with backoff,
//!   [`ErrorKind::InvalidConfig`] marks the instance `failed` with your message at once;
//!   [`ErrorKind::Fatal`] ends the run, which restarts a few times before it is `failed`.
//! - **Delivery**: a sink batch is committed only after `consume` returned `Ok` (and
//!   [`Sink::flush`] says it is durable); a source's state is saved only after its batch
//!   is durably in the stream.
//!
//! ## Testing
//!
//! With the `testing` feature (in `[dev-dependencies]`), `ld_plugin_api::testing` drives
//! a [`Sink`] or [`Source`] in a plain `#[tokio::test]` through the same adapter and panic
//! guard the host uses, and `testing::conformance` checks the behaviour every connector
//! must show. The plugin guide (`docs/plugin-guide.md` in the repository) covers the
//! lifecycle, errors, delivery, state, secrets, async rules and the ABI policy.

#![warn(missing_docs)]

mod connector;
mod duration;
mod error;
mod export;
#[allow(non_local_definitions)] // abi_stable's sabi_trait expands impls inside a const
pub mod ffi;
mod guard;
mod logging;
mod message;
mod rejection;
mod secret;
mod source_batch;
#[cfg(feature = "testing")]
pub mod testing;

pub use connector::{InstanceContext, Sink, Source};
pub use duration::parse_duration;
pub use error::{ErrorKind, PluginError};
pub use message::{Header, Message, Schema, SinkBatch};
pub use rejection::Rejection;
pub use secret::Secret;
pub use source_batch::{MessageSpec, SourceBatch};

// Host-side types, now under `ffi`. Kept here, hidden, so code written against 0.1.0
// or 0.1.1 still compiles; they go in 0.2.
#[doc(hidden)]
pub use secret::SECRET_MARKER;
#[doc(hidden)]
pub use source_batch::{ByteRange, RawSourceBatch, SourceHeader, SourceMessage, SourceMessageRef};

/// Used by [`export_plugin!`]; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::export::*;
}

/// Crates plugins commonly need, re-exported so the versions match the SDK's.
pub mod reexports {
    pub use schemars;
    pub use serde;
    pub use serde_json;
    pub use tokio;
    pub use tracing;
}
