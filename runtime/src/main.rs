//! `ld-connectord`: the node-side connector runtime.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context;
use clap::{Parser, Subcommand};
use ld_connectord::{
    config::DaemonConfig,
    daemon, local,
    plugin_host::{Catalog, PluginLibrary},
    standalone,
    stream::embedded::Durability,
};
use ld_supervisor::tls::TlsFiles;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "ld-connectord",
    version,
    about = "Node-side connector runtime: loads connector plugins and runs sources and sinks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the connectors that the plugin libraries of a directory provide.
    Plugins {
        /// Directory holding plugin libraries (`*.so`).
        #[arg(long)]
        dir: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Where content-addressed copies of loaded libraries are kept.
        #[arg(long, env = "LD_CONNECTORD_PLUGIN_CACHE")]
        cache_dir: Option<PathBuf>,
    },
    /// Run the daemon: fetch this node's instances from the supervisor and run them.
    Run {
        /// The daemon's TOML config; every field can be overridden by an
        /// `LD_CONNECTORD_<FIELD>` environment variable.
        #[arg(long, env = "LD_CONNECTORD_CONFIG")]
        config: Option<PathBuf>,
    },
    /// The reference supervisor and the daemon in one process, for one machine. With
    /// no arguments: a fresh state directory and a demo pipeline (random source ->
    /// embedded log -> stdout sink); log lines go to stderr, the sink's messages to stdout.
    Standalone {
        /// Daemon settings (TOML) to merge over the standalone defaults.
        #[arg(long)]
        config: Option<PathBuf>,
        /// State directory (default: a fresh temporary one).
        #[arg(long)]
        state: Option<PathBuf>,
        /// Plugin directory (default: the directory of this executable).
        #[arg(long)]
        plugins: Option<PathBuf>,
        /// Address of the supervisor's API.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Address of the node's local API.
        #[arg(long, default_value = "127.0.0.1:9780")]
        api_listen: std::net::SocketAddr,
        /// Do not activate the demo pipeline.
        #[arg(long)]
        no_demo: bool,
        /// Serve the supervisor over HTTPS with this PEM certificate (chain) ...
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// ... and this PEM private key.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// Run connector instances from config files on this machine, with the embedded
    /// log and no control plane. Stops on SIGTERM or Ctrl-C.
    Local {
        /// Directory holding plugin libraries (`*.so`).
        #[arg(long)]
        plugins: PathBuf,
        /// Directory for local state: the log, offsets and source checkpoints.
        #[arg(long)]
        state: PathBuf,
        /// When the embedded log reaches the disk: `batch` (fsync per batch and commit)
        /// or an interval such as `100ms`.
        #[arg(long, default_value = "batch")]
        durability: String,
        /// Longest wait for instances to drain at shutdown.
        #[arg(long, default_value = "10s")]
        shutdown_timeout: humantime::Duration,
        /// Instance config files (TOML as for Iggy's connectors, or JSON), each with
        /// `type` and `key`; the instance key is the file name without extension.
        #[arg(required = true)]
        configs: Vec<PathBuf>,
    },
    /// Load one plugin library and print what it provides; exit non-zero with the reason
    /// when it cannot be loaded.
    CheckPlugin {
        /// The plugin library file.
        path: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Where content-addressed copies of loaded libraries are kept.
        #[arg(long, env = "LD_CONNECTORD_PLUGIN_CACHE")]
        cache_dir: Option<PathBuf>,
    },
}

fn default_cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("ld-connectord").join("plugins")
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LD_CONNECTORD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(ld_connectord::redact::RedactingStderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Plugins {
            dir,
            json,
            cache_dir,
        } => list_plugins(&dir, json, &cache_dir.unwrap_or_else(default_cache_dir)),
        Command::Run { config } => run_daemon(config),
        Command::Standalone {
            config,
            state,
            plugins,
            listen,
            api_listen,
            no_demo,
            tls_cert,
            tls_key,
        } => run_standalone(standalone::StandaloneOptions {
            config,
            state_dir: state,
            plugin_dir: plugins,
            listen,
            api_listen,
            demo: !no_demo,
            tls: tls_cert
                .zip(tls_key)
                .map(|(cert, key)| TlsFiles { cert, key }),
        }),
        Command::Local {
            plugins,
            state,
            durability,
            shutdown_timeout,
            configs,
        } => run_local(
            plugins,
            state,
            &durability,
            shutdown_timeout.into(),
            configs,
        ),
        Command::CheckPlugin {
            path,
            json,
            cache_dir,
        } => check_plugin(&path, json, &cache_dir.unwrap_or_else(default_cache_dir)),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_daemon(config: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let config = DaemonConfig::load(config.as_deref())?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        spawn_signal_handler(shutdown.clone())?;
        daemon::run(config, shutdown, |_| {
            // Tell systemd (Type=notify) we are up; a no-op outside systemd.
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
        })
        .await?;
        Ok(ExitCode::SUCCESS)
    })
}

fn run_standalone(opts: standalone::StandaloneOptions) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        spawn_signal_handler(shutdown.clone())?;
        standalone::run(opts, shutdown).await?;
        Ok(ExitCode::SUCCESS)
    })
}

fn parse_durability(text: &str) -> anyhow::Result<Durability> {
    if text == "batch" {
        return Ok(Durability::Batch);
    }
    humantime::parse_duration(text)
        .map(Durability::Interval)
        .map_err(|e| {
            anyhow::anyhow!(
                "--durability: `{text}` is neither `batch` nor an interval like 100ms ({e})"
            )
        })
}

fn run_local(
    plugin_dir: PathBuf,
    state_dir: PathBuf,
    durability: &str,
    shutdown_timeout: std::time::Duration,
    configs: Vec<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let durability = parse_durability(durability)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        spawn_signal_handler(shutdown.clone())?;
        let failed = local::run_local(
            local::LocalOptions {
                plugin_dir,
                state_dir,
                configs,
                durability,
                shutdown_timeout,
            },
            shutdown,
        )
        .await?;
        Ok(if failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    })
}

/// SIGTERM and Ctrl-C cancel `shutdown`.
fn spawn_signal_handler(shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupted: shutting down"),
        }
        shutdown.cancel();
    });
    Ok(())
}

fn list_plugins(dir: &Path, json: bool, cache_dir: &Path) -> anyhow::Result<ExitCode> {
    let catalog = Catalog::load_dir(dir, cache_dir)
        .with_context(|| format!("cannot read plugin directory {}", dir.display()))?;
    let entries = catalog.entries();
    if json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
    } else {
        println!(
            "{:<16} {:<7} {:<24} {:<10} FILE",
            "KEY", "TYPE", "NAME", "VERSION"
        );
        for e in &entries {
            println!(
                "{:<16} {:<7} {:<24} {:<10} {}",
                e.key,
                e.connector_type,
                e.name,
                e.version,
                e.file.display()
            );
        }
    }
    for refused in catalog.refused() {
        eprintln!("refused: {refused}");
    }
    Ok(ExitCode::SUCCESS)
}

fn check_plugin(path: &Path, json: bool, cache_dir: &Path) -> anyhow::Result<ExitCode> {
    match PluginLibrary::load(path, cache_dir) {
        Ok(lib) => {
            let meta = lib.meta();
            if json {
                println!("{}", serde_json::to_string_pretty(meta)?);
            } else {
                let types: Vec<&str> = meta.types().iter().map(|t| t.as_str()).collect();
                println!(
                    "ok: {} {} ({}): {}: {}",
                    meta.key,
                    meta.version,
                    types.join(", "),
                    meta.name,
                    meta.description
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            eprintln!("error: {err}");
            Ok(ExitCode::FAILURE)
        }
    }
}
