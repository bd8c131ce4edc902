//! The daemon: fetches this node's assignment from the supervisor (long poll), runs
//! each instance in its own task, reports statuses through an outbox, sends heartbeats,
//! serves the local API, and keeps running what it has when the supervisor is away.

pub mod api;
pub mod client;
pub mod manager;
pub mod outbox;
pub mod reconcile;

use std::{
    net::SocketAddr,
    path::Path,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::Context;
use ld_supervisor::api::{Heartbeat, InstanceItem, LocalInstanceStatus, PluginInfo};
use tokio_util::sync::CancellationToken;

use self::{
    client::{Assignment, ClientError, SupervisorClient},
    manager::{Manager, ManagerSettings},
    outbox::Outbox,
};
use crate::{
    config::{DaemonConfig, StreamSettings},
    instance::{CallPolicy, RetryPolicy},
    plugin_host::Catalog,
    state::StateStore,
    stream::{
        embedded::{Durability, EmbeddedConfig, EmbeddedLog, Retention},
        StreamBackend,
    },
};

/// Milliseconds since the Unix epoch (the `at` of reports and heartbeats).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Where a running daemon can be reached.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// Address of the local API.
    pub api_addr: SocketAddr,
}

const ASSIGNMENT_KEY: &str = "assignment";

fn open_backend(
    config: &DaemonConfig,
    db: &sled::Db,
) -> anyhow::Result<(Arc<dyn StreamBackend>, Option<EmbeddedLog>)> {
    match &config.stream {
        StreamSettings::Embedded {
            durability,
            partitions,
            retention_bytes,
            retention_age,
        } => {
            let durability = if durability == "batch" {
                Durability::Batch
            } else {
                Durability::Interval(
                    humantime::parse_duration(durability).context("stream.durability")?,
                )
            };
            let log = EmbeddedLog::open(
                db.clone(),
                EmbeddedConfig {
                    durability,
                    partitions: *partitions,
                    retention: Retention {
                        max_bytes: *retention_bytes,
                        max_age: *retention_age,
                    },
                },
            )?;
            Ok((Arc::new(log.clone()), Some(log)))
        }
        #[cfg(feature = "iggy")]
        StreamSettings::Iggy {
            address,
            username,
            password,
            create_missing,
        } => {
            let backend = crate::stream::iggy::IggyBackend::new(crate::stream::iggy::IggyConfig {
                address: address.clone(),
                username: username.clone(),
                password: password.expose().to_string(),
                create_missing: *create_missing,
                ..Default::default()
            });
            Ok((Arc::new(backend), None))
        }
        #[cfg(not(feature = "iggy"))]
        StreamSettings::Iggy { .. } => {
            anyhow::bail!(
                "stream.backend: this build has no iggy backend (build with --features iggy)"
            )
        }
    }
}

fn load_catalog(config: &DaemonConfig) -> anyhow::Result<Catalog> {
    let catalog = Catalog::load_dir(&config.plugin_dir, &config.state_dir.join("plugin-cache"))
        .with_context(|| format!("plugin_dir: cannot read {}", config.plugin_dir.display()))?;
    for refused in catalog.refused() {
        tracing::warn!("plugin refused: {refused}");
    }
    Ok(catalog)
}

fn heartbeat_of(manager: &Manager) -> Heartbeat {
    let catalog = manager.catalog();
    Heartbeat {
        runtime_version: env!("CARGO_PKG_VERSION").to_string(),
        plugins: catalog
            .entries()
            .into_iter()
            .map(|e| PluginInfo {
                key: e.key,
                connector_type: e.connector_type.parse().expect("source or sink"),
                name: e.name,
                description: e.description,
                version: e.version,
                secret_fields: e.secret_fields,
            })
            .collect(),
        instances: manager
            .views()
            .into_iter()
            .map(|v| LocalInstanceStatus {
                instance_id: v.id,
                status: v.status,
                reason: v.reason,
                config_version: v.config_version,
            })
            .collect(),
        at: now_ms(),
    }
}

/// Watches the plugin directory; each burst of changes sends one `()`.
fn watch_plugins(
    dir: &Path,
) -> anyhow::Result<(notify::RecommendedWatcher, tokio::sync::mpsc::Receiver<()>)> {
    use notify::Watcher;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !e.kind.is_access()) {
            let _ = tx.try_send(());
        }
    })
    .context("cannot watch the plugin directory")?;
    watcher
        .watch(dir, notify::RecursiveMode::NonRecursive)
        .with_context(|| format!("cannot watch {}", dir.display()))?;
    Ok((watcher, rx))
}

/// Runs the daemon until `shutdown` fires. `on_ready` runs once, after the first
/// reconcile (from the supervisor, or from the cache when it is unreachable).
pub async fn run(
    config: DaemonConfig,
    shutdown: CancellationToken,
    on_ready: impl FnOnce(&RunInfo) + Send,
) -> anyhow::Result<()> {
    tracing::info!(
        node = %config.node_id,
        deployment = config.deployment_id,
        supervisor = %config.supervisor_url,
        "ld-connectord starting"
    );
    let db = crate::local::open_db(&config.state_dir)?;
    let (backend, embedded) = open_backend(&config, &db)?;
    // With the embedded log, checkpoints ride the log's flushes (same database); with
    // a remote stream, each checkpoint is flushed on its own.
    let state = StateStore::with_db(db.clone(), embedded.is_none())?;
    let outbox = Outbox::open(&db)?;
    let cache = db.open_tree("daemon/cache")?;
    let client = SupervisorClient::new(
        &config.supervisor_url,
        config.deployment_id,
        config.api_key.clone(),
        &config.supervisor_ca,
    );
    let manager = Arc::new(Manager::new(
        Arc::new(load_catalog(&config)?),
        backend,
        state.clone(),
        outbox.clone(),
        ManagerSettings {
            node_id: config.node_id.clone(),
            policy: CallPolicy {
                call_timeout: config.call_timeout,
                retry: RetryPolicy::default(),
            },
            restart: RetryPolicy {
                initial: config.restart_backoff,
                max: config.restart_backoff_max,
                max_attempts: config.max_restarts,
            },
            stop_timeout: config.shutdown_timeout,
        },
    ));

    // Resume what the node ran before, even if the supervisor is down.
    let mut items: Vec<InstanceItem> = match cache.get(ASSIGNMENT_KEY)? {
        Some(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cached assignment unreadable; ignored");
            Vec::new()
        }),
        None => Vec::new(),
    };
    if !items.is_empty() {
        tracing::info!(instances = items.len(), "resuming the cached assignment");
        manager.apply(&items).await;
    }

    let listener = tokio::net::TcpListener::bind(config.api_listen)
        .await
        .with_context(|| format!("api_listen: cannot listen on {}", config.api_listen))?;
    let info = RunInfo {
        api_addr: listener.local_addr()?,
    };
    tracing::info!(addr = %info.api_addr, "local API listening");
    let api_shutdown = shutdown.clone();
    let api_router = api::router(manager.clone());
    let api_task = tokio::spawn(async move {
        axum::serve(listener, api_router)
            .with_graceful_shutdown(async move { api_shutdown.cancelled().await })
            .await
    });

    let background = CancellationToken::new();
    tokio::spawn(outbox.clone().run(client.clone(), background.clone()));
    tokio::spawn(heartbeats(
        manager.clone(),
        client.clone(),
        config.clone(),
        background.clone(),
    ));
    if let Some(log) = embedded {
        tokio::spawn(retention(log, background.clone()));
    }
    let (_watcher, mut plugin_changes) = watch_plugins(&config.plugin_dir)?;

    let mut on_ready = Some(on_ready);
    let mut etag: Option<String> = None;
    let mut backoff = Duration::from_millis(250);
    loop {
        let outcome = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            Some(()) = plugin_changes.recv() => {
                // Let a copy in progress finish, and take the burst as one change.
                tokio::time::sleep(Duration::from_millis(500)).await;
                while plugin_changes.try_recv().is_ok() {}
                match load_catalog(&config) {
                    Ok(catalog) => {
                        tracing::info!(connectors = catalog.entries().len(), "plugin directory changed: catalog reloaded");
                        manager.replace_catalog(Arc::new(catalog), &items).await;
                        // Announce the new catalog without holding up this loop.
                        let (client, manager, node) = (client.clone(), manager.clone(), config.node_id.clone());
                        tokio::spawn(async move {
                            let _ = client.heartbeat(&node, &heartbeat_of(&manager)).await;
                        });
                    }
                    Err(e) => tracing::error!(error = %e, "cannot reload plugins"),
                }
                continue;
            }
            outcome = client.instances(etag.as_deref(), config.long_poll_wait) => outcome,
        };
        match outcome {
            Ok(Assignment::Changed {
                etag: new_etag,
                instances,
            }) => {
                backoff = Duration::from_millis(250);
                etag = new_etag;
                match serde_json::to_vec(&instances) {
                    Ok(bytes) => {
                        if let Err(e) = cache.insert(ASSIGNMENT_KEY, bytes) {
                            tracing::warn!(error = %e, "cannot cache the assignment");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot encode the assignment"),
                }
                manager.apply(&instances).await;
                items = instances;
            }
            Ok(Assignment::Unchanged) => backoff = Duration::from_millis(250),
            Err(e) => {
                match &e {
                    ClientError::BadAnswer(_) => {
                        tracing::error!(error = %e, "ignoring the answer; the last good assignment stays in force")
                    }
                    _ => {
                        tracing::warn!(error = %e, retry_in = ?backoff, "cannot fetch the assignment; running what we have")
                    }
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
        if let Some(ready) = on_ready.take() {
            ready(&info);
        }
    }

    tracing::info!("shutting down: stopping instances");
    let abandoned = manager.shutdown().await;
    if !abandoned.is_empty() {
        tracing::error!(instances = ?abandoned, "abandoned at the shutdown deadline");
    }
    // One last try to deliver the final statuses; the rest waits in the outbox.
    let _ = tokio::time::timeout(Duration::from_secs(2), outbox.send_all(&client)).await;
    background.cancel();
    state.flush().await?;
    let _ = api_task.await;
    tracing::info!("stopped");
    Ok(())
}

async fn heartbeats(
    manager: Arc<Manager>,
    client: SupervisorClient,
    config: DaemonConfig,
    stop: CancellationToken,
) {
    let mut watchdog_usec = 0;
    let watchdog = sd_notify::watchdog_enabled(false, &mut watchdog_usec);
    let tick = if watchdog {
        config
            .heartbeat_interval
            .min(Duration::from_micros(watchdog_usec / 2))
    } else {
        config.heartbeat_interval
    };
    let mut since_heartbeat = Duration::MAX;
    loop {
        if watchdog {
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
        }
        if since_heartbeat >= config.heartbeat_interval {
            since_heartbeat = Duration::ZERO;
            if let Err(e) = client
                .heartbeat(&config.node_id, &heartbeat_of(&manager))
                .await
            {
                tracing::debug!(error = %e, "heartbeat not delivered");
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(tick) => since_heartbeat += tick,
        }
    }
}

async fn retention(log: EmbeddedLog, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(30)) => {}
        }
        let log = log.clone();
        match tokio::task::spawn_blocking(move || log.enforce_retention()).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(batches = n, "retention removed old batches"),
            Ok(Err(e)) => tracing::warn!(error = %e, "retention failed"),
            Err(_) => {}
        }
    }
}
