//! Errors inside the source, sorted into "retry" and "give up".

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
        /// The connection is gone (closed, or ended by the server): reconnecting may
        /// help at once.
        connection_lost: bool,
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
            connection_lost: is_connection_lost(err),
        }
    }

    /// Whether the connection the work ran on is gone, so that a new one may succeed
    /// at once.
    pub fn is_connection_lost(&self) -> bool {
        matches!(
            self,
            SourceError::Db {
                connection_lost: true,
                ..
            }
        )
    }

    /// A connection error, already in words and classified.
    pub fn connect(target: &str, err: ConnectError) -> SourceError {
        SourceError::Connect {
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
