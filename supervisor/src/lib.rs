//! `ld-supervisor`: the reference control plane for `ld-connectord`.
//!
//! It serves the seed's Main API (connector catalog, activate) and Supervisor API (list
//! and delete instances) plus the extensions nodes need (long poll, status reports,
//! heartbeats, versioned config, stop/start), all documented in
//! `docs/supervisor-openapi.yaml`. State lives in `sled` under a data directory.
//!
//! Embedding it in-process (what the daemon's standalone mode and the tests do):
//!
//! ```no_run
//! use ld_supervisor::{auth::Permission, Supervisor, SupervisorConfig};
//!
//! # async fn run() -> anyhow::Result<()> {
//! let supervisor = Supervisor::open(SupervisorConfig::new("/var/lib/ld-supervisor"))?;
//! let key = supervisor.create_api_key(&Permission::ALL)?;
//! println!("API key: {key}");
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! println!("listening on {}", listener.local_addr()?);
//! supervisor.serve(listener, std::future::pending()).await?;
//! # Ok(())
//! # }
//! ```

pub mod activity;
pub mod api;
pub mod auth;
pub mod catalog;
pub mod extract;
pub mod instances;
pub mod keys;
pub mod leases;
pub mod longpoll;
pub mod nodes;
pub mod placement;
pub mod problem;
pub mod ratelimit;
pub mod routes;
pub mod secrets;
pub mod status;
pub mod store;
mod supervisor;
pub mod tls;
pub mod validate;

pub use store::CatalogEntry;
pub use supervisor::{now_ms, serve, Supervisor, SupervisorConfig};

/// The connectors known out of the box (shipped as `supervisor/catalog.json`), so the
/// catalog is not empty before any node has reported its plugins.
pub fn builtin_catalog() -> Vec<CatalogEntry> {
    serde_json::from_str(include_str!("../catalog.json")).expect("catalog.json is valid")
}
