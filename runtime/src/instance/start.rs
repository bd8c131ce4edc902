//! Starting one instance: find its plugin, check its config, build the plugin instance
//! (a source with its last saved state) and spawn its task in the caller's span (the
//! manager's `instance` span, which names it: one span per instance).

use std::sync::Arc;

use ld_plugin_api::ffi::ConnectorType;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{
    run_sink, run_source, CallPolicy, InstanceMetrics, LeasedCheckpoints, SharedCheckpointError,
    SharedCheckpoints, SinkTask, SourceTask, TaskError,
};
use crate::{
    config::{
        secret_refs::{self, SecretRefError},
        InstanceConfig, Streams,
    },
    plugin_host::Catalog,
    state::StateStore,
    stream::StreamBackend,
};

/// What the instance tasks of a node share.
#[derive(Clone)]
pub struct TaskContext {
    /// Loaded plugins.
    pub catalog: Arc<Catalog>,
    /// The stream backend.
    pub backend: Arc<dyn StreamBackend>,
    /// Local state.
    pub state: StateStore,
    /// Deadlines and retries of plugin calls.
    pub policy: CallPolicy,
    /// This node.
    pub node_id: String,
    /// Where source checkpoints are shared with other nodes, if anywhere.
    pub shared_checkpoints: Option<Arc<dyn SharedCheckpoints>>,
}

/// Which instance to start.
#[derive(Debug, Clone)]
pub struct InstanceSpec {
    /// Unique key within the deployment.
    pub instance_key: String,
    /// Connector key, e.g. `postgres`.
    pub connector_key: String,
    /// Source or sink.
    pub connector_type: ConnectorType,
    /// The parsed config.
    pub config: InstanceConfig,
    /// A source's lease: (instance id, epoch). The source then resumes from the
    /// checkpoint its previous holder shared and shares its own.
    pub lease: Option<(u64, u64)>,
}

/// A started instance.
pub struct RunningInstance {
    /// Its counters.
    pub metrics: Arc<InstanceMetrics>,
    /// Fires to stop it.
    pub stop: CancellationToken,
    /// Its task; ends with the reason when it failed.
    pub task: JoinHandle<Result<(), TaskError>>,
}

/// Why an instance could not be started; the message is for the instance's status.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// No installed plugin provides the connector.
    #[error("no plugin provides connector `{key}` ({side}) on this node")]
    NoPlugin {
        /// Connector key.
        key: String,
        /// `source` or `sink`.
        side: &'static str,
    },
    /// The plugin refused the instance (bad `plugin_config`, or its constructor failed).
    #[error("{0}")]
    Plugin(ld_plugin_api::PluginError),
    /// Local state could not be read.
    #[error("{0}")]
    State(#[from] crate::state::StateError),
    /// A `${env:..}` or `${file:..}` reference in `plugin_config` could not be resolved.
    #[error("{0}")]
    SecretRef(#[from] SecretRefError),
    /// The checkpoint shared by the source's previous node could not be read.
    #[error("cannot read the shared checkpoint: {0}")]
    SharedCheckpoint(#[from] SharedCheckpointError),
}

/// Builds the plugin instance and spawns the task.
pub async fn start_instance(
    ctx: &TaskContext,
    spec: &InstanceSpec,
) -> Result<RunningInstance, StartError> {
    let side = spec.connector_type;
    let library = ctx
        .catalog
        .get(&spec.connector_key, side)
        .ok_or_else(|| StartError::NoPlugin {
            key: spec.connector_key.clone(),
            side: side.as_str(),
        })?
        .clone();
    let schema = match side {
        ConnectorType::Sink => library.meta().sink.as_ref(),
        ConnectorType::Source => library.meta().source.as_ref(),
    };
    if let Some(meta) = schema {
        crate::redact::register_config(&spec.config.plugin_config, &meta.secret_fields);
    }
    // References are resolved here, on the node, and only the plugin sees the result.
    let plugin_config = if secret_refs::has_references(&spec.config.plugin_config) {
        secret_refs::resolve(&spec.config.plugin_config)?.to_string()
    } else {
        spec.config.plugin_config.to_string()
    };
    let metrics = Arc::new(InstanceMetrics::default());
    let stop = CancellationToken::new();
    let task = match (&spec.config.streams, side) {
        (Streams::Sink(streams), ConnectorType::Sink) => {
            let plugin = library
                .new_sink(&spec.instance_key, &plugin_config)
                .await
                .map_err(StartError::Plugin)?;
            let task = SinkTask {
                instance_key: spec.instance_key.clone(),
                streams: streams.clone(),
                transforms: spec.config.transforms.clone(),
                errors: spec.config.errors.clone(),
                plugin,
                backend: ctx.backend.clone(),
                policy: ctx.policy,
                metrics: metrics.clone(),
            };
            tokio::spawn(run_sink(task, stop.clone()).in_current_span())
        }
        (Streams::Source(streams), ConnectorType::Source) => {
            let saved = saved_state(ctx, spec).await?;
            let shared = match (&ctx.shared_checkpoints, spec.lease) {
                (Some(store), Some((instance_id, epoch))) => Some(LeasedCheckpoints {
                    store: store.clone(),
                    instance_id,
                    epoch,
                }),
                _ => None,
            };
            let plugin = library
                .new_source(&spec.instance_key, &plugin_config, saved)
                .await
                .map_err(StartError::Plugin)?;
            let task = SourceTask {
                instance_key: spec.instance_key.clone(),
                streams: streams.clone(),
                transforms: spec.config.transforms.clone(),
                errors: spec.config.errors.clone(),
                plugin,
                backend: ctx.backend.clone(),
                state: ctx.state.clone(),
                policy: ctx.policy,
                metrics: metrics.clone(),
                shared,
            };
            tokio::spawn(run_source(task, stop.clone()).in_current_span())
        }
        _ => unreachable!("a config is parsed for the side of its instance"),
    };
    Ok(RunningInstance {
        metrics,
        stop,
        task,
    })
}

/// The state a source resumes from. Under a lease this node already ran it with, its
/// own checkpoint (at least as new as what it shared; no call to the supervisor, which
/// may be away). Under a new lease, the checkpoint another node shared when that one ran
/// it after this node (or when this node has none), else this node's own; it becomes
/// the local checkpoint of the new lease before the source runs.
async fn saved_state(
    ctx: &TaskContext,
    spec: &InstanceSpec,
) -> Result<Option<Vec<u8>>, StartError> {
    let key = &spec.instance_key;
    let local = ctx.state.source_state(key)?;
    let (Some(store), Some((instance_id, epoch))) = (&ctx.shared_checkpoints, spec.lease) else {
        return Ok(local);
    };
    if ctx.state.source_epoch(key)? == Some(epoch) {
        return Ok(local);
    }
    let resume = match store.load(instance_id).await? {
        Some(shared) if shared.node_id != ctx.node_id || local.is_none() => {
            tracing::info!(
                from = %shared.node_id,
                epoch = shared.epoch,
                "resuming from the checkpoint shared by the source's last node"
            );
            Some(shared.state)
        }
        _ => local,
    };
    ctx.state
        .take_over_source(key, epoch, resume.as_deref())
        .await?;
    Ok(resume)
}
