//! `ld-connectord`: the node-side connector runtime.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context;
use clap::{Parser, Subcommand};
#[cfg(feature = "standalone")]
use ld_connectord::standalone;
use ld_connectord::{
    config::{DaemonConfig, LocalFile, StreamSettings},
    daemon,
    instance::RetryPolicy,
    local,
    plugin_host::{Catalog, PluginLibrary},
    scaffold::{self, Side},
};
use ld_plugin_api::ffi::ConnectorType;
#[cfg(feature = "standalone")]
use ld_supervisor::tls::TlsFiles;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "ld-connectord",
    version,
    about = "Node-side connector runtime: loads connector plugins and runs sources and sinks"
)]
struct Cli {
    /// Log lines as `text` (colours only on a terminal) or `json` (one object per line).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "LD_CONNECTORD_LOG_FORMAT"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
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
    #[cfg(feature = "standalone")]
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
    /// Run connector instances from config files on this machine, with no control
    /// plane: the same engine as `run` (restarts, local API, any stream backend).
    /// Stops on SIGTERM or Ctrl-C, or when no instance can run any more.
    Local {
        /// Directory holding plugin libraries (`*.so`).
        #[arg(long)]
        plugins: PathBuf,
        /// Directory for local state: the log, offsets and source checkpoints.
        #[arg(long)]
        state: PathBuf,
        /// The stream: `embedded` (the local log) or `iggy://[user:password@]host:port`.
        #[arg(long, default_value = "embedded")]
        stream: String,
        /// A TOML file with `[stream]` (as in the daemon's config), `api_listen`,
        /// `max_restarts`, `restart_backoff`, `shutdown_timeout`; overrides the flags.
        #[arg(long)]
        config: Option<PathBuf>,
        /// When the embedded log reaches the disk: `batch` (fsync per batch and commit)
        /// or an interval such as `100ms`.
        #[arg(long, default_value = "batch")]
        durability: String,
        /// Address of the local API (`/health`, `/metrics`, `/instances`); port 0 picks
        /// a free port (logged).
        #[arg(long, default_value = "127.0.0.1:0")]
        api_listen: std::net::SocketAddr,
        /// Restarts of a failing instance before it is `failed`.
        #[arg(long, default_value = "5")]
        max_restarts: u32,
        /// Longest wait for instances to drain at shutdown.
        #[arg(long, default_value = "10s")]
        shutdown_timeout: humantime::Duration,
        /// Instance config files (TOML as for Iggy's connectors, or JSON), each with
        /// `type` and `key`; the instance key is the file name without extension.
        #[arg(required = true)]
        configs: Vec<PathBuf>,
    },
    /// Load one plugin library and print what it provides; exit non-zero with the reason
    /// when it cannot be loaded. With `--config`, check a `plugin_config` file instead:
    /// one line per wrong field, exit non-zero when there is any.
    CheckPlugin {
        /// The plugin library file.
        path: PathBuf,
        /// Print JSON instead of text.
        #[arg(long, conflicts_with = "config")]
        json: bool,
        /// A JSON file holding a `plugin_config` to check against the plugin's schema and
        /// its own validation.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The side whose config to check; needed only when the library provides both.
        #[arg(long, value_enum, requires = "config")]
        side: Option<SideArg>,
        /// Where content-addressed copies of loaded libraries are kept.
        #[arg(long, env = "LD_CONNECTORD_PLUGIN_CACHE")]
        cache_dir: Option<PathBuf>,
    },
    /// Write a new plugin crate `DIR/NAME`: Cargo.toml, a commented src/lib.rs that
    /// builds and runs as it is, a test using ld_plugin_api::testing, a README with the
    /// config table, and an example config.
    #[command(group(clap::ArgGroup::new("kind").required(true).args(["sink", "source"])))]
    NewPlugin {
        /// Crate name and connector key: lower-case letters, digits and `-`, starting with
        /// a letter (`my-sink`).
        name: String,
        /// A sink: writes stream messages into a system.
        #[arg(long)]
        sink: bool,
        /// A source: reads a system into a stream.
        #[arg(long)]
        source: bool,
        /// Where to create the crate's folder.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Depend on this local ld-plugin-api folder instead of version 0.1 from the
        /// registry.
        #[arg(long)]
        api_path: Option<PathBuf>,
    },
}

/// `--side` of `check-plugin`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum SideArg {
    Sink,
    Source,
}

fn default_cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("ld-connectord").join("plugins")
}

fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("LD_CONNECTORD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(ld_connectord::redact::RedactingStderr);
    match format {
        // Colour codes only where a person reads them; a file or journald gets none.
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Plugins {
            dir,
            json,
            cache_dir,
        } => list_plugins(&dir, json, &cache_dir.unwrap_or_else(default_cache_dir)),
        Command::Run { config } => run_daemon(config),
        #[cfg(feature = "standalone")]
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
            stream,
            config,
            durability,
            api_listen,
            max_restarts,
            shutdown_timeout,
            configs,
        } => local_options(LocalArgs {
            plugins,
            state,
            stream,
            config,
            durability,
            api_listen,
            max_restarts,
            shutdown_timeout: shutdown_timeout.into(),
            configs,
        })
        .and_then(run_local),
        Command::CheckPlugin {
            path,
            json,
            config,
            side,
            cache_dir,
        } => {
            let cache_dir = cache_dir.unwrap_or_else(default_cache_dir);
            match config {
                Some(config) => check_plugin_config(&path, &config, side, &cache_dir),
                None => check_plugin(&path, json, &cache_dir),
            }
        }
        Command::NewPlugin {
            name,
            sink,
            source: _,
            dir,
            api_path,
        } => new_plugin(scaffold::NewPlugin {
            name,
            side: if sink { Side::Sink } else { Side::Source },
            dir,
            api_path,
        }),
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

#[cfg(feature = "standalone")]
fn run_standalone(opts: standalone::StandaloneOptions) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        spawn_signal_handler(shutdown.clone())?;
        standalone::run(opts, shutdown).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// The command line of `local`.
struct LocalArgs {
    plugins: PathBuf,
    state: PathBuf,
    stream: String,
    config: Option<PathBuf>,
    durability: String,
    api_listen: std::net::SocketAddr,
    max_restarts: u32,
    shutdown_timeout: std::time::Duration,
    configs: Vec<PathBuf>,
}

/// The flags, then the `--config` file over them.
fn local_options(args: LocalArgs) -> anyhow::Result<local::LocalOptions> {
    let stream = StreamSettings::from_flags(&args.stream, &args.durability)?;
    let file = match &args.config {
        Some(path) => LocalFile::load(path)?,
        None => LocalFile::default(),
    };
    let restart_defaults = RetryPolicy {
        initial: std::time::Duration::from_secs(1),
        max: std::time::Duration::from_secs(60),
        max_attempts: 1,
        healthy_after: Some(std::time::Duration::from_secs(60)),
    };
    Ok(local::LocalOptions {
        plugin_dir: args.plugins,
        state_dir: args.state,
        configs: args.configs,
        stream: file.stream.unwrap_or(stream),
        api_listen: file.api_listen.unwrap_or(args.api_listen),
        restart: RetryPolicy {
            initial: file.restart_backoff.unwrap_or(restart_defaults.initial),
            max_attempts: file
                .max_restarts
                .unwrap_or(args.max_restarts)
                .saturating_add(1),
            ..restart_defaults
        },
        shutdown_timeout: file.shutdown_timeout.unwrap_or(args.shutdown_timeout),
    })
}

fn run_local(opts: local::LocalOptions) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        spawn_signal_handler(shutdown.clone())?;
        let failed = local::run_local(opts, shutdown).await?;
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

/// `check-plugin PATH --config FILE`: one line per problem on stderr, or one `ok` line.
fn check_plugin_config(
    path: &Path,
    file: &Path,
    side: Option<SideArg>,
    cache_dir: &Path,
) -> anyhow::Result<ExitCode> {
    let lib = match PluginLibrary::load(path, cache_dir) {
        Ok(lib) => lib,
        Err(err) => {
            eprintln!("error: {err}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    // serde_json's message ends with the line and column.
    let config: serde_json::Value = match serde_json::from_str(&text) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: {}: not JSON: {err}", file.display());
            return Ok(ExitCode::FAILURE);
        }
    };
    let side = side.map(|side| match side {
        SideArg::Sink => ConnectorType::Sink,
        SideArg::Source => ConnectorType::Source,
    });
    let checked = scaffold::check_config(&lib, side, &config)?;
    if checked.problems.is_empty() {
        let meta = lib.meta();
        let note = if checked.built {
            ""
        } else {
            " (its ${...} references are resolved only on the node, so the plugin's `new` \
             did not run)"
        };
        println!(
            "ok: {} is a valid plugin_config for {} {} ({}){note}",
            file.display(),
            meta.key,
            meta.version,
            checked.side.as_str()
        );
        return Ok(ExitCode::SUCCESS);
    }
    for problem in &checked.problems {
        eprintln!("{problem}");
    }
    Ok(ExitCode::FAILURE)
}

fn new_plugin(request: scaffold::NewPlugin) -> anyhow::Result<ExitCode> {
    let side = request.side;
    let root = scaffold::new_plugin(&request)?;
    let lib = scaffold::library_file(&request.name);
    println!(
        "created {} ({}) in {}\n\nnext:\n  cd {}\n  cargo build --release && cargo test\n  \
         ld-connectord check-plugin target/release/{lib} --config example-config.json",
        request.name,
        side.as_str(),
        root.display(),
        root.display(),
    );
    Ok(ExitCode::SUCCESS)
}
