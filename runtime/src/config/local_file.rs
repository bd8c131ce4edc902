//! The optional settings file of `ld-connectord local` (`--config`): the stream backend
//! and the engine's settings, in the same TOML shape as the daemon's config.

use std::{net::SocketAddr, path::Path, time::Duration};

use serde::Deserialize;

use super::{DaemonConfigError, StreamSettings};

/// Settings of `local`; what is missing keeps the command line's value.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LocalFile {
    /// The stream backend (`[stream]`, as in the daemon's config).
    pub stream: Option<StreamSettings>,
    /// Address of the local API.
    pub api_listen: Option<SocketAddr>,
    /// Restarts of a failing instance before it is `failed`.
    pub max_restarts: Option<u32>,
    /// First delay between restarts.
    #[serde(default, with = "humantime_serde")]
    pub restart_backoff: Option<Duration>,
    /// Longest wait for instances to stop at shutdown.
    #[serde(default, with = "humantime_serde")]
    pub shutdown_timeout: Option<Duration>,
}

impl LocalFile {
    /// Reads the file; errors name the file and the field.
    pub fn load(path: &Path) -> Result<LocalFile, DaemonConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| DaemonConfigError::new(format!("{}: {e}", path.display())))?;
        toml::from_str(&text)
            .map_err(|e| DaemonConfigError::new(format!("{}: {}", path.display(), e.message())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_stream_and_names_bad_fields() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.toml");
        std::fs::write(
            &good,
            "api_listen = \"127.0.0.1:0\"\n[stream]\nbackend = \"iggy\"\naddress = \"127.0.0.1:8090\"\n",
        )
        .unwrap();
        let f = LocalFile::load(&good).unwrap();
        assert!(matches!(f.stream, Some(StreamSettings::Iggy { .. })));
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "colour = 1\n").unwrap();
        let err = LocalFile::load(&bad).unwrap_err().to_string();
        assert!(err.contains("colour") && err.contains("bad.toml"), "{err}");
    }
}
