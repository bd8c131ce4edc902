//! Errors inside the sink, sorted into "retry" and "give up", and turned into a message
//! a person understands (with every secret scrubbed) at the boundary.

use ld_plugin_api::PluginError;

/// What went wrong while talking to the cluster.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// No node could be reached, or a request timed out.
    #[error("cannot reach {node}: {reason}")]
    Unreachable {
        /// The node(s) tried.
        node: String,
        /// Why, in words.
        reason: String,
    },
    /// 401: the credentials are wrong or missing.
    #[error(
        "authentication failed at {node} (HTTP 401: {reason}); check username and password, or api_key"
    )]
    Auth {
        /// The node.
        node: String,
        /// What the server said (never the credentials).
        reason: String,
    },
    /// 403 on a request the sink cannot do without.
    #[error("{context}: {node} refused access (HTTP 403: {reason}); the user or API key lacks a privilege")]
    Forbidden {
        /// What the sink was doing.
        context: String,
        /// The node.
        node: String,
        /// What the server said.
        reason: String,
    },
    /// Another unexpected answer.
    #[error("{context}: HTTP {status} from {node}: {reason}")]
    Http {
        /// What the sink was doing.
        context: String,
        /// The node.
        node: String,
        /// The status.
        status: u16,
        /// What the server said.
        reason: String,
    },
    /// The index is missing and may not be created.
    #[error("index `{0}` does not exist (set create_index_if_not_exists = true to create it, or create it first)")]
    MissingIndex(String),
    /// The ingest pipeline is missing.
    #[error("ingest pipeline `{0}` does not exist on the cluster (create it, or fix plugin_config.pipeline)")]
    MissingPipeline(String),
    /// `ca_file` cannot be used.
    #[error("plugin_config.ca_file: {0}")]
    CaFile(String),
    /// The HTTP client cannot be built.
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
}

impl SinkError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            SinkError::Unreachable { .. } => true,
            SinkError::Http { status, .. } => *status == 429 || *status >= 500,
            SinkError::Auth { .. }
            | SinkError::Forbidden { .. }
            | SinkError::MissingIndex(_)
            | SinkError::MissingPipeline(_)
            | SinkError::CaFile(_)
            | SinkError::Client(_) => false,
        }
    }

    /// The error for the host, with secrets scrubbed out.
    pub fn into_plugin_error(self, scrub: impl Fn(&str) -> String) -> PluginError {
        let message = scrub(&self.to_string());
        match self {
            SinkError::CaFile(_) => PluginError::invalid_config(message),
            e if e.is_transient() => PluginError::transient(message),
            _ => PluginError::fatal(message),
        }
    }
}

/// One line for a reqwest error: its text and its causes.
pub fn describe(err: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = if err.is_timeout() {
        format!("timed out ({err})")
    } else {
        err.to_string()
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        let t = SinkError::Http {
            context: "bulk".into(),
            node: "http://h".into(),
            status: 503,
            reason: "x".into(),
        };
        assert!(t.is_transient());
        let e = t.into_plugin_error(|s| s.to_string());
        assert!(e.is_retryable());
        let a = SinkError::Auth {
            node: "http://h".into(),
            reason: "unable to authenticate user [u]".into(),
        };
        let e = a.into_plugin_error(|s| s.replace("[u]", "***"));
        assert_eq!(e.kind(), ld_plugin_api::ErrorKind::Fatal);
        assert!(e.message().contains("authentication failed") && !e.message().contains("[u]"));
        let m = SinkError::MissingIndex("orders".into()).into_plugin_error(|s| s.to_string());
        assert!(m.message().contains("create_index_if_not_exists"));
        assert_eq!(
            SinkError::CaFile("x".into())
                .into_plugin_error(|s| s.to_string())
                .kind(),
            ld_plugin_api::ErrorKind::InvalidConfig
        );
    }
}
