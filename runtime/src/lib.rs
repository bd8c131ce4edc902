//! # ld-connectord
//!
//! The node-side connector runtime. Modules follow the data:
//! supervisor client (or config files) -> engine (reconcile, instance manager) ->
//! instance tasks -> plugin host / stream.

pub mod config;
pub mod daemon;
pub mod engine;
pub mod instance;
pub mod local;
pub mod plugin_host;
pub mod redact;
pub mod scaffold;
// The only module that needs `ld-supervisor` (it embeds it): feature `standalone`, on by
// default, so a daemon-only build leaves out axum's supervisor and its sled store.
#[cfg(feature = "standalone")]
pub mod standalone;
pub mod state;
pub mod stream;
pub mod transform;
pub mod wire;
