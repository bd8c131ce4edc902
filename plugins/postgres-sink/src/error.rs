//! Errors inside the sink, sorted into "retry" and "give up", and turned into a message
//! a person understands at the boundary.

use ld_plugin_api::PluginError;

/// What went wrong while connecting, checking the table or writing a batch.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
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
    /// The target table is missing and may not be created.
    #[error("table {table} does not exist (set auto_create_table = true to create it)")]
    MissingTable {
        /// `"schema.table"`.
        table: String,
    },
    /// The target table cannot take the rows this sink writes.
    #[error("table {table}: {problem}")]
    BadTable {
        /// `"schema.table"`.
        table: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// A statement failed.
    #[error("{context}: {reason}")]
    Db {
        /// What the sink was doing.
        context: String,
        /// What the server or the connection said.
        reason: String,
        /// Worth retrying.
        transient: bool,
        /// The connection is gone (closed, or ended by the server): reconnecting may
        /// help at once.
        connection_lost: bool,
    },
    /// The fast path met a row that already exists: write the batch through the
    /// deduplicating path instead.
    #[error("a row of the batch already exists")]
    Conflict,
}

impl SinkError {
    /// Whether retrying the same work may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            SinkError::Connect { transient, .. } | SinkError::Db { transient, .. } => *transient,
            SinkError::MissingTable { .. } | SinkError::BadTable { .. } => false,
            SinkError::Conflict => true,
        }
    }

    /// A statement error, classified.
    pub fn db(context: impl Into<String>, err: &tokio_postgres::Error) -> SinkError {
        SinkError::Db {
            context: context.into(),
            reason: describe(err),
            transient: is_transient(err),
            connection_lost: is_connection_lost(err),
        }
    }

    /// Whether the connection the work ran on is gone, so that a new one may succeed
    /// at once.
    pub fn is_connection_lost(&self) -> bool {
        matches!(
            self,
            SinkError::Db {
                connection_lost: true,
                ..
            }
        )
    }

    /// A connection error, already in words and classified.
    pub fn connect(target: &str, err: ConnectError) -> SinkError {
        SinkError::Connect {
            target: target.to_string(),
            reason: err.reason,
            transient: err.transient,
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

pub use ld_postgres_common::{describe, is_connection_lost, is_transient, ConnectError};
