//! The instance manager: one controller task per assigned instance, which starts it,
//! restarts it with backoff when it fails, gives up as `failed` after the limit, and
//! reports every status change to a [`StatusSink`] (the daemon's outbox, or only the
//! log for `local`). The daemon and `local` feed it the same way: a list of items.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

use ld_plugin_api::ErrorKind;
use ld_protocol::{InstanceItem, InstanceStatus, StatusReport};
use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::{
    leases::Leases,
    reconcile::{reconcile, Wanted},
};
use crate::{
    config::InstanceConfig,
    instance::{
        start_instance, CallPolicy, Classify, GaveUp, InstanceMetrics, InstanceSpec, RetryPolicy,
        SharedCheckpoints, StartError, TaskContext, TaskError, Verdict,
    },
    plugin_host::Catalog,
    state::StateStore,
    stream::{SeekTo, StreamBackend, TopicRef},
    wire::side,
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

/// Where status changes go besides the log.
pub trait StatusSink: Send + Sync {
    /// The latest status of an instance.
    fn put(&self, instance_id: u64, report: &StatusReport);
    /// The instance is gone: drop what is queued for it.
    fn forget(&self, instance_id: u64);
}

/// Statuses go to the log only (`local`, which has no control plane).
pub struct LogOnly;

impl StatusSink for LogOnly {
    fn put(&self, _: u64, _: &StatusReport) {}
    fn forget(&self, _: u64) {}
}

struct Controller {
    wanted: Wanted,
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
    auto_restart: Option<RetryPolicy>,
    node_id: String,
    statuses: Arc<dyn StatusSink>,
    views: Mutex<BTreeMap<u64, InstanceView>>,
    stop_timeout: Duration,
    leases: Arc<Leases>,
    shared_checkpoints: Option<Arc<dyn SharedCheckpoints>>,
}

impl Shared {
    fn ctx(&self) -> TaskContext {
        TaskContext {
            catalog: self.catalog.read().expect("catalog lock").clone(),
            backend: self.backend.clone(),
            state: self.state.clone(),
            policy: self.policy,
            node_id: self.node_id.clone(),
            shared_checkpoints: self.shared_checkpoints.clone(),
        }
    }

    fn report(&self, item: &InstanceItem, status: InstanceStatus, reason: Option<String>) {
        // A plugin may have put a secret into its error: it goes no further.
        let reason = reason.map(|r| crate::redact::redact(&r));
        {
            let mut views = self.views.lock().expect("views lock");
            if let Some(view) = views.get_mut(&item.id) {
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
        self.statuses.put(
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
    /// Automatic restarts of a failed instance (after `restart` gave up): their
    /// backoff; `None` leaves a failed instance failed until it is restarted through
    /// the API or its config changes.
    pub auto_restart: Option<RetryPolicy>,
    /// Longest wait for one instance to stop.
    pub stop_timeout: Duration,
    /// Where leased sources share their checkpoints (the supervisor); `None` for `local`.
    pub shared_checkpoints: Option<Arc<dyn SharedCheckpoints>>,
    /// The source leases this node holds.
    pub leases: Arc<Leases>,
}

/// Manages the instances assigned to this node.
pub struct Manager {
    shared: Arc<Shared>,
    controllers: tokio::sync::Mutex<Controllers>,
    tracker: TaskTracker,
}

/// The controllers, and the items they were started from (re-applied when the
/// plugins change).
#[derive(Default)]
struct Controllers {
    running: BTreeMap<u64, Controller>,
    items: Vec<InstanceItem>,
}

impl Manager {
    /// A manager with no instance yet.
    pub fn new(
        catalog: Arc<Catalog>,
        backend: Arc<dyn StreamBackend>,
        state: StateStore,
        statuses: Arc<dyn StatusSink>,
        settings: ManagerSettings,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                catalog: RwLock::new(catalog),
                backend,
                state,
                policy: settings.policy,
                restart: settings.restart,
                auto_restart: settings.auto_restart,
                node_id: settings.node_id,
                statuses,
                views: Mutex::new(BTreeMap::new()),
                stop_timeout: settings.stop_timeout,
                leases: settings.leases,
                shared_checkpoints: settings.shared_checkpoints,
            }),
            controllers: tokio::sync::Mutex::new(Controllers::default()),
            tracker: TaskTracker::new(),
        }
    }

    /// The current catalog.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.shared.catalog.read().expect("catalog lock").clone()
    }

    /// The source leases this node holds.
    pub fn leases(&self) -> Arc<Leases> {
        self.shared.leases.clone()
    }

    /// The generation of the last offsets change this node applied to an instance.
    pub fn offsets_applied(&self, instance_key: &str) -> Option<u64> {
        self.shared
            .state
            .offsets_applied(instance_key)
            .ok()
            .flatten()
    }

    /// A source's saved state on this node, if any.
    pub fn source_state(&self, instance_key: &str) -> Option<Vec<u8>> {
        self.shared.state.source_state(instance_key).ok().flatten()
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

    /// What the node must run for an item: its config version, whether it runs, and
    /// the build of its plugin (a new build restarts it through the same plan).
    fn wanted(&self, item: &InstanceItem) -> Wanted {
        Wanted {
            config_version: item.config.version,
            // The supervisor shows `inactive` exactly when an instance is stopped or
            // disabled, whatever the nodes report.
            run: item.status != InstanceStatus::Inactive,
            plugin: self
                .catalog()
                .get(&item.connector_key, side(item.connector_type))
                .map(|lib| lib.digest().to_string()),
            lease_epoch: leased(item).map(|l| l.epoch),
            restarts: item.restarts,
        }
    }

    /// Brings the running instances in line with the assignment.
    pub async fn apply(&self, items: &[InstanceItem]) {
        let mut controllers = self.controllers.lock().await;
        controllers.items = items.to_vec();
        let desired: BTreeMap<u64, Wanted> = items.iter().map(|i| (i.id, self.wanted(i))).collect();
        let managed: BTreeMap<u64, Wanted> = controllers
            .running
            .iter()
            .map(|(id, c)| (*id, c.wanted.clone()))
            .collect();
        let plan = reconcile(&desired, &managed);
        if plan.is_empty() {
            return;
        }
        tracing::info!(stop = ?plan.stop, restart = ?plan.restart, start = ?plan.start, "reconciling");
        let by_id: BTreeMap<u64, &InstanceItem> = items.iter().map(|i| (i.id, i)).collect();
        for id in &plan.stop {
            if let Some(c) = controllers.running.remove(id) {
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
            self.shared.statuses.forget(*id);
        }
        for id in &plan.restart {
            if let Some(c) = controllers.running.remove(id) {
                self.stop(*id, c).await;
            }
            let c = self.spawn(by_id[id], desired[id].clone());
            controllers.running.insert(*id, c);
        }
        for id in &plan.start {
            let c = self.spawn(by_id[id], desired[id].clone());
            controllers.running.insert(*id, c);
        }
    }

    /// Swaps in a new catalog; instances whose plugin library changed restart on the
    /// new build (through [`Manager::apply`], like any other change).
    pub async fn replace_catalog(&self, catalog: Arc<Catalog>) {
        *self.shared.catalog.write().expect("catalog lock") = catalog;
        let items = self.controllers.lock().await.items.clone();
        self.apply(&items).await;
    }

    /// Stops every instance at once under one deadline, naming those still stopping
    /// while it waits; returns the keys of those that had to be abandoned.
    pub async fn shutdown(&self) -> Vec<String> {
        let mut controllers = self.controllers.lock().await;
        for c in controllers.running.values() {
            c.stop.cancel();
        }
        self.tracker.close();
        let deadline = tokio::time::Instant::now() + self.shared.stop_timeout;
        let mut remaining: Vec<(u64, Controller)> = std::mem::take(&mut controllers.running)
            .into_iter()
            .collect();
        loop {
            remaining.retain(|(_, c)| !c.task.is_finished());
            if remaining.is_empty() {
                return Vec::new();
            }
            let keys = self.keys_of(remaining.iter().map(|(id, _)| *id));
            if tokio::time::Instant::now() >= deadline {
                for (_, c) in &remaining {
                    c.task.abort();
                }
                return keys;
            }
            tracing::info!(instances = ?keys, "waiting for instances to stop");
            let next = (tokio::time::Instant::now() + Duration::from_secs(1)).min(deadline);
            let _ = tokio::time::timeout_at(next, self.tracker.wait()).await;
        }
    }

    fn keys_of(&self, ids: impl Iterator<Item = u64>) -> Vec<String> {
        let views = self.shared.views.lock().expect("views lock");
        ids.map(|id| views.get(&id).map(|v| v.key.clone()).unwrap_or_default())
            .collect()
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

    fn spawn(&self, item: &InstanceItem, wanted: Wanted) -> Controller {
        let stop = CancellationToken::new();
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
        let task = self.tracker.spawn(tracing::Instrument::instrument(
            control(self.shared.clone(), item.clone(), wanted.run, stop.clone()),
            span,
        ));
        Controller { wanted, stop, task }
    }
}

/// Why one run of an instance ended other than by being stopped.
struct RunFailure {
    reason: String,
    /// Retrying cannot help: the config is wrong, or names a secret this node does
    /// not have.
    permanent: bool,
    /// The stream backend could not be reached: not the instance's fault, so the run
    /// is started again as soon as the stream may be back, without counting a restart.
    stream_down: bool,
}

impl RunFailure {
    fn of_start(error: StartError) -> Self {
        let permanent = matches!(&error, StartError::Plugin(e) if e.kind() == ErrorKind::InvalidConfig)
            || matches!(error, StartError::SecretRef(_));
        Self {
            reason: error.to_string(),
            permanent,
            stream_down: false,
        }
    }
}

/// Judges failed runs for the restart policy and shows each wait in the status.
struct Restarts<'a> {
    shared: &'a Shared,
    item: &'a InstanceItem,
}

impl Classify<RunFailure> for Restarts<'_> {
    fn classify(&mut self, failure: &RunFailure) -> Verdict {
        if failure.permanent {
            Verdict::Fail
        } else {
            Verdict::Retry
        }
    }

    fn retrying(&mut self, failure: &RunFailure, _: u32, delay: Duration) {
        if let Some(view) = self
            .shared
            .views
            .lock()
            .expect("views lock")
            .get_mut(&self.item.id)
        {
            view.restarts += 1;
        }
        self.shared.report(
            self.item,
            InstanceStatus::Pending,
            Some(format!(
                "restarting in {:.1}s after: {}",
                delay.as_secs_f64(),
                failure.reason
            )),
        );
    }
}

/// Whether the supervisor has sent no config yet (the seed's activation carries none).
fn no_config_yet(values: &serde_json::Value) -> bool {
    match values {
        serde_json::Value::Null => true,
        serde_json::Value::Object(map) => map.is_empty(),
        _ => false,
    }
}

/// A source's lease, when the item has one (a sink, or an item from `local` or from a
/// supervisor without placement, runs without).
fn leased(item: &InstanceItem) -> Option<&ld_protocol::LeaseRef> {
    item.lease
        .as_ref()
        .filter(|_| item.connector_type == ld_protocol::ConnectorType::Source)
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
    if no_config_yet(&item.config.values) {
        return park(
            InstanceStatus::Inactive,
            Some("waiting for a config".to_string()),
        )
        .await;
    }
    let config = match InstanceConfig::parse(side(item.connector_type), &item.config.values) {
        Ok(c) => c,
        Err(e) => return park(InstanceStatus::Failed, Some(format!("invalid config: {e}"))).await,
    };
    if !config.enabled {
        return park(InstanceStatus::Inactive, None).await;
    }
    if let Some(request) = &item.offsets_request {
        if let Err(reason) = apply_offsets_request(&shared, &item, &config, request).await {
            return park(InstanceStatus::Failed, Some(reason)).await;
        }
    }
    let lease = leased(&item).map(|l| l.epoch);
    let spec = InstanceSpec {
        instance_key: item.key.clone(),
        connector_key: item.connector_key.clone(),
        connector_type: side(item.connector_type),
        config,
        lease: lease.map(|epoch| (item.id, epoch)),
    };
    // Automatic restarts after the restart policy gave up, counted from 1.
    let mut automatic = 0u32;
    loop {
        let ended = match lease {
            None => run_with_restarts(&shared, &item, &spec, &stop).await,
            Some(epoch) => run_leased(&shared, &item, &spec, epoch, &stop).await,
        };
        let reason = match ended {
            // Stopped on request.
            Ok(()) | Err(GaveUp::Cancelled) => {
                return shared.report(&item, InstanceStatus::Inactive, None)
            }
            Err(GaveUp::Permanent(failure)) => {
                return park(InstanceStatus::Failed, Some(failure.reason)).await
            }
            Err(GaveUp::Exhausted { error, attempts }) => format!(
                "{} (gave up after {} restarts)",
                error.reason,
                attempts.saturating_sub(1)
            ),
        };
        let Some(policy) = &shared.auto_restart else {
            return park(InstanceStatus::Failed, Some(reason)).await;
        };
        automatic += 1;
        let delay = policy.delay(automatic);
        let at = humantime::format_rfc3339_seconds(std::time::SystemTime::now() + delay);
        shared.report(
            &item,
            InstanceStatus::Failed,
            Some(format!(
                "{reason}; automatic restart {automatic} at {at} (in {}s)",
                delay.as_secs()
            )),
        );
        tokio::select! {
            _ = stop.cancelled() => return shared.report(&item, InstanceStatus::Inactive, None),
            _ = tokio::time::sleep(delay) => {}
        }
        tracing::info!(
            attempt = automatic,
            "automatic restart of a failed instance"
        );
    }
}

/// Applies an operator's change of offsets or state (`PATCH`/`DELETE .../offsets`)
/// before the instance starts, once per generation; the reason when it cannot.
async fn apply_offsets_request(
    shared: &Shared,
    item: &InstanceItem,
    config: &InstanceConfig,
    request: &ld_protocol::OffsetsRequest,
) -> Result<(), String> {
    let key = &item.key;
    let state = &shared.state;
    let applied = state
        .offsets_applied(key)
        .map_err(|e| format!("offsets change: {e}"))?;
    if applied.is_some_and(|g| g >= request.generation) {
        return Ok(());
    }
    match &config.streams {
        crate::config::Streams::Sink(streams) => {
            let to = match (request.reset, request.sink) {
                (false, Some(ld_protocol::SinkPosition::Latest)) => SeekTo::Latest,
                (false, Some(ld_protocol::SinkPosition::Offset(n))) => SeekTo::Offset(n),
                (false, Some(ld_protocol::SinkPosition::TimestampMs(ms))) => {
                    SeekTo::Timestamp(ms.saturating_mul(1000))
                }
                _ => SeekTo::Earliest,
            };
            for s in streams {
                let group = s
                    .consumer_group
                    .clone()
                    .unwrap_or_else(|| format!("ld-{key}"));
                for topic in &s.topics {
                    let topic = TopicRef::new(&s.stream, topic);
                    let moved = async {
                        shared.backend.prepare_topic(&topic, s.durability).await?;
                        let mut consumer = shared.backend.consumer(&topic, &group).await?;
                        consumer.seek(to).await
                    }
                    .await
                    .map_err(|e| format!("offsets change on {topic}: {e}"))?;
                    tracing::info!(%topic, group, ?to, ?moved, generation = request.generation, "moved the sink's offsets");
                }
            }
        }
        crate::config::Streams::Source(_) => {
            let bytes = match (&request.source_state, request.reset) {
                (Some(b64), false) => Some(
                    ld_protocol::SourceCheckpoint {
                        node_id: String::new(),
                        epoch: 0,
                        state: b64.clone(),
                        at: 0,
                    }
                    .state_bytes()
                    .map_err(|e| format!("offsets change: source_state: {e}"))?,
                ),
                _ => None,
            };
            state
                .replace_source_state(key, bytes.as_deref())
                .await
                .map_err(|e| format!("offsets change: {e}"))?;
            tracing::info!(
                reset = bytes.is_none(),
                generation = request.generation,
                "replaced the source's state"
            );
        }
    }
    state
        .set_offsets_applied(key, request.generation)
        .await
        .map_err(|e| format!("offsets change: {e}"))
}

/// Runs a leased source while this node's lease is valid: it waits for the supervisor
/// to confirm the lease, and stops when the lease is not renewed in time (then waits
/// for it again).
async fn run_leased(
    shared: &Shared,
    item: &InstanceItem,
    spec: &InstanceSpec,
    epoch: u64,
    stop: &CancellationToken,
) -> Result<(), GaveUp<RunFailure>> {
    loop {
        let leases = &shared.leases;
        if !leases.valid(item.id, epoch) {
            shared.report(
                item,
                InstanceStatus::Pending,
                Some(format!(
                    "waiting for the supervisor to confirm lease epoch {epoch}"
                )),
            );
            leases.request_renewal();
            if !leases.wait_valid(item.id, epoch, stop).await {
                return Err(GaveUp::Cancelled);
            }
        }
        let lease_held = stop.child_token();
        let watch = tokio::spawn({
            let (leases, lost, id) = (leases.clone(), lease_held.clone(), item.id);
            async move { leases.watch(id, epoch, lost).await }
        });
        let ended = run_with_restarts(shared, item, spec, &lease_held).await;
        watch.abort();
        if stop.is_cancelled() || !lease_held.is_cancelled() {
            return ended;
        }
        shared.report(
            item,
            InstanceStatus::Pending,
            Some(format!(
                "stopped: lease epoch {epoch} was not renewed in time (the supervisor is \
                 unreachable, or gave the source to another node)"
            )),
        );
    }
}

/// Runs the instance, restarting it as the restart policy allows, until `stop` fires
/// (`Ok`, or `Cancelled` while waiting to restart) or the policy gives up.
async fn run_with_restarts(
    shared: &Shared,
    item: &InstanceItem,
    spec: &InstanceSpec,
    stop: &CancellationToken,
) -> Result<(), GaveUp<RunFailure>> {
    let judge = Restarts { shared, item };
    crate::retry!(
        &shared.restart,
        judge,
        stop,
        |_attempt| run_while_stream_up(shared, item, spec, stop)
    )
}

/// Longest wait between two runs of an instance whose stream backend is down, so the
/// instance resumes within seconds of the backend being back.
const STREAM_DOWN_MAX_WAIT: Duration = Duration::from_secs(2);

/// Runs the instance, and runs it again (after a short wait, and without counting a
/// restart) each time a run ends because the stream backend could not be reached.
async fn run_while_stream_up(
    shared: &Shared,
    item: &InstanceItem,
    spec: &InstanceSpec,
    stop: &CancellationToken,
) -> Result<(), RunFailure> {
    let mut wait = Duration::from_millis(250);
    loop {
        let began = tokio::time::Instant::now();
        match run_once(shared, item, spec, stop).await {
            Err(failure) if failure.stream_down => {
                if began.elapsed() > Duration::from_secs(10) {
                    // It ran for a while: the stream went down anew.
                    wait = Duration::from_millis(250);
                }
                tracing::warn!(reason = %failure.reason, retry_in = ?wait, "waiting for the stream backend");
                shared.report(
                    item,
                    InstanceStatus::Pending,
                    Some(format!(
                        "waiting for the stream backend: {}",
                        failure.reason
                    )),
                );
                tokio::select! {
                    _ = stop.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(STREAM_DOWN_MAX_WAIT);
            }
            other => return other,
        }
    }
}

/// Starts the instance and watches it until it is stopped (`Ok`) or ends by itself.
/// Meanwhile the status follows the task: `active` once the plugin opened, with the
/// failure it is retrying as the reason.
async fn run_once(
    shared: &Shared,
    item: &InstanceItem,
    spec: &InstanceSpec,
    stop: &CancellationToken,
) -> Result<(), RunFailure> {
    let running = start_instance(&shared.ctx(), spec)
        .await
        .map_err(RunFailure::of_start)?;
    shared.set_metrics(item.id, Some(running.metrics.clone()));
    let mut trouble = running.metrics.trouble.subscribe();
    let mut task = running.task;
    let mut active = false;
    let ended = loop {
        tokio::select! {
            _ = stop.cancelled() => {
                running.stop.cancel();
                if tokio::time::timeout(shared.stop_timeout, &mut task).await.is_err() {
                    task.abort();
                }
                return Ok(());
            }
            _ = running.metrics.opened_notify.notified(), if !active => {
                active = true;
                let reason = trouble.borrow_and_update().clone();
                shared.report(item, InstanceStatus::Active, reason);
            }
            Ok(()) = trouble.changed() => {
                let reason = trouble.borrow_and_update().clone();
                let status = if active { InstanceStatus::Active } else { InstanceStatus::Pending };
                shared.report(item, status, reason);
            }
            ended = &mut task => break ended,
        }
    };
    let reason = match ended {
        Ok(Ok(())) => "the instance stopped by itself".to_string(),
        Ok(Err(TaskError::Fenced(why))) => {
            // Another node has the source: give the lease up, which stops this run.
            tracing::warn!(reason = %why, "fenced off by the supervisor; stopping the source");
            shared.leases.revoke(item.id);
            stop.cancel();
            return Ok(());
        }
        Ok(Err(TaskError::Plugin { call, error })) if error.kind() == ErrorKind::InvalidConfig => {
            return Err(RunFailure {
                reason: format!("{call}: {error}"),
                permanent: true,
                stream_down: false,
            });
        }
        Ok(Err(TaskError::Stream(e))) if e.is_transient() => {
            return Err(RunFailure {
                reason: format!("stream: {e}"),
                permanent: false,
                stream_down: true,
            });
        }
        Ok(Err(e)) => e.to_string(),
        Err(join) => format!("instance task panicked: {join}"),
    };
    Err(RunFailure {
        reason,
        permanent: false,
        stream_down: false,
    })
}
