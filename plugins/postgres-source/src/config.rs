//! The source's `plugin_config`, and helpers to check it before any I/O.

/// `plugin_config` of the PostgreSQL source.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostgresSourceConfig {
    /// Where to connect: a URL `postgres://user:password@host:5432/database` or a
    /// `host=... user=... password=... dbname=...` string. Secret: never logged or
    /// echoed; the password is replaced by `***` in every message.
    pub connection_string: String,
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
    describe_target, parse_connection_string, parse_duration, quote_ident, TableName,
};

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn table_names() {
        let t = TableName::parse("orders").unwrap();
        assert_eq!((t.schema.as_str(), t.table.as_str()), ("public", "orders"));
        assert_eq!(t.to_string(), "\"public.orders\"");
        let t = TableName::parse("sales.\"Orders\"").unwrap();
        assert_eq!(t.quoted(), "\"sales\".\"Orders\"");
        assert!(TableName::parse("a.b.c").is_err());
        assert!(TableName::parse("").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 days").is_err());
    }

    #[test]
    fn connection_strings_never_echo_the_password() {
        let (pg, pw) = parse_connection_string("postgres://u:hunter22@db:5433/shop", "x").unwrap();
        assert_eq!(pw.as_deref(), Some("hunter22"));
        assert_eq!(describe_target(&pg), "u@db:5433/shop");
        let err =
            parse_connection_string("postgres://u:hunter22@db:notaport/shop", "x").unwrap_err();
        assert!(!err.contains("hunter22"), "{err}");
        let err = parse_connection_string("postgres://u:p@db/x?sslmode=require", "x").unwrap_err();
        assert!(err.contains("TLS"), "{err}");
    }
}
