//! The settings of the `iggy` backend. Compiled into every build, so that a build
//! without the `iggy` feature still reads a config naming it and can say what is
//! missing (see [`super::StreamError::NotBuilt`]).

use serde::{Deserialize, Serialize};

use super::settings::{one_partition, partitions, SettingsError};
use crate::config::Secret;

/// Where and how to reach an Apache Iggy server (`[stream] backend = "iggy"`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IggySettings {
    /// `host:port` of its TCP endpoint.
    pub address: String,
    /// User name.
    #[serde(default = "iggy_user")]
    pub username: String,
    /// Password.
    #[serde(default = "iggy_password")]
    pub password: Secret,
    /// Create missing streams, topics and consumer groups.
    #[serde(default = "yes")]
    pub create_missing: bool,
    /// Partitions of the topics this node creates (existing topics keep theirs).
    #[serde(default = "one_partition", deserialize_with = "partitions")]
    pub partitions: u32,
}

fn iggy_user() -> String {
    "iggy".into()
}
fn iggy_password() -> Secret {
    Secret::new("iggy")
}
fn yes() -> bool {
    true
}

impl IggySettings {
    /// The server at `address`, with the defaults: user `iggy`/`iggy`, creating what is
    /// missing, one partition per new topic.
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            username: iggy_user(),
            password: iggy_password(),
            create_missing: true,
            partitions: 1,
        }
    }

    /// From the part of `iggy://[user:password@]host:port` after the scheme.
    pub(super) fn from_url(rest: &str) -> Result<Self, SettingsError> {
        let (credentials, address) = match rest.rsplit_once('@') {
            Some((c, a)) => (Some(c), a),
            None => (None, rest),
        };
        if address.is_empty() || !address.contains(':') {
            return Err(SettingsError::new(
                "--stream",
                format!("`{address}` is not host:port"),
            ));
        }
        let mut settings = Self::new(address.trim_end_matches('/'));
        if let Some(c) = credentials {
            let (user, password) = c.split_once(':').ok_or_else(|| {
                SettingsError::new("--stream", "credentials must be user:password")
            })?;
            settings.username = user.to_string();
            settings.password = Secret::new(password);
        }
        Ok(settings)
    }
}
