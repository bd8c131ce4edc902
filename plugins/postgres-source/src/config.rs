//! The source's `plugin_config`, and helpers to check it before any I/O.

/// `plugin_config` of the PostgreSQL source.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostgresSourceConfig {
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
    /// `polling` (read new rows of one table by a strictly increasing column) or `cdc`
    /// (inserts, updates and deletes of the whole database from a logical replication
    /// slot; needs `wal_level = logical`).
    #[serde(default)]
    pub mode: Mode,
    /// Polling: the table to read, `table` (schema `public`) or `schema.table`.
    #[serde(default)]
    pub table: Option<String>,
    /// Polling: a strictly increasing column (an identity or sequence id, an
    /// insert timestamp); rows are read in its order, each once.
    #[serde(default = "default_tracking_column")]
    pub tracking_column: String,
    /// Polling: start after this value of the tracking column (absent: from the first
    /// row). Only used when the source has no saved state yet.
    #[serde(default)]
    pub initial_value: Option<String>,
    /// Most rows (polling) or changes (CDC, whole transactions) per batch.
    #[serde(default = "default_batch_size")]
    #[schemars(range(min = 1))]
    pub batch_size: u32,
    /// How long to wait before looking again when nothing new was found:
    /// e.g. `"500ms"`, `"1s"`.
    #[serde(default = "default_poll_interval")]
    pub poll_interval: String,
    /// CDC: the logical replication slot (plugin `test_decoding`), created when missing.
    /// Default: `ld_` + the instance key.
    #[serde(default)]
    pub slot_name: Option<String>,
    /// CDC: only changes of these tables (`table` or `schema.table`); empty: all tables.
    #[serde(default)]
    pub tables: Vec<String>,
    /// Retries inside the source after a transient error (connection lost, server
    /// shutting down) before the error goes back to the host.
    #[serde(default = "three")]
    pub max_retries: u32,
    /// Wait before the first retry, doubled on each further retry (at most 30 s).
    #[serde(default = "one_second")]
    pub retry_delay: String,
}

fn default_tracking_column() -> String {
    "id".to_string()
}

fn default_batch_size() -> u32 {
    1000
}

fn default_poll_interval() -> String {
    "1s".to_string()
}

fn three() -> u32 {
    3
}

fn one_second() -> String {
    "1s".to_string()
}

/// How the source reads.
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
pub enum Mode {
    /// New rows of one table, by a strictly increasing column.
    #[default]
    Polling,
    /// Row changes from a logical replication slot.
    Cdc,
}

pub use ld_postgres_common::{
    parse_duration, quote_ident, PgConnector, SslMode, TableName, TlsSettings,
};
