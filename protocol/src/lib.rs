//! `ld-protocol`: the control-plane protocol between `ld-connectord` and a supervisor,
//! in one small crate that every side uses.
//!
//! - [`types`]: the JSON shapes on the wire (re-exported at the crate root), the API key
//!   header and the problem media type;
//! - [`routes`]: every route the supervisor serves, as templates, as the table the
//!   reference supervisor builds its router from, and as builders of concrete paths;
//! - [`client`]: [`SupervisorClient`], a typed async client with typed errors
//!   ([`ClientError`]) for what nodes call (long-polled assignment, status reports,
//!   heartbeats) and what users call (catalog, activate, config, stop/start, delete,
//!   keys).
//!
//! The reference supervisor (`ld-supervisor`) serves these types; the daemon, its
//! standalone mode and the tests call it through this client, so no request is built by
//! hand twice. `docs/supervisor-openapi.yaml` documents the same protocol for other
//! implementations.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use ld_protocol::{ActivateRequest, Assignment, ConnectorType, Scope, SupervisorClient};
//!
//! # async fn run() -> Result<(), ld_protocol::ClientError> {
//! let client = SupervisorClient::builder("http://127.0.0.1:8090", 611298765432109056)
//!     .api_key("ldk_...")
//!     .build()?;
//! let scope = Scope::new("1", "1", "1");
//! let item = client
//!     .activate(
//!         &scope,
//!         &ActivateRequest {
//!             connector_key: "stdout".into(),
//!             connector_type: ConnectorType::Sink,
//!             instance_name: None,
//!             instance_key: Some("my-sink".into()),
//!             config: None,
//!         },
//!     )
//!     .await?;
//! println!("instance {} is {}", item.id, item.status);
//!
//! // A node's long poll: answers at once on a change, `Unchanged` after the wait.
//! let mut etag = None;
//! loop {
//!     match client.instances("node-1", etag.as_deref(), Duration::from_secs(30)).await? {
//!         Assignment::Changed { etag: new, instances } => {
//!             etag = new;
//!             println!("{} instances", instances.len());
//!         }
//!         Assignment::Unchanged => {}
//!     }
//! }
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod routes;
pub mod types;

pub use client::{
    ApiKey, Assignment, ClientBuilder, ClientError, ListQuery, SupervisorClient, DEFAULT_TIMEOUT,
};
pub use routes::Scope;
pub use types::*;
