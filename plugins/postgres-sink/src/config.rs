//! The sink's `plugin_config`, and the settings checked out of it before any I/O.

use std::{fmt, time::Duration};

use ld_plugin_api::PluginError;

/// `plugin_config` of the PostgreSQL sink.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostgresSinkConfig {
    /// Where to connect: a URL `postgres://user:password@host:5432/database` or a
    /// `host=... user=... password=... dbname=...` string. Secret: never logged or
    /// echoed; the password is replaced by `***` in every message.
    pub connection_string: ld_plugin_api::Secret,
    /// TLS: `disable`, `prefer` (the default: TLS when the server offers it, without
    /// checking its certificate, else plain), `require` (TLS, certificate not checked),
    /// `verify-ca` (TLS, the certificate must be signed by a trusted CA) or `verify-full`
    /// (also: the certificate must name the host connected to). As libpq's `sslmode`,
    /// which may be given inside `connection_string` instead.
    #[serde(default)]
    pub ssl_mode: Option<SslMode>,
    /// TLS: a PEM file of the CAs to trust for `verify-ca` and `verify-full` (default:
    /// the system's trusted CAs; `system` says so explicitly). With `require`, a CA file
    /// makes the chain checked too, as libpq does. As libpq's `sslrootcert`, which may be
    /// given inside `connection_string` instead.
    #[serde(default)]
    pub ssl_root_cert: Option<String>,
    /// The table to write into: `table` (schema `public`) or `schema.table`.
    pub target_table: String,
    /// Create the table (with the columns this sink writes) when it does not exist.
    #[serde(default)]
    pub auto_create_table: bool,
    /// Type of the `payload` column: `jsonb` (payloads must be JSON), `bytea` (any
    /// bytes) or `text` (payloads must be UTF-8).
    #[serde(default)]
    pub payload_format: PayloadFormat,
    /// Also write each message's stream, topic, partition, offset, message id and
    /// timestamp; this also makes a redelivered batch add no duplicate rows.
    #[serde(default = "yes")]
    pub include_metadata: bool,
    /// Most connections the sink opens. Batches arrive one at a time and each is written
    /// in one transaction over one connection, so more than 1 has no effect today.
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub max_connections: u32,
    /// How many times a batch is retried inside the sink after a transient error
    /// (connection lost, serialization failure, server shutting down) before the
    /// error goes back to the host, which retries again with its own backoff.
    #[serde(default = "three")]
    pub max_retries: u32,
    /// Wait before the first retry, doubled on each further retry (at most 30 s):
    /// e.g. `"250ms"`, `"1s"`, `"2m"`.
    #[serde(default = "one_second")]
    pub retry_delay: String,
}

fn yes() -> bool {
    true
}

fn one() -> u32 {
    1
}

fn three() -> u32 {
    3
}

fn one_second() -> String {
    "1s".to_string()
}

/// How payloads are stored.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum PayloadFormat {
    /// A `jsonb` (or `json`) column.
    #[default]
    #[serde(alias = "json")]
    Jsonb,
    /// A `bytea` column.
    Bytea,
    /// A `text` (or `varchar`) column.
    Text,
}

impl PayloadFormat {
    /// The name used in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            PayloadFormat::Jsonb => "jsonb",
            PayloadFormat::Bytea => "bytea",
            PayloadFormat::Text => "text",
        }
    }
}

pub use ld_postgres_common::{
    parse_duration, quote_ident, PgConnector, SslMode, TableName, TlsSettings,
};

/// Everything the sink needs from its config, checked.
pub struct Settings {
    /// Opens connections (holds the password and the TLS setup).
    pub connector: PgConnector,
    /// Where rows go.
    pub table: TableName,
    /// Create the table when missing.
    pub auto_create_table: bool,
    /// Payload column type.
    pub payload_format: PayloadFormat,
    /// Write metadata columns and deduplicate.
    pub include_metadata: bool,
    /// Retries inside the sink.
    pub max_retries: u32,
    /// First retry delay.
    pub retry_delay: Duration,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("connector", &self.connector)
            .field("table", &self.table)
            .field("payload_format", &self.payload_format)
            .field("include_metadata", &self.include_metadata)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// Checks a config; no I/O.
    pub fn from_config(
        config: PostgresSinkConfig,
        instance: &str,
    ) -> Result<Settings, PluginError> {
        let invalid = |field: &str, reason: String| {
            PluginError::invalid_config(format!("plugin_config.{field}: {reason}"))
        };
        let connector = PgConnector::new(
            config.connection_string.expose(),
            TlsSettings {
                ssl_mode: config.ssl_mode,
                ssl_root_cert: config.ssl_root_cert.as_deref(),
            },
            &format!("ld-connectord {instance}"),
        )
        .map_err(|e| invalid(e.field, e.reason))?;
        let table =
            TableName::parse(&config.target_table).map_err(|r| invalid("target_table", r))?;
        if config.max_connections == 0 {
            return Err(invalid("max_connections", "must be at least 1".to_string()));
        }
        let retry_delay =
            parse_duration(&config.retry_delay).map_err(|r| invalid("retry_delay", r))?;
        Ok(Settings {
            connector,
            table,
            auto_create_table: config.auto_create_table,
            payload_format: config.payload_format,
            include_metadata: config.include_metadata,
            max_retries: config.max_retries,
            retry_delay,
        })
    }

    /// `user@host:port/database`, safe to print.
    pub fn target(&self) -> &str {
        self.connector.target()
    }

    /// Replaces the password in `text` with `***`.
    pub fn scrub(&self, text: &str) -> String {
        self.connector.scrub(text)
    }

    /// The wait before retry number `attempt` (from 0): doubling, at most 30 s.
    pub fn backoff(&self, attempt: u32) -> Duration {
        self.retry_delay
            .saturating_mul(1u32 << attempt.min(16))
            .min(Duration::from_secs(30))
    }
}
