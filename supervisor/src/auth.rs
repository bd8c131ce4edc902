//! API keys and permissions.
//!
//! A key is 32 random bytes shown once, hex-encoded with an `ldk_` prefix; the store keeps
//! only its SHA-256, so a copy of the data directory does not leak usable keys. A key's id
//! is the first 16 hex digits of that hash: safe to show, list and revoke by. Keys may
//! expire and may be bound to deployments (403 elsewhere). They are created, listed and
//! revoked while the server runs, through `/keys` or `ld-supervisor keys`.
//!
//! Authentication hashes the presented key and looks the digest up (an attacker cannot
//! steer a digest, so the lookup's timing says nothing about stored keys), then compares
//! the digests in constant time. Unknown, revoked and expired keys get the same 401 body.
//! An address that fails authentication too often within a minute gets 429 with
//! `Retry-After` (see [`crate::ratelimit`]).
//!
//! Permission rules (the seed names the first two; the others are ours):
//! - `deployment:connector:manage`: activate, delete, config, stop/start; also lets its
//!   holder read (list the catalog and instances), and makes catalog entries `permitted`;
//! - `deployment:connector:read`: list the catalog and the instances;
//! - `deployment:node`: what a node does: list instances (long poll) **with secret config
//!   values shown** (nodes need them), report status, heartbeat. Give it to nodes only;
//!   every other key sees secrets masked;
//! - `supervisor:keys:manage`: create, list and revoke API keys (a key can only hand out
//!   permissions it holds itself, and a key bound to deployments cannot manage keys).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::problem::ApiError;
use crate::ratelimit::retry_after_secs;
use crate::{now_ms, Supervisor};
pub use ld_protocol::Permission;
use ld_protocol::API_KEY_HEADER;

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

/// Length of a key id: the first hex digits of the key's hash.
pub const KEY_ID_LEN: usize = 16;

/// The id of the key stored under `hash`.
pub fn key_id(hash: &str) -> String {
    hash[..KEY_ID_LEN.min(hash.len())].to_string()
}

/// The one answer for a key that is unknown, revoked or expired: no answer tells them apart.
pub const INVALID_KEY: &str =
    "invalid API key (unknown, revoked or expired); send a valid key in the `ld-api-key` header";

/// The authenticated caller of a request: the permissions of its key.
#[derive(Debug, Clone)]
pub struct Caller {
    permissions: Vec<Permission>,
    deployments: Vec<u64>,
    key_id: String,
}

impl Caller {
    /// The deployments the key is bound to; empty when it may act on every deployment.
    pub fn deployments(&self) -> &[u64] {
        &self.deployments
    }

    /// The id of the caller's key.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Ok when the key may act on `deployment_id`, else 403.
    pub fn require_deployment(&self, deployment_id: u64) -> Result<(), ApiError> {
        if self.deployments.is_empty() || self.deployments.contains(&deployment_id) {
            return Ok(());
        }
        Err(ApiError::Forbidden(format!(
            "this API key is bound to other deployments than {deployment_id}"
        )))
    }

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

/// Key management: `supervisor:keys:manage`, with a key not bound to deployments.
pub struct KeysCalls;
impl Needs for KeysCalls {
    const ANY: &'static [Permission] = &[Permission::KeysManage];
}

/// An authenticated caller whose key holds one of `N::ANY` and, when the path names a
/// deployment, may act on it; extracted before the path and the body, so a caller without
/// the right learns nothing from input errors (401/403 first).
pub struct Authorized<N: Needs>(pub Caller, pub std::marker::PhantomData<N>);

impl<N: Needs> FromRequestParts<Supervisor> for Authorized<N> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Supervisor) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require(N::ANY)?;
        if !caller.deployments.is_empty() {
            let params = RawPathParams::from_request_parts(parts, state).await.ok();
            let deployment = params
                .as_ref()
                .and_then(|p| p.iter().find(|(name, _)| *name == "deployment_id"))
                .map(|(_, value)| value.to_string());
            match deployment {
                Some(raw) => match raw.parse::<u64>() {
                    Ok(id) => caller.require_deployment(id)?,
                    Err(_) => {
                        return Err(ApiError::Forbidden(format!(
                            "this API key is bound to deployments; `{raw}` is not one of them"
                        )))
                    }
                },
                None => {
                    return Err(ApiError::Forbidden(
                        "this API key is bound to deployments; this call is not about one"
                            .to_string(),
                    ))
                }
            }
        }
        Ok(Authorized(caller, std::marker::PhantomData))
    }
}

impl FromRequestParts<Supervisor> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Supervisor) -> Result<Self, ApiError> {
        let addr = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip());
        if let Some(wait) = state.auth_failures().blocked(addr) {
            return Err(ApiError::TooManyRequests {
                reason: "too many failed authentications from this address; retry later"
                    .to_string(),
                retry_after_secs: retry_after_secs(wait),
            });
        }
        match authenticate(parts, state) {
            Err(err @ ApiError::Unauthorized(_)) => {
                state.auth_failures().record(addr);
                tracing::warn!(addr = ?addr, "failed authentication");
                Err(err)
            }
            other => other,
        }
    }
}

fn authenticate(parts: &Parts, state: &Supervisor) -> Result<Caller, ApiError> {
    let Some(value) = parts.headers.get(API_KEY_HEADER) else {
        return Err(ApiError::Unauthorized(format!(
            "missing `{API_KEY_HEADER}` header; create a key with `ld-supervisor keys create`"
        )));
    };
    let invalid = || ApiError::Unauthorized(INVALID_KEY.to_string());
    let key = value.to_str().map_err(|_| invalid())?;
    let hash = hash_key(key.trim());
    let Some((stored_hash, record)) = state.store().key(&hash)? else {
        return Err(invalid());
    };
    // The lookup found the digest; compare it again in constant time, so no code path
    // decides on a short-circuiting comparison of key material.
    let same: bool = stored_hash.as_bytes().ct_eq(hash.as_bytes()).into();
    let now = now_ms();
    if !same || record.expires_at_ms.is_some_and(|at| at <= now) {
        return Err(invalid());
    }
    state.touch_key(&hash, now);
    Ok(Caller {
        permissions: record.permissions,
        deployments: record.deployments,
        key_id: key_id(&hash),
    })
}
