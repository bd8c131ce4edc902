//! The [`Supervisor`]: the store, the change channels and the settings behind the router.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use tokio::net::TcpListener;

use crate::auth::{self, Permission};
use crate::longpoll::Changes;
use crate::ratelimit::AuthFailures;
use crate::store::{CatalogEntry, KeyRecord, Store, StoreError};

/// Settings of a supervisor.
#[derive(Debug, Clone)]
pub struct SupervisorConfig {
    /// Directory of the sled database; created when missing.
    pub data_dir: PathBuf,
    /// A node with no heartbeat for this long counts as gone.
    pub node_ttl: Duration,
    /// Cap on a long poll's `wait`.
    pub max_wait: Duration,
    /// Largest request body accepted, in bytes; larger bodies get 413.
    pub body_limit: usize,
    /// Failed authentications allowed per client address within a minute before it gets
    /// 429; 0 disables the limit.
    pub auth_failures_per_minute: u32,
}

impl SupervisorConfig {
    /// Defaults: node TTL 30 s, long polls up to 60 s, bodies up to 1 MiB, 10 failed
    /// authentications per address and minute.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        SupervisorConfig {
            data_dir: data_dir.into(),
            node_ttl: Duration::from_secs(30),
            max_wait: Duration::from_secs(crate::api::MAX_WAIT_SECS),
            body_limit: 1024 * 1024,
            auth_failures_per_minute: 10,
        }
    }
}

/// The reference control plane. Cheap to clone; clones share one store.
///
/// Embed it in-process with [`Supervisor::open`] and [`Supervisor::router`] (or
/// [`Supervisor::serve`]); create keys with [`Supervisor::create_api_key`].
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    config: SupervisorConfig,
    // Serializes read-modify-write sequences (key uniqueness, config versions): sled
    // alone would make each write atomic but not the check before it.
    writes: Mutex<()>,
    changes: Changes,
    auth_failures: AuthFailures,
    // Key hash -> when its last use was written, so a busy key is written once a minute.
    key_uses: Mutex<HashMap<String, u64>>,
    // When this process opened the store (leases count as renewed then).
    started_ms: u64,
    // Nodes' counters of their instances, for the lists' activity summaries.
    activity: crate::activity::Activity,
}

impl Supervisor {
    /// Opens the store in `config.data_dir`. Fails when another process holds it.
    pub fn open(config: SupervisorConfig) -> Result<Self, StoreError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| StoreError::Sled(e.into()))?;
        let store = Store::open(&config.data_dir)?;
        Ok(Supervisor {
            inner: Arc::new(Inner {
                store,
                writes: Mutex::new(()),
                changes: Changes::default(),
                auth_failures: AuthFailures::new(
                    config.auth_failures_per_minute,
                    Duration::from_secs(60),
                ),
                key_uses: Mutex::new(HashMap::new()),
                started_ms: now_ms(),
                activity: Default::default(),
                config,
            }),
        })
    }

    /// The axum router serving every route of [`crate::routes::ROUTES`].
    pub fn router(&self) -> Router {
        crate::routes::router(self.clone())
    }

    /// Serves the API on `listener` until `shutdown` completes.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, data = %self.inner.config.data_dir.display(), "supervisor serving");
        }
        axum::serve(
            listener,
            self.router()
                .into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
    }

    /// Serves the API over HTTPS on `listener` until `shutdown` completes; `tls` comes from
    /// [`crate::tls::load_server_config`] (a PEM certificate chain and key).
    pub async fn serve_tls(
        self,
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        use axum::serve::ListenerExt;
        let listener = crate::tls::TlsListener::new(listener, tls)?;
        if let Ok(addr) = axum::serve::Listener::local_addr(&listener) {
            tracing::info!(%addr, data = %self.inner.config.data_dir.display(), "supervisor serving HTTPS");
        }
        // `tap_io` makes axum hand the peer address to the router (rate limiting).
        axum::serve(
            listener.tap_io(|_| {}),
            self.router()
                .into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
    }

    /// Serves over HTTPS when `tls` names a certificate and key, else plain HTTP: what
    /// `ld-supervisor serve --tls-cert --tls-key` and an embedding daemon call.
    pub async fn serve_with(
        self,
        listener: TcpListener,
        tls: Option<&crate::tls::TlsFiles>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        match tls {
            Some(files) => {
                let config = crate::tls::load_server_config(&files.cert, &files.key)?;
                self.serve_tls(listener, config, shutdown).await?;
            }
            None => self.serve(listener, shutdown).await?,
        }
        Ok(())
    }

    /// Creates an API key with `permissions`, stores its hash, and returns the key itself:
    /// the only time it is visible.
    pub fn create_api_key(&self, permissions: &[Permission]) -> Result<String, StoreError> {
        let key = auth::generate_key();
        let mut permissions = permissions.to_vec();
        permissions.dedup();
        let record = KeyRecord {
            permissions,
            created_at_ms: now_ms(),
            expires_at_ms: None,
            deployments: Vec::new(),
            name: None,
            last_used_ms: None,
        };
        self.inner.store.put_key(&auth::hash_key(&key), &record)?;
        tracing::info!(permissions = ?record.permissions, "API key created");
        Ok(key)
    }

    /// True when no API key exists yet (a fresh data directory).
    pub fn has_no_keys(&self) -> bool {
        self.inner.store.key_count() == 0
    }

    /// Adds a connector to the catalog of every deployment (stored; survives restarts).
    pub fn register_catalog_entry(&self, entry: CatalogEntry) -> Result<(), StoreError> {
        self.inner.store.put_catalog_entry(&entry)
    }

    /// The settings this supervisor runs with.
    pub fn config(&self) -> &SupervisorConfig {
        &self.inner.config
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    /// When this process opened the store, ms since the Unix epoch.
    pub(crate) fn started_ms(&self) -> u64 {
        self.inner.started_ms
    }

    pub(crate) fn activity(&self) -> &crate::activity::Activity {
        &self.inner.activity
    }

    pub(crate) fn changes(&self) -> &Changes {
        &self.inner.changes
    }

    pub(crate) fn auth_failures(&self) -> &AuthFailures {
        &self.inner.auth_failures
    }

    /// Records that the key under `hash` authenticated a call, at most once a minute.
    pub(crate) fn touch_key(&self, hash: &str, now: u64) {
        {
            let mut uses = self
                .inner
                .key_uses
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            match uses.get(hash) {
                Some(last) if now.saturating_sub(*last) < 60_000 => return,
                _ => {}
            }
            if uses.len() > 10_000 {
                uses.clear();
            }
            uses.insert(hash.to_string(), now);
        }
        if let Err(err) = self.inner.store.touch_key(hash, now) {
            tracing::warn!(error = %err, "could not record a key's last use");
        }
    }

    pub(crate) fn write_lock(&self) -> MutexGuard<'_, ()> {
        self.inner.writes.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Serves a supervisor opened from `config` on `listener` until the process ends.
pub async fn serve(config: SupervisorConfig, listener: TcpListener) -> anyhow::Result<()> {
    let supervisor = Supervisor::open(config)?;
    supervisor.serve(listener, std::future::pending()).await?;
    Ok(())
}

/// Milliseconds since the Unix epoch on the supervisor's clock.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
