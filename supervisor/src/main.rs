//! `ld-supervisor`: serve the reference control plane, or manage its API keys.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ld_supervisor::auth::Permission;
use ld_supervisor::{CatalogEntry, Supervisor, SupervisorConfig};
use tracing_subscriber::EnvFilter;

mod keys_cli;

#[derive(Parser)]
#[command(
    name = "ld-supervisor",
    version,
    about = "Reference control plane for ld-connectord"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Main API and the Supervisor API.
    Serve {
        /// Data directory (sled database).
        #[arg(long, env = "LD_SUPERVISOR_DATA")]
        data: PathBuf,
        /// Address to listen on; loopback by default.
        #[arg(long, env = "LD_SUPERVISOR_LISTEN", default_value = "127.0.0.1:8090")]
        listen: SocketAddr,
        /// JSON file with catalog entries ([{"key","type","name","description"}]) to
        /// register; without it the built-in list is registered.
        #[arg(long)]
        catalog: Option<PathBuf>,
        /// Seconds without a heartbeat after which a node counts as gone.
        #[arg(long, default_value_t = 30)]
        node_ttl_secs: u64,
        /// Failed authentications allowed per client address and minute before it gets
        /// 429 (0: no limit).
        #[arg(long, default_value_t = 10)]
        auth_failures_per_minute: u32,
        /// PEM certificate chain (server certificate first): serve HTTPS.
        #[arg(long, env = "LD_SUPERVISOR_TLS_CERT", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key of the certificate.
        #[arg(long, env = "LD_SUPERVISOR_TLS_KEY", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Cap, in seconds, on a long poll's `wait` (at most 60).
        #[arg(long, default_value_t = ld_supervisor::api::MAX_WAIT_SECS)]
        max_wait_secs: u64,
    },
    /// Manage API keys: directly in the data directory when no server runs on it, else
    /// through the running server's API (`/keys`) with a key holding
    /// supervisor:keys:manage (`--api-key` or LD_SUPERVISOR_API_KEY).
    Keys {
        #[command(flatten)]
        target: keys_cli::Target,
        #[command(subcommand)]
        command: keys_cli::KeysCommand,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve {
            data,
            listen,
            catalog,
            node_ttl_secs,
            auth_failures_per_minute,
            max_wait_secs,
            tls_cert,
            tls_key,
        } => {
            let tls = match (tls_cert, tls_key) {
                (Some(cert), Some(key)) => {
                    // Load before anything else, so a bad certificate fails at once.
                    ld_supervisor::tls::load_server_config(&cert, &key)?;
                    Some(ld_supervisor::tls::TlsFiles { cert, key })
                }
                _ => None,
            };
            let mut config = SupervisorConfig::new(&data);
            config.node_ttl = Duration::from_secs(node_ttl_secs.max(1));
            config.auth_failures_per_minute = auth_failures_per_minute;
            config.max_wait =
                Duration::from_secs(max_wait_secs.min(ld_supervisor::api::MAX_WAIT_SECS));
            let supervisor = Supervisor::open(config)
                .with_context(|| format!("opening data directory {}", data.display()))?;
            let entries = match &catalog {
                Some(path) => load_catalog(path)?,
                None => ld_supervisor::builtin_catalog(),
            };
            for entry in entries {
                supervisor.register_catalog_entry(entry)?;
            }
            if supervisor.has_no_keys() {
                let key = supervisor.create_api_key(&Permission::ALL)?;
                println!(
                    "no API keys in {}; created one with every permission (shown once):",
                    data.display()
                );
                println!("ld-api-key: {key}");
            }
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("binding {listen}"))?;
            let scheme = if tls.is_some() { "https" } else { "http" };
            let url = format!("{scheme}://{}", listener.local_addr()?);
            // Where `ld-supervisor keys` finds the server while the directory is locked.
            let url_file = data.join(keys_cli::URL_FILE);
            std::fs::write(&url_file, format!("{url}\n"))
                .with_context(|| format!("writing {}", url_file.display()))?;
            println!("ld-supervisor listening on {url}");
            supervisor
                .serve_with(listener, tls.as_ref(), async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await?;
            Ok(())
        }
        Command::Keys { target, command } => keys_cli::run(target, command).await,
    }
}

fn load_catalog(path: &PathBuf) -> anyhow::Result<Vec<CatalogEntry>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading catalog {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing catalog {}", path.display()))
}
