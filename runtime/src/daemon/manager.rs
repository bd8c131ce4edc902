//! The instance manager: one controller task per assigned instance, which starts it,
//! restarts it with backoff when it fails, gives up as `failed` after the limit, and
//! reports every status change through the outbox.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use ld_plugin_api::{ffi::ConnectorType, ErrorKind};
use ld_supervisor::api::{self, InstanceItem, InstanceStatus, StatusReport};
use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{
    outbox::Outbox,
    reconcile::{reconcile, Wanted},
};
use crate::{
    config::InstanceConfig,
    instance::{
        start_instance, CallPolicy, InstanceMetrics, InstanceSpec, RetryPolicy, StartError,
        TaskContext, TaskError,
    },
    plugin_host::Catalog,
    state::StateStore,
    stream::StreamBackend,
};

/// What the node knows of one instance, for the local API and heartbeats.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceView {
    /// Supervisor id.
    pub id: u64,
    /// Instance key.
    pub key: String,
    /// Instance name.
    pub name: String,
    /// Connector key.
    pub connector_key: String,
    /// `source` or `sink`.
    pub connector_type: &'static str,
    /// Config version in force.
    pub config_version: u64,
    /// Whether the supervisor wants it running.
    pub run: bool,
    /// Local status.
    pub status: InstanceStatus,
    /// Why, when failed or restarting.
    pub reason: Option<String>,
    /// Restarts after failures.
    pub restarts: u64,
    /// Counters of the current run.
    #[serde(skip)]
    pub metrics: Option<Arc<InstanceMetrics>>,
}

impl InstanceView {
    /// Whether the instance is where it should be: running when wanted, stopped when not.
    pub fn settled(&self) -> bool {
        match self.status {
            InstanceStatus::Active => self.run,
            InstanceStatus::Inactive => true,
            InstanceStatus::Pending | InstanceStatus::Failed => false,
        }
    }
}

struct Controller {
    wanted: Wanted,
    digest: Option<String>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// What controllers share.
pub struct Shared {
    catalog: RwLock<Arc<Catalog>>,
    backend: Arc<dyn StreamBackend>,
    state: StateStore,
    policy: CallPolicy,
    restart: RetryPolicy,
    node_id: String,
    outbox: Outbox,
    views: Mutex<BTreeMap<u64, InstanceView>>,
    stop_timeout: Duration,
}

impl Shared {
    fn ctx(&self) -> TaskContext {
        TaskContext {
            catalog: self.catalog.read().expect("catalog lock").clone(),
            backend: self.backend.clone(),
            state: self.state.clone(),
            policy: self.policy,
        }
    }

    fn report(&self, item: &InstanceItem, status: InstanceStatus, reason: Option<String>) {
        // A plugin may have put a secret into its error: it goes no further.
        let reason = reason.map(|r| crate::redact::redact(&r));
        {
            let mut views = self.views.lock().expect("views lock");
            if let Some(view) = views.get_mut(&item.id) {
                if status == InstanceStatus::Pending && reason.is_some() {
                    view.restarts += 1;
                }
                view.status = status;
                view.reason = reason.clone();
            }
        }
        match (&reason, status) {
            (Some(reason), InstanceStatus::Failed) => tracing::error!(%reason, "instance failed"),
            (Some(reason), _) => {
                tracing::warn!(%reason, status = status.as_str(), "instance status")
            }
            (None, _) => tracing::info!(status = status.as_str(), "instance status"),
        }
        self.outbox.put(
            item.id,
            &StatusReport {
                node_id: self.node_id.clone(),
                status,
                reason,
                config_version: item.config.version,
                at: crate::daemon::now_ms(),
            },
        );
    }

    fn set_metrics(&self, id: u64, metrics: Option<Arc<InstanceMetrics>>) {
        if let Some(view) = self.views.lock().expect("views lock").get_mut(&id) {
            view.metrics = metrics;
        }
    }
}

/// Settings of the manager.
pub struct ManagerSettings {
    /// This node.
    pub node_id: String,
    /// Plugin call deadlines and retries.
    pub policy: CallPolicy,
    /// Restarts of a failing instance: backoff and limit.
    pub restart: RetryPolicy,
    /// Longest wait for one instance to stop.
    pub stop_timeout: Duration,
}

/// Manages the instances assigned to this node.
pub struct Manager {
    shared: Arc<Shared>,
    controllers: tokio::sync::Mutex<BTreeMap<u64, Controller>>,
}

fn wanted(item: &InstanceItem) -> Wanted {
    Wanted {
        config_version: item.config.version,
        // The supervisor shows `inactive` exactly when an instance is stopped or
        // disabled, whatever the nodes report.
        run: item.status != InstanceStatus::Inactive,
    }
}

fn side(t: api::ConnectorType) -> ConnectorType {
    match t {
        api::ConnectorType::Source => ConnectorType::Source,
        api::ConnectorType::Sink => ConnectorType::Sink,
    }
}

impl Manager {
    /// A manager with no instance yet.
    pub fn new(
        catalog: Arc<Catalog>,
        backend: Arc<dyn StreamBackend>,
        state: StateStore,
        outbox: Outbox,
        settings: ManagerSettings,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                catalog: RwLock::new(catalog),
                backend,
                state,
                policy: settings.policy,
                restart: settings.restart,
                node_id: settings.node_id,
                outbox,
                views: Mutex::new(BTreeMap::new()),
                stop_timeout: settings.stop_timeout,
            }),
            controllers: tokio::sync::Mutex::new(BTreeMap::new()),
        }
    }

    /// The current catalog.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.shared.catalog.read().expect("catalog lock").clone()
    }

    /// Every instance the node manages.
    pub fn views(&self) -> Vec<InstanceView> {
        self.shared
            .views
            .lock()
            .expect("views lock")
            .values()
            .cloned()
            .collect()
    }

    fn digest_of(&self, item: &InstanceItem) -> Option<String> {
        self.catalog()
            .get(&item.connector_key, side(item.connector_type))
            .map(|lib| lib.digest().to_string())
    }

    /// Brings the running instances in line with the assignment.
    pub async fn apply(&self, items: &[InstanceItem]) {
        let mut controllers = self.controllers.lock().await;
        let desired: BTreeMap<u64, Wanted> = items.iter().map(|i| (i.id, wanted(i))).collect();
        let managed: BTreeMap<u64, Wanted> =
            controllers.iter().map(|(id, c)| (*id, c.wanted)).collect();
        let plan = reconcile(&desired, &managed);
        if plan.is_empty() {
            return;
        }
        tracing::info!(stop = ?plan.stop, restart = ?plan.restart, start = ?plan.start, "reconciling");
        let by_id: BTreeMap<u64, &InstanceItem> = items.iter().map(|i| (i.id, i)).collect();
        for id in &plan.stop {
            if let Some(c) = controllers.remove(id) {
                self.stop(*id, c).await;
            }
            let key = self
                .shared
                .views
                .lock()
                .expect("views lock")
                .remove(id)
                .map(|v| v.key);
            if let Some(key) = key {
                if let Err(e) = self.shared.state.forget_instance(&key) {
                    tracing::warn!(error = %e, key, "cannot forget local state");
                }
            }
            self.shared.outbox.forget(*id);
        }
        for id in &plan.restart {
            if let Some(c) = controllers.remove(id) {
                self.stop(*id, c).await;
            }
            controllers.insert(*id, self.spawn(by_id[id]));
        }
        for id in &plan.start {
            controllers.insert(*id, self.spawn(by_id[id]));
        }
    }

    /// Restarts, on the new build, every instance whose plugin library changed.
    pub async fn replace_catalog(&self, catalog: Arc<Catalog>, items: &[InstanceItem]) {
        *self.shared.catalog.write().expect("catalog lock") = catalog;
        let mut controllers = self.controllers.lock().await;
        for item in items {
            let Some(c) = controllers.get(&item.id) else {
                continue;
            };
            let digest = self.digest_of(item);
            if c.digest != digest {
                tracing::info!(key = %item.key, "plugin library changed: restarting on the new build");
                let c = controllers.remove(&item.id).expect("present");
                self.stop(item.id, c).await;
                controllers.insert(item.id, self.spawn(item));
            }
        }
    }

    /// Stops every instance, each within the stop timeout; returns the keys of those
    /// that had to be abandoned.
    pub async fn shutdown(&self) -> Vec<String> {
        let mut controllers = self.controllers.lock().await;
        for c in controllers.values() {
            c.stop.cancel();
        }
        let deadline = tokio::time::Instant::now() + self.shared.stop_timeout;
        let mut abandoned = Vec::new();
        for (id, c) in std::mem::take(&mut *controllers) {
            let key = self
                .shared
                .views
                .lock()
                .expect("views lock")
                .get(&id)
                .map(|v| v.key.clone())
                .unwrap_or_default();
            let mut task = c.task;
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
                abandoned.push(key);
            }
        }
        abandoned
    }

    async fn stop(&self, id: u64, c: Controller) {
        c.stop.cancel();
        let mut task = c.task;
        if tokio::time::timeout(self.shared.stop_timeout, &mut task)
            .await
            .is_err()
        {
            tracing::error!(instance_id = id, "instance did not stop in time; abandoned");
            task.abort();
        }
    }

    fn spawn(&self, item: &InstanceItem) -> Controller {
        let stop = CancellationToken::new();
        let wanted = wanted(item);
        self.shared.views.lock().expect("views lock").insert(
            item.id,
            InstanceView {
                id: item.id,
                key: item.key.clone(),
                name: item.name.clone(),
                connector_key: item.connector_key.clone(),
                connector_type: item.connector_type.as_str(),
                config_version: item.config.version,
                run: wanted.run,
                status: InstanceStatus::Pending,
                reason: None,
                restarts: 0,
                metrics: None,
            },
        );
        let span = tracing::info_span!(
            "instance",
            key = %item.key,
            connector = %item.connector_key,
            side = item.connector_type.as_str()
        );
        let task = tokio::spawn(tracing::Instrument::instrument(
            control(self.shared.clone(), item.clone(), wanted.run, stop.clone()),
            span,
        ));
        Controller {
            wanted,
            digest: self.digest_of(item),
            stop,
            task,
        }
    }
}

/// Whether retrying cannot help (the config is wrong, or names a secret this node
/// does not have).
fn permanent(error: &StartError) -> bool {
    matches!(error, StartError::Plugin(e) if e.kind() == ErrorKind::InvalidConfig)
        || matches!(error, StartError::SecretRef(_))
}

async fn control(shared: Arc<Shared>, item: InstanceItem, run: bool, stop: CancellationToken) {
    shared.report(&item, InstanceStatus::Pending, None);
    let park = |status, reason| {
        shared.report(&item, status, reason);
        stop.cancelled()
    };
    if !run {
        return park(InstanceStatus::Inactive, None).await;
    }
    let config = match InstanceConfig::parse(side(item.connector_type), &item.config.values) {
        Ok(c) => c,
        Err(e) => return park(InstanceStatus::Failed, Some(format!("invalid config: {e}"))).await,
    };
    if !config.enabled {
        return park(InstanceStatus::Inactive, None).await;
    }
    let spec = InstanceSpec {
        instance_key: item.key.clone(),
        connector_key: item.connector_key.clone(),
        connector_type: side(item.connector_type),
        config,
    };
    let mut failures = 0u32;
    loop {
        let began = Instant::now();
        let reason = match start_instance(&shared.ctx(), &spec).await {
            Err(e) if permanent(&e) => {
                return park(InstanceStatus::Failed, Some(e.to_string())).await
            }
            Err(e) => e.to_string(),
            Ok(running) => {
                shared.set_metrics(item.id, Some(running.metrics.clone()));
                let mut task = running.task;
                let mut active = false;
                let ended = loop {
                    tokio::select! {
                        _ = stop.cancelled() => {
                            running.stop.cancel();
                            if tokio::time::timeout(shared.stop_timeout, &mut task).await.is_err() {
                                task.abort();
                            }
                            shared.report(&item, InstanceStatus::Inactive, None);
                            return;
                        }
                        _ = running.metrics.opened_notify.notified(), if !active => {
                            active = true;
                            shared.report(&item, InstanceStatus::Active, None);
                        }
                        ended = &mut task => break ended,
                    }
                };
                match ended {
                    Ok(Ok(())) => "the instance stopped by itself".to_string(),
                    Ok(Err(TaskError::Plugin { call, error }))
                        if error.kind() == ErrorKind::InvalidConfig =>
                    {
                        return park(InstanceStatus::Failed, Some(format!("{call}: {error}")))
                            .await;
                    }
                    Ok(Err(e)) => e.to_string(),
                    Err(join) => format!("instance task panicked: {join}"),
                }
            }
        };
        // A run that lasted a while was healthy: count failures afresh.
        if began.elapsed() > Duration::from_secs(60) {
            failures = 0;
        }
        failures += 1;
        if failures > shared.restart.max_attempts {
            let reason = format!(
                "{reason} (gave up after {} restarts)",
                shared.restart.max_attempts
            );
            return park(InstanceStatus::Failed, Some(reason)).await;
        }
        let delay = shared.restart.delay(failures);
        shared.report(
            &item,
            InstanceStatus::Pending,
            Some(format!(
                "restarting in {:.1}s after: {reason}",
                delay.as_secs_f64()
            )),
        );
        tokio::select! {
            _ = stop.cancelled() => {
                shared.report(&item, InstanceStatus::Inactive, None);
                return;
            }
            _ = tokio::time::sleep(delay) => {}
        }
    }
}
