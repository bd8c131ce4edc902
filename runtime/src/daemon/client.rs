//! The daemon's supervisor client is `ld-protocol`'s (the one client of the API, shared
//! with standalone mode and the tests); this module only lets it take the node's
//! configured key.

pub use ld_protocol::{Assignment, ClientError, SupervisorClient};

use crate::config::Secret;

impl From<Secret> for ld_protocol::ApiKey {
    fn from(key: Secret) -> Self {
        ld_protocol::ApiKey::new(key.expose())
    }
}
