//! `ld-connectord standalone`: the reference supervisor and the daemon in one process,
//! for one machine. With no arguments it activates a real pipeline (random source ->
//! embedded log -> stdout sink) through the supervisor's own API.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context;
use figment::{
    providers::{Env, Format, Serialized, Toml},
    Figment,
};
use ld_protocol::{
    routes, ActivateRequest, ConnectorType, Scope, SupervisorClient, API_KEY_HEADER,
};
use ld_supervisor::{auth::Permission, tls::TlsFiles, Supervisor, SupervisorConfig};
use tokio_util::sync::CancellationToken;

use crate::config::DaemonConfig;

/// The deployment id standalone mode uses (the seed's example id).
pub const DEPLOYMENT_ID: u64 = 611298765432109056;

/// What `standalone` runs.
#[derive(Debug, Clone)]
pub struct StandaloneOptions {
    /// Daemon settings to merge over the standalone defaults.
    pub config: Option<PathBuf>,
    /// State directory; a fresh temporary one when absent.
    pub state_dir: Option<PathBuf>,
    /// Plugin directory; default: the directory of this executable.
    pub plugin_dir: Option<PathBuf>,
    /// Address of the supervisor (Main API and Supervisor API).
    pub listen: SocketAddr,
    /// Address of the daemon's local API.
    pub api_listen: SocketAddr,
    /// Activate the demo pipeline.
    pub demo: bool,
    /// Serve the supervisor over HTTPS from these PEM files (the daemon then trusts
    /// the certificate's chain from the same file).
    pub tls: Option<TlsFiles>,
}

/// The connectors we ship (examples and test fixtures are built beside them but are
/// not offered to users).
const SHIPPED: &[&str] = &[
    "stdout_sink",
    "random_source",
    "postgres_sink",
    "postgres_source",
    "elasticsearch_sink",
    "iceberg_sink",
];

/// With no `--plugins`: a directory in the state directory linking the shipped
/// connectors found beside this executable, so only they are loaded and listed.
fn shipped_plugin_dir(state_dir: &std::path::Path) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let beside = exe.parent().context("executable has no directory")?;
    let dir = state_dir.join("plugins");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for name in SHIPPED {
        let file = format!("libld_{name}.so");
        let (from, to) = (beside.join(&file), dir.join(&file));
        if from.is_file() && !to.exists() {
            std::os::unix::fs::symlink(&from, &to)
                .with_context(|| format!("cannot link {}", to.display()))?;
        }
    }
    Ok(dir)
}

/// Runs until `shutdown`.
pub async fn run(opts: StandaloneOptions, shutdown: CancellationToken) -> anyhow::Result<()> {
    let temp;
    let state_dir = match &opts.state_dir {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::Builder::new()
                .prefix("ld-connectord-standalone-")
                .tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let plugin_dir = match &opts.plugin_dir {
        Some(dir) => dir.clone(),
        None => shipped_plugin_dir(&state_dir)?,
    };

    let supervisor = Supervisor::open(SupervisorConfig::new(state_dir.join("supervisor")))
        .context("cannot open the supervisor's state")?;
    // The node's key can read secrets (it runs the instances); the key printed for the
    // user cannot, so the API shows them masked.
    let node_key = supervisor.create_api_key(&[Permission::Node])?;
    let api_key = supervisor.create_api_key(&[
        Permission::Manage,
        Permission::Read,
        Permission::KeysManage,
    ])?;
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (choose another with --listen)",
                opts.listen
            )
        })?;
    let scheme = if opts.tls.is_some() { "https" } else { "http" };
    let supervisor_url = format!("{scheme}://{}", listener.local_addr()?);
    let supervisor_stop = shutdown.clone();
    let tls = opts.tls.clone();
    let supervisor_task = tokio::spawn(async move {
        supervisor
            .serve_with(listener, tls.as_ref(), async move {
                supervisor_stop.cancelled().await
            })
            .await
    });

    let mut figment = Figment::from(Serialized::defaults(serde_json::json!({
        "supervisor_url": supervisor_url,
        "deployment_id": DEPLOYMENT_ID,
        "node_id": "standalone",
        "api_key": node_key,
        "supervisor_ca_file": opts.tls.as_ref().map(|t| t.cert.clone()),
        "plugin_dir": plugin_dir,
        "state_dir": state_dir.join("node"),
        "api_listen": opts.api_listen,
        "heartbeat_interval": "2s",
    })));
    if let Some(file) = &opts.config {
        anyhow::ensure!(file.exists(), "{}: no such file", file.display());
        figment = figment.merge(Toml::file(file));
    }
    figment = figment.merge(
        Env::prefixed("LD_CONNECTORD_")
            .split("__")
            .ignore(&["log", "plugin_cache"]),
    );
    let config = DaemonConfig::from_figment(figment)?;

    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let daemon = tokio::spawn(crate::daemon::run(
        config.clone(),
        shutdown.clone(),
        move |info| {
            let _ = ready_tx.send(info.clone());
        },
    ));
    let Ok(info) = ready_rx.await else {
        return daemon
            .await?
            .context("the daemon stopped before it was ready");
    };

    // The reference supervisor takes any ids above the deployment; the hints use 1.
    let scope = Scope::new("1", "1", "1");
    let url = |path: String| format!("{supervisor_url}{path}");
    let instances = url(routes::instances(DEPLOYMENT_ID));
    eprintln!(
        "\nld-connectord standalone is running.\n\
         \n  Main API and Supervisor API: {supervisor_url}\
         \n  API key:                     {api_key}\
         \n  deployment id:               {DEPLOYMENT_ID}\
         \n  node local API:              http://{api}/health  /metrics  /instances\
         \n  plugins from:                {plugins}\
         \n  state in:                    {state}\
         \n\nTry the API (any tenant, division and environment id works here{tls_hint}):\
         \n  curl -H \"{API_KEY_HEADER}: {api_key}\" \"{catalog}?type=sink&page=1&results=10\"\
         \n  curl -H \"{API_KEY_HEADER}: {api_key}\" {instances}\
         \n  curl -X POST -H \"{API_KEY_HEADER}: {api_key}\" -H \"Content-Type: application/json\" {activate} \\\
         \n       -d '{{\"connector_key\": \"stdout\", \"connector_type\": \"sink\", \"instance_key\": \"my-sink\"}}'\
         \n  curl -X DELETE -H \"{API_KEY_HEADER}: {api_key}\" {instances}/ID\
         \n",
        api = info.api_addr,
        plugins = plugin_dir.display(),
        state = state_dir.display(),
        catalog = url(routes::catalog(&scope, DEPLOYMENT_ID)),
        activate = url(routes::activate(&scope, DEPLOYMENT_ID)),
        tls_hint = match &opts.tls {
            Some(tls) => format!("; add `--cacert {}` to curl", tls.cert.display()),
            None => String::new(),
        },
    );

    if opts.demo {
        let client = SupervisorClient::new(
            &supervisor_url,
            DEPLOYMENT_ID,
            &api_key,
            &config.supervisor_ca,
        );
        activate_demo(&client, &scope).await?;
        eprintln!("Demo pipeline activated: random source -> embedded log -> stdout sink (messages on stdout).\n");
    }

    let result = daemon.await?;
    shutdown.cancel();
    let _ = supervisor_task.await;
    result
}

async fn activate_demo(client: &SupervisorClient, scope: &Scope) -> anyhow::Result<()> {
    let instances = [
        ActivateRequest {
            connector_key: "random".into(),
            connector_type: ConnectorType::Source,
            instance_name: Some("Demo generator".into()),
            instance_key: Some("demo-random".into()),
            config: Some(serde_json::json!({
                "enabled": true,
                "streams": [{"stream": "demo", "topic": "numbers", "schema": "json"}],
                "plugin_config": {"seed": 42, "rate": 5, "batch_size": 5}})),
        },
        ActivateRequest {
            connector_key: "stdout".into(),
            connector_type: ConnectorType::Sink,
            instance_name: Some("Demo printer".into()),
            instance_key: Some("demo-stdout".into()),
            config: Some(serde_json::json!({
                "enabled": true,
                "streams": [{"stream": "demo", "topics": ["numbers"], "schema": "json",
                             "batch_length": 100, "poll_interval": "100ms"}],
                "plugin_config": {"print_payload": true}})),
        },
    ];
    for request in &instances {
        client
            .activate(scope, request)
            .await
            .with_context(|| format!("activating the demo pipeline's {}", request.connector_key))?;
    }
    Ok(())
}
