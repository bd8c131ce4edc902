//! # ld-connectord
//!
//! The node-side connector runtime. Modules follow the data:
//! supervisor client -> reconcile -> instance tasks -> plugin host / stream.
//! This version provides the plugin host: loading, checking and driving plugins.

pub mod config;
pub mod daemon;
pub mod instance;
pub mod local;
pub mod plugin_host;
pub mod redact;
pub mod standalone;
pub mod state;
pub mod stream;
pub mod transform;
