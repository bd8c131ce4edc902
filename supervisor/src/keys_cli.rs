//! `ld-supervisor keys create|list|revoke`: straight in the data directory when no server
//! holds it, else through the running server's `/keys` API.
//!
//! sled locks the data directory while `serve` runs, so the CLI first tries to open it; when
//! that fails and a server is known (`--url`, or the `ld-supervisor.url` file `serve`
//! writes into the data directory), it calls the API with `--api-key` (a key holding
//! `supervisor:keys:manage`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use ld_protocol::{CreateKeyRequest, CreatedKey, KeyInfo, Permission, SupervisorClient};
use ld_supervisor::{Supervisor, SupervisorConfig};

/// Name of the file in the data directory where `serve` notes its URL.
pub const URL_FILE: &str = "ld-supervisor.url";

/// Where the keys live.
#[derive(Args)]
pub struct Target {
    /// Data directory (sled database).
    #[arg(long, env = "LD_SUPERVISOR_DATA", global = true)]
    data: Option<PathBuf>,
    /// URL of a running ld-supervisor; by default the one noted in the data directory.
    #[arg(long, env = "LD_SUPERVISOR_URL", global = true)]
    url: Option<String>,
    /// API key with supervisor:keys:manage, to manage keys through a running server.
    #[arg(
        long,
        env = "LD_SUPERVISOR_API_KEY",
        global = true,
        hide_env_values = true
    )]
    api_key: Option<String>,
    /// PEM file of the CA that signed the server's certificate (HTTPS).
    #[arg(long, global = true)]
    ca_cert: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it once (stdout: only the key); only its SHA-256 is stored.
    Create {
        /// Comma-separated permissions: deployment:connector:manage,
        /// deployment:connector:read, deployment:node, supervisor:keys:manage.
        #[arg(long, value_delimiter = ',', required = true)]
        permissions: Vec<Permission>,
        /// Comma-separated deployment ids the key is bound to (403 elsewhere); all when
        /// omitted.
        #[arg(long, value_delimiter = ',')]
        deployments: Vec<u64>,
        /// Expiry from now: seconds, or a number with s, m, h or d (e.g. 30d).
        #[arg(long, value_parser = parse_duration_secs)]
        expires_in: Option<u64>,
        /// A note: what the key is for.
        #[arg(long)]
        name: Option<String>,
    },
    /// List keys: id, permissions, created, last used, expiry, deployments, name.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by its id (from `keys list`).
    Revoke {
        /// The key's id.
        id: String,
    },
}

fn parse_duration_secs(text: &str) -> Result<u64, String> {
    let (number, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c),
        _ => (text, 's'),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (use e.g. 3600, 90m, 12h, 30d)"))?;
    let factor = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(format!("`{text}`: unit must be s, m, h or d")),
    };
    match n.checked_mul(factor) {
        Some(0) | None => Err(format!("`{text}` must be at least one second")),
        Some(secs) => Ok(secs),
    }
}

enum Backend {
    Local(Supervisor),
    /// The keys routes are not under a deployment: the client's deployment id is unused.
    Remote(SupervisorClient),
}

async fn backend(target: Target) -> anyhow::Result<Backend> {
    if target.url.is_none() {
        let Some(data) = &target.data else {
            bail!("pass --data DIR (or LD_SUPERVISOR_DATA), or --url of a running ld-supervisor");
        };
        match Supervisor::open(SupervisorConfig::new(data)) {
            Ok(supervisor) => return Ok(Backend::Local(supervisor)),
            Err(err) => {
                let Some(url) = noted_url(data) else {
                    return Err(err)
                        .with_context(|| format!("opening data directory {}", data.display()));
                };
                tracing::debug!(error = %err, %url, "data directory in use; using the API");
                return remote(url, target.api_key, target.ca_cert.as_deref());
            }
        }
    }
    let url = target.url.expect("checked");
    remote(url, target.api_key, target.ca_cert.as_deref())
}

fn noted_url(data: &Path) -> Option<String> {
    let text = std::fs::read_to_string(data.join(URL_FILE)).ok()?;
    let url = text.trim();
    (!url.is_empty()).then(|| url.to_string())
}

fn remote(url: String, key: Option<String>, ca: Option<&Path>) -> anyhow::Result<Backend> {
    let Some(key) = key else {
        bail!(
            "the data directory is in use by the ld-supervisor serving {url}; pass --api-key \
             (or LD_SUPERVISOR_API_KEY) with a key holding supervisor:keys:manage to manage \
             keys through its API"
        );
    };
    let mut builder = SupervisorClient::builder(&url, 0).api_key(key);
    if let Some(ca) = ca {
        builder = builder.ca_file(ca)?;
    }
    Ok(Backend::Remote(builder.build()?))
}

/// Runs one keys command.
pub async fn run(target: Target, command: KeysCommand) -> anyhow::Result<()> {
    let backend = backend(target).await?;
    match command {
        KeysCommand::Create {
            permissions,
            deployments,
            expires_in,
            name,
        } => {
            let req = CreateKeyRequest {
                permissions,
                deployments,
                expires_at: None,
                expires_in_secs: expires_in,
                name,
            };
            let created: CreatedKey = match &backend {
                Backend::Local(supervisor) => supervisor
                    .create_key(req, None)
                    .map_err(|e| anyhow::anyhow!("{e}"))?,
                Backend::Remote(client) => client.create_key(&req).await?,
            };
            eprintln!(
                "created API key {} (shown once; only its SHA-256 is stored)",
                created.info.id
            );
            println!("{}", created.key);
        }
        KeysCommand::List { json } => {
            let keys: Vec<KeyInfo> = match &backend {
                Backend::Local(supervisor) => supervisor.list_keys()?,
                Backend::Remote(client) => client.list_keys().await?,
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                print_table(&keys);
            }
        }
        KeysCommand::Revoke { id } => {
            match &backend {
                Backend::Local(supervisor) => supervisor
                    .revoke_key(&id)
                    .map_err(|e| anyhow::anyhow!("{e}"))?,
                Backend::Remote(client) => client.revoke_key(&id).await?,
            }
            eprintln!("revoked API key {id}");
        }
    }
    Ok(())
}

fn print_table(keys: &[KeyInfo]) {
    println!(
        "{:<16}  {:<20}  {:<20}  {:<20}  {:<12}  PERMISSIONS  NAME",
        "ID", "CREATED", "LAST USED", "EXPIRES", "DEPLOYMENTS"
    );
    for key in keys {
        let permissions: Vec<&str> = key.permissions.iter().map(|p| p.as_str()).collect();
        let deployments = if key.deployments.is_empty() {
            "all".to_string()
        } else {
            key.deployments
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        println!(
            "{:<16}  {:<20}  {:<20}  {:<20}  {:<12}  {}  {}",
            key.id,
            utc(Some(key.created_at)),
            utc(key.last_used_at),
            utc(key.expires_at),
            deployments,
            permissions.join(","),
            key.name.as_deref().unwrap_or("")
        );
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for milliseconds since the epoch, `-` for none.
fn utc(ms: Option<u64>) -> String {
    let Some(ms) = ms else {
        return "-".to_string();
    };
    let secs = ms / 1000;
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_dates() {
        assert_eq!(parse_duration_secs("30d"), Ok(30 * 86_400));
        assert_eq!(parse_duration_secs("90"), Ok(90));
        assert_eq!(parse_duration_secs("2h"), Ok(7200));
        assert!(parse_duration_secs("0").is_err());
        assert!(parse_duration_secs("3w").is_err());
        assert_eq!(utc(Some(0)), "1970-01-01T00:00:00Z");
        assert_eq!(utc(Some(1_795_824_000_000)), "2026-11-28T00:00:00Z");
        assert_eq!(utc(None), "-");
    }
}
