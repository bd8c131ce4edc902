//! What the PostgreSQL sink and source share: table names, durations, connection
//! strings that are never echoed, TLS (`sslmode` as libpq, on rustls), opening
//! connections, and how tokio-postgres errors read and whether they are worth a retry.

mod connector;
mod tls;
mod unused;

use std::{error::Error as _, fmt, str::FromStr, time::Duration};

use tokio_postgres::config::Host;

pub use connector::{ConfigError, ConnectError, PgConnector, TlsSettings};
pub use tls::{CaSource, SslMode};
pub use unused::{describe_unused, warn_unused, Unused};

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

/// Config durations (`250ms`, `1s`, `2m`), shared by every plugin through the SDK.
pub use ld_plugin_api::parse_duration;

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
/// `sslmode` values beyond `disable | prefer | require` and `sslrootcert` are not known
/// here: [`PgConnector::new`] takes them out first.
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

/// One line describing a tokio-postgres error: the server's message, detail, hint and
/// where it happened, or the chain of causes of a client-side failure.
pub fn describe(err: &tokio_postgres::Error) -> String {
    if let Some(db) = err.as_db_error() {
        let mut text = format!("{} (SQLSTATE {})", db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            text.push_str(&format!("; {detail}"));
        }
        if let Some(hint) = db.hint() {
            text.push_str(&format!("; hint: {hint}"));
        }
        if let Some(place) = db.where_() {
            text.push_str(&format!("; at {place}"));
        }
        return text.replace('\n', " ");
    }
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text.replace('\n', " ")
}

/// Transient: the connection broke or timed out, the server is shutting down or
/// starting, out of connections or resources, a serialization failure, deadlock or lock
/// timeout. Everything else (authentication, missing database or table, wrong types,
/// bad data) will fail again the same way.
pub fn is_transient(err: &tokio_postgres::Error) -> bool {
    match err.code() {
        Some(code) => {
            let code = code.code();
            code.starts_with("08") // connection exception
                || code.starts_with("53") // insufficient resources
                || code.starts_with("57P") // admin/crash shutdown, cannot connect now
                || matches!(code, "40001" | "40P01" | "55P03" | "57014" | "58000" | "58030")
        }
        None => {
            // Client-side: a closed connection, an I/O error or a timeout is transient;
            // a configuration problem (e.g. the server wants a password we lack) is not.
            let text = describe(err);
            !(text.contains("invalid configuration") || text.contains("password missing"))
        }
    }
}

/// Whether the connection itself is gone (closed, broken, or ended by the server, as
/// in a restart or `pg_terminate_backend`): a new connection may well succeed at once.
/// A narrower question than [`is_transient`]: a serialization failure is transient,
/// but the connection is fine.
pub fn is_connection_lost(err: &tokio_postgres::Error) -> bool {
    if err.is_closed() {
        return true;
    }
    match err.code() {
        // connection exception; admin shutdown, crash shutdown, cannot connect now
        Some(code) => {
            let code = code.code();
            code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
        }
        // Client-side: an I/O error on the socket.
        None => {
            let mut source = err.source();
            while let Some(cause) = source {
                if cause.is::<std::io::Error>() {
                    return true;
                }
                source = cause.source();
            }
            false
        }
    }
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
        let (pg, _) = parse_connection_string("postgres://u:p@db/x?sslmode=require", "x").unwrap();
        assert_eq!(pg.get_ssl_mode(), tokio_postgres::config::SslMode::Require);
    }
}
