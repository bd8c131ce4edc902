//! Errors inside the sink, sorted into "retry" and "give up", and turned into a message
//! a person understands at the boundary.

use iceberg::ErrorKind;
use ld_plugin_api::PluginError;

/// What went wrong while opening the catalog, loading a table, converting or committing.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The catalog could not be reached or answered with an error.
    #[error("{catalog}: {reason}")]
    Catalog {
        /// Which catalog (safe to print).
        catalog: String,
        /// Why, in words.
        reason: String,
        /// Worth retrying.
        transient: bool,
    },
    /// The table does not exist and may not be created.
    #[error("table {table} does not exist (create it, or add `create_table` with a schema to the config)")]
    MissingTable {
        /// `namespace.table`.
        table: String,
    },
    /// A table-level failure (load, write, commit).
    #[error("table {table}: {context}: {reason}")]
    Table {
        /// `namespace.table`.
        table: String,
        /// What the sink was doing.
        context: String,
        /// What went wrong.
        reason: String,
        /// Worth retrying.
        transient: bool,
    },
    /// A message does not fit (with `on_record_error = fail`).
    #[error("{0} (set on_record_error = \"skip\" to leave such messages out)")]
    Record(String),
}

impl SinkError {
    /// Whether retrying the same work may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            SinkError::Catalog { transient, .. } | SinkError::Table { transient, .. } => *transient,
            SinkError::MissingTable { .. } | SinkError::Record(_) => false,
        }
    }

    /// A catalog error, classified.
    pub fn catalog(catalog: &str, err: &iceberg::Error) -> SinkError {
        SinkError::Catalog {
            catalog: catalog.to_string(),
            reason: describe(err),
            transient: is_transient(err),
        }
    }

    /// A table error, classified.
    pub fn table(table: &str, context: &str, err: &iceberg::Error) -> SinkError {
        SinkError::Table {
            table: table.to_string(),
            context: context.to_string(),
            reason: describe(err),
            transient: is_transient(err),
        }
    }

    /// The error for the host, with secrets scrubbed out.
    pub fn into_plugin_error(self, scrub: impl Fn(&str) -> String) -> PluginError {
        let message = scrub(&self.to_string());
        if self.is_transient() {
            PluginError::transient(message)
        } else {
            PluginError::fatal(message)
        }
    }
}

/// Transient: I/O, network, database and commit conflicts (`Unexpected` is what the
/// catalogs and storage report for those). Not transient: invalid data or metadata,
/// unsupported features, missing tables or namespaces.
pub fn is_transient(err: &iceberg::Error) -> bool {
    match err.kind() {
        ErrorKind::Unexpected | ErrorKind::CatalogCommitConflicts => true,
        ErrorKind::PreconditionFailed
        | ErrorKind::DataInvalid
        | ErrorKind::NamespaceAlreadyExists
        | ErrorKind::TableAlreadyExists
        | ErrorKind::NamespaceNotFound
        | ErrorKind::TableNotFound
        | ErrorKind::FeatureUnsupported => false,
        _ => err.retryable(),
    }
}

/// One line: the error with its causes.
pub fn describe(err: &iceberg::Error) -> String {
    let mut text = err.message().to_string();
    let mut source = std::error::Error::source(err);
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
