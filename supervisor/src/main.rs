//! `ld-supervisor`: serve the reference control plane, or manage its API keys.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ld_supervisor::auth::Permission;
use ld_supervisor::{CatalogEntry, Supervisor, SupervisorConfig};
use tracing_subscriber::EnvFilter;

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
    },
    /// Manage API keys (stop the server first: the data directory is locked while it runs).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key, print it once, store only its SHA-256.
    Create {
        /// Data directory (sled database).
        #[arg(long, env = "LD_SUPERVISOR_DATA")]
        data: PathBuf,
        /// Comma-separated permissions: deployment:connector:manage,
        /// deployment:connector:read, deployment:node.
        #[arg(long, value_delimiter = ',', required = true)]
        permissions: Vec<Permission>,
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
        } => {
            let mut config = SupervisorConfig::new(&data);
            config.node_ttl = Duration::from_secs(node_ttl_secs.max(1));
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
            println!(
                "ld-supervisor listening on http://{}",
                listener.local_addr()?
            );
            supervisor
                .serve(listener, async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await?;
            Ok(())
        }
        Command::Keys {
            command: KeysCommand::Create { data, permissions },
        } => {
            let supervisor = Supervisor::open(SupervisorConfig::new(&data)).with_context(|| {
                format!(
                    "opening data directory {} (is ld-supervisor serve running on it?)",
                    data.display()
                )
            })?;
            let key = supervisor.create_api_key(&permissions)?;
            println!("{key}");
            Ok(())
        }
    }
}

fn load_catalog(path: &PathBuf) -> anyhow::Result<Vec<CatalogEntry>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading catalog {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing catalog {}", path.display()))
}
