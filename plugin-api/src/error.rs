//! The error a plugin returns to the host.

use std::fmt;

use abi_stable::{std_types::RString, StableAbi};

/// What kind of failure a [`PluginError`] reports; the host decides what to do from it.
///
/// ```
/// use ld_plugin_api::{ErrorKind, PluginError};
/// let err = PluginError::transient("connection reset");
/// assert_eq!(err.kind(), ErrorKind::Transient);
/// ```
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The instance config is wrong; retrying cannot help until the config changes.
    InvalidConfig = 0,
    /// A passing failure (network blip, lock timeout): the host retries the same call
    /// with exponential backoff.
    Transient = 1,
    /// The instance cannot go on (missing table, bad credentials): the host stops the
    /// run and starts the instance again after a backoff, up to the node's
    /// `max_restarts`; then it reports it `failed` with the message (and, unless turned
    /// off, tries again after a long, growing backoff).
    Fatal = 2,
    /// The plugin panicked; the SDK caught the panic at the boundary.
    Panicked = 3,
}

impl ErrorKind {
    /// A short lower-case name, as used in logs and status reasons.
    ///
    /// ```
    /// assert_eq!(ld_plugin_api::ErrorKind::InvalidConfig.as_str(), "invalid config");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidConfig => "invalid config",
            ErrorKind::Transient => "transient",
            ErrorKind::Fatal => "fatal",
            ErrorKind::Panicked => "panicked",
        }
    }
}

/// An error crossing the plugin boundary: a [`ErrorKind`] and a message for a person.
///
/// ```
/// use ld_plugin_api::PluginError;
/// let err = PluginError::fatal("table \"orders\" does not exist");
/// assert_eq!(err.to_string(), "fatal: table \"orders\" does not exist");
/// ```
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct PluginError {
    kind: ErrorKind,
    message: RString,
}

impl PluginError {
    /// An error of the given kind.
    ///
    /// ```
    /// use ld_plugin_api::{ErrorKind, PluginError};
    /// let err = PluginError::new(ErrorKind::Transient, "timed out");
    /// assert_eq!(err.message(), "timed out");
    /// ```
    pub fn new(kind: ErrorKind, message: impl fmt::Display) -> Self {
        Self {
            kind,
            message: RString::from(message.to_string()),
        }
    }

    /// The config is wrong.
    ///
    /// ```
    /// let err = ld_plugin_api::PluginError::invalid_config("rate: must be positive");
    /// assert!(err.to_string().contains("rate"));
    /// ```
    pub fn invalid_config(message: impl fmt::Display) -> Self {
        Self::new(ErrorKind::InvalidConfig, message)
    }

    /// A failure worth retrying.
    ///
    /// ```
    /// let err = ld_plugin_api::PluginError::transient("connection reset");
    /// assert!(err.is_retryable());
    /// ```
    pub fn transient(message: impl fmt::Display) -> Self {
        Self::new(ErrorKind::Transient, message)
    }

    /// A failure that ends the instance's run (see [`ErrorKind::Fatal`]).
    ///
    /// ```
    /// let err = ld_plugin_api::PluginError::fatal("authentication failed");
    /// assert!(!err.is_retryable());
    /// ```
    pub fn fatal(message: impl fmt::Display) -> Self {
        Self::new(ErrorKind::Fatal, message)
    }

    /// A caught panic; built by the SDK, rarely by authors.
    ///
    /// ```
    /// let err = ld_plugin_api::PluginError::panicked("index out of bounds");
    /// assert_eq!(err.kind(), ld_plugin_api::ErrorKind::Panicked);
    /// ```
    pub fn panicked(message: impl fmt::Display) -> Self {
        Self::new(ErrorKind::Panicked, message)
    }

    /// The kind of failure.
    ///
    /// ```
    /// let err = ld_plugin_api::PluginError::transient("x");
    /// assert_eq!(err.kind(), ld_plugin_api::ErrorKind::Transient);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the kind.
    ///
    /// ```
    /// assert_eq!(ld_plugin_api::PluginError::fatal("boom").message(), "boom");
    /// ```
    pub fn message(&self) -> &str {
        self.message.as_str()
    }

    /// Whether the host retries the failed call (only [`ErrorKind::Transient`]).
    ///
    /// ```
    /// assert!(ld_plugin_api::PluginError::transient("x").is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        self.kind == ErrorKind::Transient
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

impl std::error::Error for PluginError {}
