//! The daemon: fetches this node's assignment from the supervisor (long poll), runs
//! each instance in its own task, reports statuses through an outbox, sends heartbeats,
//! serves the local API, and keeps running what it has when the supervisor is away.

pub mod api;
pub mod checkpoints;
pub mod client;
pub mod leases;
pub mod manager;
pub mod outbox;
pub mod reconcile;

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use ld_protocol::{Heartbeat, InstanceItem, LocalInstanceStatus, PluginInfo};
use tokio_util::sync::CancellationToken;

use self::{
    client::{Assignment, ClientError, SupervisorClient},
    manager::Manager,
    outbox::Outbox,
};
use crate::{
    config::DaemonConfig,
    engine::{open_db, ControlLinks, Engine, EngineSettings},
    instance::{CallPolicy, RetryPolicy},
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
const LEASES_KEY: &str = "leases";

/// A sink's progress per partition, as the heartbeat reports it.
fn partition_offsets(
    metrics: &crate::instance::InstanceMetrics,
) -> Vec<ld_protocol::PartitionOffsets> {
    metrics
        .progress
        .lock()
        .expect("progress lock")
        .iter()
        .map(|((topic, partition), p)| ld_protocol::PartitionOffsets {
            stream: topic.stream.clone(),
            topic: topic.topic.clone(),
            partition: *partition,
            committed: p.committed,
            end: p.end,
            lag: p.lag(),
        })
        .collect()
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
                connector_type: e.connector_type,
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
                messages: v
                    .metrics
                    .as_deref()
                    .map(|m| m.messages.load(std::sync::atomic::Ordering::Relaxed)),
                lag: v.metrics.as_deref().and_then(|m| {
                    let lags = m.lags();
                    (!lags.is_empty()).then(|| lags.iter().map(|(_, _, lag)| lag).sum())
                }),
                partitions: v
                    .metrics
                    .as_deref()
                    .map_or_else(Vec::new, partition_offsets),
                source_state: (v.connector_type == "source")
                    .then(|| manager.source_state(&v.key))
                    .flatten()
                    .filter(|state| state.len() <= ld_protocol::MAX_REPORTED_STATE)
                    .map(|state| ld_protocol::state_to_base64(&state)),
                offsets_applied: manager.offsets_applied(&v.key),
            })
            .collect(),
        at: now_ms(),
    }
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
    let db = open_db(&config.state_dir)?;
    let outbox = Outbox::open(&db)?;
    let cache = db.open_tree("daemon/cache")?;
    let client = SupervisorClient::new(
        &config.supervisor_url,
        config.deployment_id,
        config.api_key.clone(),
        &config.supervisor_ca,
    );
    let leases = Arc::new(leases::Leases::default());
    let mut engine = Engine::start(
        EngineSettings {
            node_id: config.node_id.clone(),
            plugin_dir: config.plugin_dir.clone(),
            state_dir: config.state_dir.clone(),
            stream: config.stream.clone(),
            api_listen: config.api_listen,
            policy: CallPolicy {
                call_timeout: config.call_timeout,
                retry: RetryPolicy::default(),
            },
            restart: restart_policy(&config),
            auto_restart: auto_restart_policy(&config),
            stop_timeout: config.shutdown_timeout,
        },
        db,
        ControlLinks {
            statuses: Arc::new(outbox.clone()),
            shared_checkpoints: Some(Arc::new(checkpoints::SupervisorCheckpoints {
                client: client.clone(),
                node_id: config.node_id.clone(),
                leases: leases.clone(),
            })),
            leases,
        },
    )
    .await?;
    let manager = engine.manager.clone();

    // Leases still usable from before a restart (the supervisor may be away): the
    // sources they cover go on until they end.
    if let Some(bytes) = cache.get(LEASES_KEY)? {
        match serde_json::from_slice::<Vec<leases::CachedLease>>(&bytes) {
            Ok(cached) => manager.leases().restore(&cached, now_ms()),
            Err(e) => tracing::warn!(error = %e, "cached leases unreadable; ignored"),
        }
    }

    // Resume what the node ran before, even if the supervisor is down.
    let items: Vec<InstanceItem> = match cache.get(ASSIGNMENT_KEY)? {
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
    let info = RunInfo {
        api_addr: engine.api_addr,
    };

    let background = CancellationToken::new();
    tokio::spawn(outbox.clone().run(client.clone(), background.clone()));
    tokio::spawn(heartbeats(
        manager.clone(),
        client.clone(),
        config.clone(),
        cache.clone(),
        background.clone(),
    ));

    let mut on_ready = Some(on_ready);
    let mut etag: Option<String> = None;
    // The fetch never gives up (the node runs what it has meanwhile); it only backs off.
    let fetch_backoff = RetryPolicy {
        initial: Duration::from_millis(250),
        max: Duration::from_secs(30),
        max_attempts: u32::MAX,
        healthy_after: None,
    };
    let mut failed_fetches = 0u32;
    loop {
        let outcome = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            () = engine.plugin_change() => {
                if !engine.reload_plugins().await {
                    continue;
                }
                // Announce the new catalog (in the next heartbeat, at once).
                manager.leases().request_renewal();
                continue;
            }
            outcome = client.instances(&config.node_id, etag.as_deref(), config.long_poll_wait) => outcome,
        };
        match outcome {
            Ok(Assignment::Changed {
                etag: new_etag,
                instances,
            }) => {
                failed_fetches = 0;
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
            }
            Ok(Assignment::Unchanged) => failed_fetches = 0,
            Err(e) => {
                failed_fetches = failed_fetches.saturating_add(1);
                let backoff = fetch_backoff.delay(failed_fetches);
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
            }
        }
        if let Some(ready) = on_ready.take() {
            ready(&info);
        }
    }

    engine.stop().await?;
    // One last try to deliver the final statuses; the rest waits in the outbox.
    let _ = tokio::time::timeout(Duration::from_secs(2), outbox.send_all(&client)).await;
    background.cancel();
    tracing::info!("stopped");
    Ok(())
}

/// Restarts of a failing instance: `max_restarts` after the first run; a run of a
/// minute or more counts as healthy and starts the count afresh.
pub fn restart_policy(config: &DaemonConfig) -> RetryPolicy {
    RetryPolicy {
        initial: config.restart_backoff,
        max: config.restart_backoff_max,
        max_attempts: config.max_restarts.saturating_add(1),
        healthy_after: Some(Duration::from_secs(60)),
    }
}

/// Automatic restarts of a failed instance: a long backoff, growing from
/// `auto_restart_backoff` to `auto_restart_backoff_max`, never giving up; `None` when
/// `auto_restart = false`.
pub fn auto_restart_policy(config: &DaemonConfig) -> Option<RetryPolicy> {
    config.auto_restart.then_some(RetryPolicy {
        initial: config.auto_restart_backoff,
        max: config.auto_restart_backoff_max,
        max_attempts: u32::MAX,
        healthy_after: None,
    })
}

/// Sends a heartbeat and takes the source leases its answer renews; the lease counts
/// from when the heartbeat was sent. Returns the node TTL the supervisor asks for.
async fn heartbeat(
    manager: &Manager,
    client: &SupervisorClient,
    config: &DaemonConfig,
    cache: &sled::Tree,
) -> Result<Duration, ClientError> {
    let sent = std::time::Instant::now();
    let sent_ms = now_ms();
    let ack = client
        .heartbeat(&config.node_id, &heartbeat_of(manager))
        .await?;
    let leases = manager.leases();
    leases.renewed(sent, sent_ms, &ack.leases);
    // Kept across a restart of the node (kill -9 included), so it goes on with its
    // sources while the supervisor is away, until their leases end.
    match serde_json::to_vec(&leases.to_cache()) {
        Ok(bytes) => {
            if let Err(e) = cache.insert(LEASES_KEY, bytes) {
                tracing::warn!(error = %e, "cannot cache the leases");
            } else if let Err(e) = cache.flush_async().await {
                tracing::warn!(error = %e, "cannot flush the cached leases");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot encode the leases"),
    }
    Ok(Duration::from_secs(ack.ttl_secs.max(1)))
}

/// Heartbeats: every `heartbeat_interval`, at least three times per node TTL (each one
/// renews the node's source leases), and at once when a lease is waiting to be
/// confirmed or the plugins changed. Also the systemd watchdog.
async fn heartbeats(
    manager: Arc<Manager>,
    client: SupervisorClient,
    config: DaemonConfig,
    cache: sled::Tree,
    stop: CancellationToken,
) {
    let mut watchdog_usec = 0;
    let watchdog = sd_notify::watchdog_enabled(false, &mut watchdog_usec);
    let mut interval = config.heartbeat_interval;
    let tick = |interval: Duration| {
        if watchdog {
            interval.min(Duration::from_micros(watchdog_usec / 2))
        } else {
            interval
        }
    };
    let mut since_heartbeat = Duration::MAX;
    let leases = manager.leases();
    loop {
        if watchdog {
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
        }
        if since_heartbeat >= interval {
            since_heartbeat = Duration::ZERO;
            match heartbeat(&manager, &client, &config, &cache).await {
                Ok(ttl) => interval = config.heartbeat_interval.min(ttl / 3),
                Err(e) => tracing::debug!(error = %e, "heartbeat not delivered"),
            }
        }
        let wait = tick(interval);
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => since_heartbeat += wait,
            () = leases.renewal_requested() => since_heartbeat = Duration::MAX,
        }
    }
}
