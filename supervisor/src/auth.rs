//! API keys and permissions.
//!
//! A key is 32 random bytes shown once, hex-encoded with an `ldk_` prefix; the store keeps
//! only its SHA-256, so a copy of the data directory does not leak usable keys. Keys are
//! not scoped to a deployment: this is a reference control plane for one operator.
//!
//! Permission rules (the seed names the first two; the node permission is ours):
//! - `deployment:connector:manage`: activate, delete, config, stop/start; also lets its
//!   holder read (list the catalog and instances), and makes catalog entries `permitted`;
//! - `deployment:connector:read`: list the catalog and the instances;
//! - `deployment:node`: what a node does: list instances (long poll), report status, heartbeat.

use std::fmt;
use std::str::FromStr;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::api::API_KEY_HEADER;
use crate::problem::ApiError;
use crate::Supervisor;

/// A permission a key can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Permission {
    /// `deployment:connector:manage`
    #[serde(rename = "deployment:connector:manage")]
    Manage,
    /// `deployment:connector:read`
    #[serde(rename = "deployment:connector:read")]
    Read,
    /// `deployment:node`
    #[serde(rename = "deployment:node")]
    Node,
}

impl Permission {
    /// Every permission, for a key that may do anything.
    pub const ALL: [Permission; 3] = [Permission::Manage, Permission::Read, Permission::Node];

    /// The permission's name on the wire and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Manage => "deployment:connector:manage",
            Permission::Read => "deployment:connector:read",
            Permission::Node => "deployment:node",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Permission {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Permission::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown permission `{s}` (use deployment:connector:manage, \
                     deployment:connector:read or deployment:node)"
                )
            })
    }
}

/// A new random API key, as shown to its owner.
pub fn generate_key() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("ldk_{}", hex::encode(bytes))
}

/// The hash under which a key is stored.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The authenticated caller of a request: the permissions of its key.
#[derive(Debug, Clone)]
pub struct Caller {
    permissions: Vec<Permission>,
}

impl Caller {
    /// True when the key holds `permission`.
    pub fn has(&self, permission: Permission) -> bool {
        self.permissions.contains(&permission)
    }

    /// Ok when the key holds at least one of `any`, else 403 naming what was needed.
    pub fn require(&self, any: &[Permission]) -> Result<(), ApiError> {
        if any.iter().any(|p| self.has(*p)) {
            return Ok(());
        }
        let needed: Vec<&str> = any.iter().map(|p| p.as_str()).collect();
        Err(ApiError::Forbidden(format!(
            "this API key lacks the permission for this call (needs {})",
            needed.join(" or ")
        )))
    }
}

/// A set of permissions of which a call needs any one.
pub trait Needs: Send + Sync + 'static {
    /// The permissions, any of which allows the call.
    const ANY: &'static [Permission];
}

/// Calls that change instances: `deployment:connector:manage`.
pub struct ManageCalls;
impl Needs for ManageCalls {
    const ANY: &'static [Permission] = &[Permission::Manage];
}

/// Catalog reads: `deployment:connector:read` or `manage`.
pub struct ReadCalls;
impl Needs for ReadCalls {
    const ANY: &'static [Permission] = &[Permission::Read, Permission::Manage];
}

/// Instance list: readers, managers and nodes.
pub struct ListCalls;
impl Needs for ListCalls {
    const ANY: &'static [Permission] = &[Permission::Read, Permission::Manage, Permission::Node];
}

/// Node calls (status, heartbeat): `deployment:node`.
pub struct NodeCalls;
impl Needs for NodeCalls {
    const ANY: &'static [Permission] = &[Permission::Node];
}

/// An authenticated caller whose key holds one of `N::ANY`; extracted before the path and
/// the body, so a caller without the right learns nothing from input errors (401/403 first).
pub struct Authorized<N: Needs>(pub Caller, pub std::marker::PhantomData<N>);

impl<N: Needs> FromRequestParts<Supervisor> for Authorized<N> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Supervisor) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require(N::ANY)?;
        Ok(Authorized(caller, std::marker::PhantomData))
    }
}

impl FromRequestParts<Supervisor> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Supervisor) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(API_KEY_HEADER) else {
            return Err(ApiError::Unauthorized(format!(
                "missing `{API_KEY_HEADER}` header; create a key with `ld-supervisor keys create`"
            )));
        };
        let key = value
            .to_str()
            .map_err(|_| ApiError::Unauthorized("unknown API key".to_string()))?;
        match state.store().key(&hash_key(key.trim()))? {
            Some(record) => Ok(Caller {
                permissions: record.permissions,
            }),
            None => Err(ApiError::Unauthorized("unknown API key".to_string())),
        }
    }
}
