//! The source's `plugin_config`, and helpers to check it before any I/O.

use std::{fmt, str::FromStr, time::Duration};

use tokio_postgres::config::{Host, SslMode};

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

/// A table name split into schema and table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    /// Schema, `public` unless given.
    pub schema: String,
    /// Table.
    pub table: String,
}

impl TableName {
    /// Parses `table` or `schema.table`; parts may be double-quoted.
    pub fn parse(text: &str) -> Result<TableName, String> {
        let parts: Vec<&str> = text.trim().split('.').collect();
        let unquote = |part: &str| -> Result<String, String> {
            let part = part.trim();
            let name = part
                .strip_prefix('"')
                .and_then(|p| p.strip_suffix('"'))
                .unwrap_or(part);
            if name.is_empty() || name.contains('"') || name.contains('\0') {
                return Err(format!(
                    "`{text}` is not a table name (expected `table` or `schema.table`)"
                ));
            }
            Ok(name.to_string())
        };
        match parts.as_slice() {
            [table] => Ok(TableName {
                schema: "public".to_string(),
                table: unquote(table)?,
            }),
            [schema, table] => Ok(TableName {
                schema: unquote(schema)?,
                table: unquote(table)?,
            }),
            _ => Err(format!(
                "`{text}` is not a table name (expected `table` or `schema.table`)"
            )),
        }
    }

    /// The name quoted for SQL: `"schema"."table"`.
    pub fn quoted(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.table))
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}.{}\"", self.schema, self.table)
    }
}

/// Quotes an SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Parses `250ms`, `1s`, `1.5s`, `2m`, `1h` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (e.g. \"500ms\", \"1s\", \"2m\")"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "`{text}` is not a duration (units: ms, s, m, h; e.g. \"500ms\")"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{text}` is out of range"))
}

/// A connection string made safe to print: `user@host:port/database`.
pub fn describe_target(pg: &tokio_postgres::Config) -> String {
    let user = pg.get_user().unwrap_or("?");
    let host = match pg.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = pg.get_ports().first().copied().unwrap_or(5432);
    let db = pg.get_dbname().unwrap_or(user);
    format!("{user}@{host}:{port}/{db}")
}

/// Parses a connection string without echoing it: the error names the problem only.
pub fn parse_connection_string(
    text: &str,
    application_name: &str,
) -> Result<(tokio_postgres::Config, Option<String>), String> {
    let mut pg = tokio_postgres::Config::from_str(text).map_err(|e| {
        // tokio-postgres' parse errors name the bad key, never the value; scrub anyway.
        let reason = e.to_string();
        let reason = if reason.contains(text) {
            "cannot be parsed".to_string()
        } else {
            reason
        };
        format!("not a valid PostgreSQL connection string ({reason}); expected postgres://user:password@host:5432/database")
    })?;
    if pg.get_user().is_none() {
        return Err("names no user (postgres://USER:password@host/database)".to_string());
    }
    if pg.get_ssl_mode() == SslMode::Require {
        return Err(
            "asks for sslmode=require, but this connector does not support TLS yet (use sslmode=disable or prefer)"
                .to_string(),
        );
    }
    if pg.get_connect_timeout().is_none() {
        pg.connect_timeout(Duration::from_secs(10));
    }
    if pg.get_application_name().is_none() {
        pg.application_name(application_name);
    }
    let password = pg
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .filter(|p| !p.is_empty());
    Ok((pg, password))
}

#[cfg(test)]
mod tests {
    use super::*;

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
