//! Errors inside the source, sorted into "retry" and "give up".

use std::error::Error as _;

use ld_plugin_api::PluginError;

/// What went wrong while connecting, checking the setup or reading.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The server could not be reached or refused us.
    #[error("cannot connect to {target}: {reason}")]
    Connect {
        /// `user@host:port/database`.
        target: String,
        /// Why, in words.
        reason: String,
        /// Worth retrying (network) or not (authentication, missing database).
        transient: bool,
    },
    /// The database is not set up the way the config needs (missing table or column,
    /// `wal_level` not logical, a slot of another plugin).
    #[error("{0}")]
    Setup(String),
    /// A statement failed.
    #[error("{context}: {reason}")]
    Db {
        /// What the source was doing.
        context: String,
        /// What the server or the connection said.
        reason: String,
        /// Worth retrying.
        transient: bool,
    },
}

impl SourceError {
    /// Whether retrying the same work may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            SourceError::Connect { transient, .. } | SourceError::Db { transient, .. } => {
                *transient
            }
            SourceError::Setup(_) => false,
        }
    }

    /// A statement error, classified.
    pub fn db(context: impl Into<String>, err: &tokio_postgres::Error) -> SourceError {
        SourceError::Db {
            context: context.into(),
            reason: describe(err),
            transient: is_transient(err),
        }
    }

    /// A connection error, classified.
    pub fn connect(target: &str, err: &tokio_postgres::Error) -> SourceError {
        SourceError::Connect {
            target: target.to_string(),
            reason: describe(err),
            transient: is_transient(err),
        }
    }

    /// The error for the host, with the password scrubbed out.
    pub fn into_plugin_error(self, scrub: impl Fn(&str) -> String) -> PluginError {
        let message = scrub(&self.to_string());
        if self.is_transient() {
            PluginError::transient(message)
        } else {
            PluginError::fatal(message)
        }
    }
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
