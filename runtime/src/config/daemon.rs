//! The daemon's own config: a TOML file, every field overridable by an
//! `LD_CONNECTORD_<FIELD>` environment variable (`LD_CONNECTORD_STREAM__BACKEND` for
//! nested fields).

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use figment::{
    providers::{Env, Format, Toml},
    Figment,
};
use serde::{Deserialize, Serialize};

use crate::stream::StreamSettings;

/// A secret string: never printed, never logged.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// A secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The daemon's config.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// Base URL of the Supervisor API (`http://` or `https://`).
    pub supervisor_url: String,
    /// A PEM file of CA certificates to trust for an `https://` supervisor, in addition
    /// to the system's roots (a private CA).
    #[serde(default)]
    pub supervisor_ca_file: Option<PathBuf>,
    /// The certificates of `supervisor_ca_file`, read when the config is loaded.
    #[serde(skip)]
    pub supervisor_ca: Vec<reqwest::Certificate>,
    /// The deployment this node belongs to.
    pub deployment_id: u64,
    /// This node's id (default: the host name).
    #[serde(default)]
    pub node_id: String,
    /// The API key, from the environment (`LD_CONNECTORD_API_KEY`).
    #[serde(default)]
    pub api_key: Secret,
    /// A file holding the API key (read when `api_key` is not set).
    #[serde(default)]
    pub api_key_file: Option<PathBuf>,
    /// Directory of plugin libraries.
    pub plugin_dir: PathBuf,
    /// Directory of local state.
    pub state_dir: PathBuf,
    /// The stream backend.
    #[serde(default)]
    pub stream: StreamSettings,
    /// Address of the local HTTP API (`/health`, `/metrics`, `/instances`).
    #[serde(default = "default_api_listen")]
    pub api_listen: SocketAddr,
    /// Longest wait for instances to drain at shutdown.
    #[serde(default = "ten_seconds", with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// How often the node sends a heartbeat.
    #[serde(default = "ten_seconds", with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// Longest long poll of the instance list.
    #[serde(default = "thirty_seconds", with = "humantime_serde")]
    pub long_poll_wait: Duration,
    /// Restarts of a failing instance before it is reported `failed`.
    #[serde(default = "five")]
    pub max_restarts: u32,
    /// First delay between restarts (doubling, with jitter).
    #[serde(default = "one_second", with = "humantime_serde")]
    pub restart_backoff: Duration,
    /// Longest delay between restarts.
    #[serde(default = "one_minute", with = "humantime_serde")]
    pub restart_backoff_max: Duration,
    /// Restart a failed instance by itself (after `max_restarts` gave up), with a
    /// long backoff growing from `auto_restart_backoff` to `auto_restart_backoff_max`;
    /// the status says when the next attempt is.
    #[serde(default = "yes")]
    pub auto_restart: bool,
    /// First wait before an automatic restart (doubling, with jitter).
    #[serde(default = "five_minutes", with = "humantime_serde")]
    pub auto_restart_backoff: Duration,
    /// Longest wait before an automatic restart.
    #[serde(default = "one_hour", with = "humantime_serde")]
    pub auto_restart_backoff_max: Duration,
    /// Longest a single plugin call may take.
    #[serde(default = "one_minute", with = "humantime_serde")]
    pub call_timeout: Duration,
}

fn default_api_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9780))
}
fn yes() -> bool {
    true
}
fn five_minutes() -> Duration {
    Duration::from_secs(300)
}
fn one_hour() -> Duration {
    Duration::from_secs(3600)
}
fn ten_seconds() -> Duration {
    Duration::from_secs(10)
}
fn thirty_seconds() -> Duration {
    Duration::from_secs(30)
}
fn one_second() -> Duration {
    Duration::from_secs(1)
}
fn one_minute() -> Duration {
    Duration::from_secs(60)
}
fn five() -> u32 {
    5
}

/// A daemon config that cannot be used; names the field.
#[derive(Debug, thiserror::Error)]
#[error("invalid config: {0}")]
pub struct DaemonConfigError(String);

impl DaemonConfigError {
    /// An error with this message (which names the field).
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// Environment variables with our prefix that are not config fields.
const NOT_FIELDS: &[&str] = &["log", "plugin_cache"];

impl DaemonConfig {
    /// Loads the file (when given), then applies `LD_CONNECTORD_*` overrides, then
    /// reads the API key file and checks what depends on several fields.
    pub fn load(file: Option<&Path>) -> Result<DaemonConfig, DaemonConfigError> {
        let mut figment = Figment::new();
        if let Some(file) = file {
            if !file.exists() {
                return Err(DaemonConfigError(format!(
                    "{}: no such file",
                    file.display()
                )));
            }
            figment = figment.merge(Toml::file(file));
        }
        figment = figment.merge(
            Env::prefixed("LD_CONNECTORD_")
                .split("__")
                .ignore(NOT_FIELDS),
        );
        Self::from_figment(figment)
    }

    /// Builds from a figment (tests and standalone mode start from defaults).
    pub fn from_figment(figment: Figment) -> Result<DaemonConfig, DaemonConfigError> {
        let mut config: DaemonConfig = figment.extract().map_err(|e| {
            let e = e.into_iter().next().expect("at least one error");
            let path = e.path.join(".");
            DaemonConfigError(if path.is_empty() {
                e.kind.to_string()
            } else {
                format!("{path}: {}", e.kind)
            })
        })?;
        if config.node_id.is_empty() {
            config.node_id = std::fs::read_to_string("/etc/hostname")
                .map(|h| h.trim().to_string())
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "node".into());
        }
        if config.api_key.is_empty() {
            if let Some(file) = &config.api_key_file {
                let key = std::fs::read_to_string(file).map_err(|e| {
                    DaemonConfigError(format!("api_key_file: cannot read {}: {e}", file.display()))
                })?;
                config.api_key = Secret::new(key.trim());
            }
        }
        if config.api_key.is_empty() {
            return Err(DaemonConfigError(
                "api_key: missing (set LD_CONNECTORD_API_KEY or api_key_file)".into(),
            ));
        }
        if !config.supervisor_url.starts_with("http://")
            && !config.supervisor_url.starts_with("https://")
        {
            return Err(DaemonConfigError(format!(
                "supervisor_url: `{}` is not an http(s) URL",
                config.supervisor_url
            )));
        }
        if let Some(file) = &config.supervisor_ca_file {
            let pem = std::fs::read(file).map_err(|e| {
                DaemonConfigError(format!(
                    "supervisor_ca_file: cannot read {}: {e}",
                    file.display()
                ))
            })?;
            config.supervisor_ca = reqwest::Certificate::from_pem_bundle(&pem)
                .ok()
                .filter(|certs| !certs.is_empty())
                .ok_or_else(|| {
                    DaemonConfigError(format!(
                        "supervisor_ca_file: {} holds no PEM certificate",
                        file.display()
                    ))
                })?;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_toml(text: &str) -> Result<DaemonConfig, DaemonConfigError> {
        DaemonConfig::from_figment(Figment::from(Toml::string(text)))
    }

    const BASE: &str = r#"
supervisor_url = "http://127.0.0.1:8080"
deployment_id = 611298765432109056
node_id = "n1"
api_key = "k"
plugin_dir = "/p"
state_dir = "/s"
"#;

    #[test]
    fn defaults_fill_the_rest() {
        let c = from_toml(BASE).unwrap();
        assert_eq!(c.deployment_id, 611298765432109056);
        assert_eq!(c.shutdown_timeout, Duration::from_secs(10));
        assert_eq!(c.stream, StreamSettings::default());
        assert_eq!(c.api_listen.to_string(), "127.0.0.1:9780");
        assert_eq!(format!("{:?}", c.api_key), "<redacted>");
    }

    #[test]
    fn bad_fields_are_named() {
        let cases = [
            (
                format!("{BASE}shutdown_timeout = \"soon\""),
                "shutdown_timeout",
            ),
            (format!("{BASE}colour = 1"), "colour"),
            (BASE.replace("611298765432109056", "\"x\""), "deployment_id"),
            (
                BASE.replace("http://127.0.0.1:8080", "ftp://x"),
                "supervisor_url",
            ),
            (BASE.replace("api_key = \"k\"", ""), "api_key: missing"),
            (format!("{BASE}[stream]\nbackend = \"kafka\""), "stream"),
            (
                format!("{BASE}[stream]\nbackend = \"embedded\"\ndurability = \"never\""),
                "stream: durability: `never`",
            ),
        ];
        for (text, field) in cases {
            let err = from_toml(&text).unwrap_err().to_string();
            assert!(err.contains(field), "expected `{field}` in `{err}`");
        }
    }

    #[test]
    fn nested_overrides_reach_the_backend_settings() {
        // What `LD_CONNECTORD_STREAM__DURABILITY=250ms` and `..._PARTITIONS=3` merge in.
        let figment = Figment::from(Toml::string(&format!(
            "{BASE}[stream]\nbackend = \"embedded\"\nretention_age = \"1h\""
        )))
        .merge(("stream.durability", "250ms"))
        .merge(("stream.partitions", 3));
        let c = DaemonConfig::from_figment(figment).unwrap();
        let StreamSettings::Embedded(e) = c.stream else {
            panic!()
        };
        assert_eq!(e.durability.to_string(), "250ms");
        assert_eq!(e.partitions, 3);
        assert_eq!(e.retention_age, Some(Duration::from_secs(3600)));
    }

    #[test]
    fn iggy_backend_parses() {
        let c = from_toml(&format!(
            "{BASE}[stream]\nbackend = \"iggy\"\naddress = \"127.0.0.1:8090\""
        ))
        .unwrap();
        let StreamSettings::Iggy(iggy) = c.stream else {
            panic!()
        };
        assert_eq!(
            (iggy.address.as_str(), iggy.username.as_str()),
            ("127.0.0.1:8090", "iggy")
        );
    }
}
