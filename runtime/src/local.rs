//! `ld-connectord local`: runs connector instances from config files on this machine,
//! with no control plane. A config source for the same engine as `run`: the files
//! become the instance list, statuses go to the log, and instances restart, serve the
//! local API and use any stream backend exactly as under the daemon.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context;
use ld_protocol::{self as api, InstanceItem, InstanceStatus};
use tokio_util::sync::CancellationToken;

use crate::{
    config::{document, read_instance_file_noted, StreamSettings},
    daemon::manager::InstanceView,
    engine::{open_db, ControlLinks, Engine, EngineSettings},
    instance::{CallPolicy, RetryPolicy},
    wire::wire_type,
};

/// What `local` runs.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// Directory of plugin libraries.
    pub plugin_dir: PathBuf,
    /// Directory of local state (log, offsets, checkpoints).
    pub state_dir: PathBuf,
    /// Instance config files (TOML or JSON, with `type` and `key`); the instance key is
    /// the file name without extension.
    pub configs: Vec<PathBuf>,
    /// The stream backend.
    pub stream: StreamSettings,
    /// Address of the local API (port 0: any free port, logged).
    pub api_listen: SocketAddr,
    /// Restarts of a failing instance.
    pub restart: RetryPolicy,
    /// Longest wait for instances to stop at shutdown.
    pub shutdown_timeout: Duration,
}

/// One instance file as an item of the instance list (ids follow the file order).
fn instance_item(id: u64, path: &Path) -> anyhow::Result<InstanceItem> {
    // Checks the file and names what is wrong in it; the manager parses the values
    // again when it starts the instance, as it does for the supervisor's, and names
    // the fields without effect then (once, in the instance's span).
    let (spec, _) = read_instance_file_noted(path)?;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let values = document(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(InstanceItem {
        id,
        deployment_id: 0,
        connector_type: wire_type(spec.connector_type),
        connector_key: spec.connector_key,
        name: spec.instance_key.clone(),
        key: spec.instance_key,
        status: InstanceStatus::Active,
        reason: None,
        config: api::InstanceConfig { version: 1, values },
        nodes: Vec::new(),
        lease: None,
        restarts: 0,
        activity: None,
        offsets_request: None,
    })
}

/// Whether nothing runs and nothing will: every instance failed for good or is
/// disabled (files are read once, so no change can come).
fn all_ended(views: &[InstanceView]) -> bool {
    !views.is_empty()
        && views
            .iter()
            .all(|v| matches!(v.status, InstanceStatus::Failed | InstanceStatus::Inactive))
}

/// Runs the instances until `shutdown` fires or none of them can run any more. Returns
/// the number of instances that failed.
pub async fn run_local(opts: LocalOptions, shutdown: CancellationToken) -> anyhow::Result<usize> {
    let items = opts
        .configs
        .iter()
        .zip(1u64..)
        .map(|(path, id)| instance_item(id, path))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut engine = Engine::start(
        EngineSettings {
            node_id: "local".into(),
            plugin_dir: opts.plugin_dir.clone(),
            state_dir: opts.state_dir.clone(),
            stream: opts.stream.clone(),
            api_listen: opts.api_listen,
            policy: CallPolicy::default(),
            restart: opts.restart,
            // `local` ends once nothing can run: a failed instance stays failed.
            auto_restart: None,
            stop_timeout: opts.shutdown_timeout,
        },
        open_db(&opts.state_dir)?,
        ControlLinks::log_only(),
    )
    .await?;
    engine.manager.apply(&items).await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            () = engine.plugin_change() => {
                engine.reload_plugins().await;
            }
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                if all_ended(&engine.manager.views()) {
                    tracing::info!("no instance can run any more: stopping");
                    break;
                }
            }
        }
    }
    let failed = engine
        .manager
        .views()
        .iter()
        .filter(|v| v.status == InstanceStatus::Failed)
        .count();
    engine.stop().await?;
    Ok(failed)
}
