//! `ld-connectord local`: runs connector instances from config files on this machine,
//! with the embedded log and no control plane. For plugin authors trying a plugin, for
//! pipelines on one machine, and for the end-to-end tests of the data plane.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::{
    config::read_instance_file,
    instance::{start_instance, CallPolicy, InstanceSpec, RunningInstance, TaskContext},
    plugin_host::Catalog,
    state::StateStore,
    stream::embedded::{Durability, EmbeddedConfig, EmbeddedLog},
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
    /// Embedded log durability.
    pub durability: Durability,
    /// Longest wait for instances to stop at shutdown.
    pub shutdown_timeout: Duration,
}

/// Opens the node's sled database with a bounded page cache.
pub fn open_db(state_dir: &Path) -> anyhow::Result<sled::Db> {
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("cannot create state directory {}", state_dir.display()))?;
    crate::state::sled_config(&state_dir.join("db"))
        .open()
        .with_context(|| format!("cannot open local state in {}", state_dir.display()))
}

/// Runs the instances until `shutdown` fires or all of them ended. Returns the number
/// of instances that failed.
pub async fn run_local(opts: LocalOptions, shutdown: CancellationToken) -> anyhow::Result<usize> {
    let specs = opts
        .configs
        .iter()
        .map(|p| read_instance_file(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let db = open_db(&opts.state_dir)?;
    // Checkpoints share the log's database and are written in one atomic write with
    // their batch (see `Producer::append_checkpointed`), which the log flushes.
    let state = StateStore::with_db(db.clone(), false)?;
    let log = EmbeddedLog::open(
        db,
        EmbeddedConfig {
            durability: opts.durability,
            ..EmbeddedConfig::default()
        },
    )?;
    let catalog = Catalog::load_dir(&opts.plugin_dir, &opts.state_dir.join("plugin-cache"))
        .with_context(|| format!("cannot read plugin directory {}", opts.plugin_dir.display()))?;
    for refused in catalog.refused() {
        tracing::warn!("plugin refused: {refused}");
    }
    let ctx = TaskContext {
        catalog: Arc::new(catalog),
        backend: Arc::new(log),
        state,
        policy: CallPolicy::default(),
    };

    let mut running: Vec<(String, RunningInstance)> = Vec::new();
    let mut failed = 0;
    for spec in &specs {
        if !spec.config.enabled {
            tracing::info!(key = %spec.instance_key, "instance disabled (inactive)");
            continue;
        }
        match start_instance(&ctx, spec).await {
            Ok(instance) => {
                tracing::info!(key = %spec.instance_key, connector = %spec.connector_key, "instance started");
                running.push((spec.instance_key.clone(), instance));
            }
            Err(e) => {
                failed += 1;
                tracing::error!(key = %spec.instance_key, error = %e, "instance failed to start");
            }
        }
    }

    let mut tasks: Vec<Task> = running
        .into_iter()
        .map(|(key, r)| (key, r.stop, r.task))
        .collect();
    // Wait for shutdown, or for every instance to end by itself.
    while !tasks.is_empty() && !shutdown.is_cancelled() {
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        tasks = reap(tasks, &mut failed).await;
    }
    // Stop what is left, with a deadline that names what is still draining.
    for (_, stop, _) in &tasks {
        stop.cancel();
    }
    let deadline = Instant::now() + opts.shutdown_timeout;
    while !tasks.is_empty() {
        tasks = reap(tasks, &mut failed).await;
        if tasks.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            let names: Vec<&str> = tasks.iter().map(|(k, _, _)| k.as_str()).collect();
            tracing::error!(instances = ?names, "shutdown deadline reached; abandoning");
            for (_, _, task) in &tasks {
                task.abort();
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ctx.state.flush().await?;
    Ok(failed)
}

type Task = (
    String,
    CancellationToken,
    tokio::task::JoinHandle<Result<(), crate::instance::TaskError>>,
);

/// Reports the tasks that ended (counting failures) and returns those still running.
async fn reap(tasks: Vec<Task>, failed: &mut usize) -> Vec<Task> {
    let mut still = Vec::new();
    for (key, stop, task) in tasks {
        if task.is_finished() {
            *failed += report(&key, task.await);
        } else {
            still.push((key, stop, task));
        }
    }
    still
}

fn report(
    key: &str,
    joined: Result<Result<(), crate::instance::TaskError>, tokio::task::JoinError>,
) -> usize {
    match joined {
        Ok(Ok(())) => {
            tracing::info!(key, "instance stopped");
            0
        }
        Ok(Err(e)) => {
            tracing::error!(key, reason = %e, "instance failed");
            1
        }
        Err(e) => {
            tracing::error!(key, error = %e, "instance task panicked");
            1
        }
    }
}
