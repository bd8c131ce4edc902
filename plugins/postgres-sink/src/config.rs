//! The sink's `plugin_config`, and the settings checked out of it before any I/O.

use std::fmt;

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
    /// Log every written batch at info level (default: debug). Iggy's name.
    #[serde(default)]
    pub verbose_logging: bool,
    /// Accepted for Iggy's configs, no effect: retrying is the host's job (a transient
    /// error goes back to the daemon, which retries with backoff).
    #[serde(default)]
    pub max_retries: Option<u32>,
    /// Accepted for Iggy's configs, no effect (see `max_retries`).
    #[serde(default)]
    pub retry_delay: Option<String>,
    /// Accepted for Iggy's configs, no effect: each batch is written with one `COPY`;
    /// the stream's `batch_length` sets its size.
    #[serde(default)]
    pub batch_size: Option<u32>,
    /// Accepted for Iggy's configs: messages here carry no checksum, so `true` has no
    /// effect.
    #[serde(default)]
    pub include_checksum: Option<bool>,
    /// Accepted for Iggy's configs: `true` has no effect (the table has one timestamp
    /// column, `ld_timestamp`).
    #[serde(default)]
    pub include_origin_timestamp: Option<bool>,
}

fn yes() -> bool {
    true
}

fn one() -> u32 {
    1
}

const HOST_RETRIES: &str =
    "retrying is the host's job: a transient error goes back to the daemon, which retries with backoff";

/// The fields of `config` that are set but have no effect, with why.
fn unused_fields(config: &PostgresSinkConfig) -> Vec<Unused> {
    let mut unused = Vec::new();
    let mut note = |set: bool, field: &'static str, reason: &'static str| {
        if set {
            unused.push(Unused { field, reason });
        }
    };
    note(config.max_retries.is_some(), "max_retries", HOST_RETRIES);
    note(config.retry_delay.is_some(), "retry_delay", HOST_RETRIES);
    note(
        config.batch_size.is_some(),
        "batch_size",
        "each batch is written with one COPY; the stream's batch_length sets its size",
    );
    note(
        config.include_checksum == Some(true),
        "include_checksum",
        "messages carry no checksum here",
    );
    note(
        config.include_origin_timestamp == Some(true),
        "include_origin_timestamp",
        "the table has one timestamp column, ld_timestamp",
    );
    note(
        config.max_connections > 1,
        "max_connections",
        "batches are written one at a time over one connection",
    );
    unused
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

pub use ld_postgres_common::{quote_ident, PgConnector, SslMode, TableName, TlsSettings, Unused};

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
    /// Log each written batch at info level.
    pub verbose: bool,
    /// Fields set in the config that have no effect.
    pub unused: Vec<Unused>,
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
        Ok(Settings {
            connector,
            table,
            auto_create_table: config.auto_create_table,
            payload_format: config.payload_format,
            include_metadata: config.include_metadata,
            verbose: config.verbose_logging,
            unused: unused_fields(&config),
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(config: serde_json::Value) -> Result<Settings, PluginError> {
        let config: PostgresSinkConfig =
            serde_json::from_value(config).map_err(PluginError::invalid_config)?;
        Settings::from_config(config, "orders-pg")
    }

    fn fields(s: &Settings) -> Vec<&str> {
        s.unused.iter().map(|u| u.field).collect()
    }

    #[test]
    fn iggy_postgres_sink_config_loads_and_names_what_it_does_not_use() {
        // `[plugin_config]` of Iggy's core/connectors/sinks/postgres_sink/config.toml,
        // plus its remaining fields.
        let s = settings(serde_json::json!({
            "connection_string": "postgresql://user:pass@localhost:5432/database",
            "target_table": "iggy_messages",
            "batch_size": 100,
            "max_connections": 10,
            "auto_create_table": true,
            "include_metadata": true,
            "include_checksum": true,
            "include_origin_timestamp": true,
            "payload_format": "bytea",
            "verbose_logging": true,
            "max_retries": 3,
            "retry_delay": "1s",
        }))
        .unwrap();
        assert_eq!(s.table, TableName::parse("public.iggy_messages").unwrap());
        assert!(s.auto_create_table && s.include_metadata && s.verbose);
        assert_eq!(s.payload_format, PayloadFormat::Bytea);
        assert_eq!(
            fields(&s),
            [
                "max_retries",
                "retry_delay",
                "batch_size",
                "include_checksum",
                "include_origin_timestamp",
                "max_connections"
            ]
        );
        let line = ld_postgres_common::describe_unused(&s.unused);
        assert!(
            line.starts_with("max_retries, retry_delay (retrying is the host's job"),
            "{line}"
        );
        assert!(!line.contains("pass"), "no secret in the warning: {line}");
    }

    #[test]
    fn values_that_ask_for_what_happens_anyway_are_not_named() {
        let s = settings(serde_json::json!({
            "connection_string": "postgres://u:p@db/shop",
            "target_table": "orders",
            "include_checksum": false,
            "include_origin_timestamp": false,
            "max_connections": 1,
            "payload_format": "json",
        }))
        .unwrap();
        assert!(s.unused.is_empty(), "{:?}", fields(&s));
        assert!(!s.verbose);
        assert_eq!(s.payload_format, PayloadFormat::Jsonb);
    }

    #[test]
    fn a_wrong_field_is_still_refused() {
        let err = settings(serde_json::json!({
            "connection_string": "postgres://u:p@db/shop",
            "target_table": "orders",
            "target_tabel": "x",
        }))
        .err()
        .unwrap();
        assert_eq!(err.kind(), ld_plugin_api::ErrorKind::InvalidConfig);
        assert!(
            err.message().contains("unknown field `target_tabel`"),
            "{err}"
        );
    }
}
