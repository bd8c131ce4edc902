//! The engine that `run` and `local` both drive: the node's state, its stream backend,
//! the plugin catalog (reloaded when the plugin directory changes), the instance
//! manager, the local API and the stream's maintenance. Only where the instances come
//! from differs: the supervisor's assignment, or config files.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::Context;
use tokio::{sync::mpsc, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::{
    config::StreamSettings,
    daemon::{
        api,
        leases::Leases,
        manager::{LogOnly, Manager, ManagerSettings, StatusSink},
    },
    instance::{CallPolicy, RetryPolicy, SharedCheckpoints},
    plugin_host::Catalog,
    state::StateStore,
    stream,
};

/// What the engine is built from.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// This node's id (in status reports).
    pub node_id: String,
    /// Directory of plugin libraries (watched for new builds).
    pub plugin_dir: PathBuf,
    /// Directory of local state.
    pub state_dir: PathBuf,
    /// The stream backend.
    pub stream: StreamSettings,
    /// Address of the local API (port 0: any free port).
    pub api_listen: SocketAddr,
    /// Plugin call deadlines and retries.
    pub policy: CallPolicy,
    /// Restarts of a failing instance.
    pub restart: RetryPolicy,
    /// Automatic restarts of a failed instance; `None`: it stays failed.
    pub auto_restart: Option<RetryPolicy>,
    /// Longest wait for the instances to stop.
    pub stop_timeout: Duration,
}

/// What ties the engine to a control plane: where statuses go, where sources share
/// their checkpoints, and the source leases the node holds.
pub struct ControlLinks {
    /// Where status changes go.
    pub statuses: Arc<dyn StatusSink>,
    /// Where leased sources share their checkpoints.
    pub shared_checkpoints: Option<Arc<dyn SharedCheckpoints>>,
    /// The leases this node holds (renewed by the daemon's heartbeats).
    pub leases: Arc<Leases>,
}

impl ControlLinks {
    /// No control plane (`local`): statuses go to the log only, nothing is shared.
    pub fn log_only() -> Self {
        Self {
            statuses: Arc::new(LogOnly),
            shared_checkpoints: None,
            leases: Arc::default(),
        }
    }
}

/// A running engine.
pub struct Engine {
    /// The instances.
    pub manager: Arc<Manager>,
    /// Where the local API listens.
    pub api_addr: SocketAddr,
    state: StateStore,
    settings: EngineSettings,
    background: CancellationToken,
    api_shutdown: CancellationToken,
    api_task: JoinHandle<std::io::Result<()>>,
    _watcher: notify::RecommendedWatcher,
    plugin_changes: mpsc::Receiver<()>,
}

/// Opens the node's sled database with a bounded page cache.
pub fn open_db(state_dir: &Path) -> anyhow::Result<sled::Db> {
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("cannot create state directory {}", state_dir.display()))?;
    crate::state::sled_config(&state_dir.join("db"))
        .open()
        .with_context(|| format!("cannot open local state in {}", state_dir.display()))
}

fn load_catalog(plugin_dir: &Path, state_dir: &Path) -> anyhow::Result<Catalog> {
    let catalog = Catalog::load_dir(plugin_dir, &state_dir.join("plugin-cache"))
        .with_context(|| format!("plugin_dir: cannot read {}", plugin_dir.display()))?;
    for refused in catalog.refused() {
        tracing::warn!("plugin refused: {refused}");
    }
    Ok(catalog)
}

/// Watches the plugin directory; each burst of changes sends one `()`.
fn watch_plugins(dir: &Path) -> anyhow::Result<(notify::RecommendedWatcher, mpsc::Receiver<()>)> {
    use notify::Watcher;
    let (tx, rx) = mpsc::channel(1);
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

impl Engine {
    /// Opens the stream and the state in `db`, loads the plugins, and serves the
    /// local API. No instance runs until [`Manager::apply`].
    pub async fn start(
        settings: EngineSettings,
        db: sled::Db,
        links: ControlLinks,
    ) -> anyhow::Result<Engine> {
        let stream = stream::open(&settings.stream, &db).context("cannot open the stream")?;
        tracing::info!(backend = stream.backend.name(), capabilities = ?stream.capabilities, "stream open");
        // Checkpoints are flushed one by one only where the backend's flushes do not
        // already cover the state database.
        let state = StateStore::with_db(db, stream.capabilities.state_store_flushes)?;
        let catalog = load_catalog(&settings.plugin_dir, &settings.state_dir)?;
        let manager = Arc::new(Manager::new(
            Arc::new(catalog),
            stream.backend,
            state.clone(),
            links.statuses,
            ManagerSettings {
                node_id: settings.node_id.clone(),
                policy: settings.policy,
                restart: settings.restart,
                auto_restart: settings.auto_restart,
                stop_timeout: settings.stop_timeout,
                shared_checkpoints: links.shared_checkpoints,
                leases: links.leases,
            },
        ));

        let listener = tokio::net::TcpListener::bind(settings.api_listen)
            .await
            .with_context(|| format!("api_listen: cannot listen on {}", settings.api_listen))?;
        let api_addr = listener.local_addr()?;
        tracing::info!(addr = %api_addr, "local API listening");
        let api_shutdown = CancellationToken::new();
        let api_router = api::router(manager.clone());
        let api_task = {
            let api_shutdown = api_shutdown.clone();
            tokio::spawn(async move {
                axum::serve(listener, api_router)
                    .with_graceful_shutdown(async move { api_shutdown.cancelled().await })
                    .await
            })
        };

        let background = CancellationToken::new();
        if let Some(maintenance) = stream.maintenance {
            tokio::spawn(maintenance.run(background.clone()));
        }
        let (watcher, plugin_changes) = watch_plugins(&settings.plugin_dir)?;
        Ok(Engine {
            manager,
            api_addr,
            state,
            settings,
            background,
            api_shutdown,
            api_task,
            _watcher: watcher,
            plugin_changes,
        })
    }

    /// Waits for the plugin directory to change (cancel-safe: use it in a `select!`,
    /// then call [`Engine::reload_plugins`]).
    pub async fn plugin_change(&mut self) {
        if self.plugin_changes.recv().await.is_none() {
            std::future::pending::<()>().await;
        }
    }

    /// Reloads the catalog after a change; instances whose library changed restart on
    /// the new build. `true` when the catalog was reloaded.
    pub async fn reload_plugins(&mut self) -> bool {
        // Let a copy in progress finish, and take the burst as one change.
        tokio::time::sleep(Duration::from_millis(500)).await;
        while self.plugin_changes.try_recv().is_ok() {}
        match load_catalog(&self.settings.plugin_dir, &self.settings.state_dir) {
            Ok(catalog) => {
                tracing::info!(
                    connectors = catalog.entries().len(),
                    "plugin directory changed: catalog reloaded"
                );
                self.manager.replace_catalog(Arc::new(catalog)).await;
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot reload plugins");
                false
            }
        }
    }

    /// Stops every instance under the stop deadline, then the background tasks and
    /// the local API, and flushes the state.
    pub async fn stop(self) -> anyhow::Result<()> {
        tracing::info!("shutting down: stopping instances");
        let abandoned = self.manager.shutdown().await;
        if !abandoned.is_empty() {
            tracing::error!(instances = ?abandoned, "abandoned at the shutdown deadline");
        }
        self.background.cancel();
        self.state.flush().await?;
        self.api_shutdown.cancel();
        let _ = self.api_task.await;
        Ok(())
    }
}
