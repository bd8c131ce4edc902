//! # ld-connectord
//!
//! The node-side connector runtime. Modules follow the data:
//! supervisor client -> reconcile -> instance tasks -> plugin host / stream.
//! This version provides the plugin host: loading, checking and driving plugins.

pub mod plugin_host;
pub mod stream;
