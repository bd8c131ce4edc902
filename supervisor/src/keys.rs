//! API key management: create, list and revoke while the supervisor runs.

use crate::api::{CreateKeyRequest, CreatedKey, KeyInfo};
use crate::auth::{self, Caller, KEY_ID_LEN};
use crate::problem::ApiError;
use crate::store::{KeyRecord, StoreError};
use crate::supervisor::now_ms;
use crate::{validate, Supervisor};

/// Most deployments one key may be bound to.
pub const MAX_KEY_DEPLOYMENTS: usize = 1000;

fn info(hash: &str, record: KeyRecord) -> KeyInfo {
    KeyInfo {
        id: auth::key_id(hash),
        permissions: record.permissions,
        created_at: record.created_at_ms,
        last_used_at: record.last_used_ms,
        expires_at: record.expires_at_ms,
        deployments: record.deployments,
        name: record.name,
    }
}

/// Checks a key id: 16 lowercase hex digits.
pub fn check_key_id(id: &str) -> Result<(), ApiError> {
    let ok = id.len() == KEY_ID_LEN && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            "key_id",
            format!("key_id must be {KEY_ID_LEN} lowercase hex digits, as `GET /keys` lists it"),
        ))
    }
}

impl Supervisor {
    /// Creates a key as `req` asks. `caller`, when the request came through the API, may
    /// only grant permissions it holds itself.
    pub fn create_key(
        &self,
        req: CreateKeyRequest,
        caller: Option<&Caller>,
    ) -> Result<CreatedKey, ApiError> {
        if req.permissions.is_empty() {
            return Err(ApiError::invalid_field(
                "permissions",
                "permissions must list at least one permission",
            ));
        }
        if let Some(caller) = caller {
            if let Some(p) = req.permissions.iter().find(|p| !caller.has(**p)) {
                return Err(ApiError::Forbidden(format!(
                    "this API key cannot grant `{p}`, which it does not hold"
                )));
            }
        }
        if req.deployments.len() > MAX_KEY_DEPLOYMENTS {
            return Err(ApiError::invalid_field(
                "deployments",
                format!("deployments lists more than {MAX_KEY_DEPLOYMENTS} deployments"),
            ));
        }
        if let Some(name) = &req.name {
            validate::name("name", name)?;
        }
        let now = now_ms();
        let expires_at_ms = match (req.expires_at, req.expires_in_secs) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid_field(
                    "expires_in_secs",
                    "send expires_at or expires_in_secs, not both",
                ))
            }
            (Some(at), None) if at <= now => {
                return Err(ApiError::invalid_field(
                    "expires_at",
                    format!("expires_at ({at}) is not in the future (now is {now})"),
                ))
            }
            (Some(at), None) => Some(at),
            (None, Some(0)) => {
                return Err(ApiError::invalid_field(
                    "expires_in_secs",
                    "expires_in_secs must be at least 1",
                ))
            }
            (None, Some(secs)) => Some(now.saturating_add(secs.saturating_mul(1000))),
            (None, None) => None,
        };
        let mut permissions = Vec::new();
        for p in req.permissions {
            if !permissions.contains(&p) {
                permissions.push(p);
            }
        }
        let mut deployments = req.deployments;
        deployments.sort_unstable();
        deployments.dedup();
        let record = KeyRecord {
            permissions,
            created_at_ms: now,
            expires_at_ms,
            deployments,
            name: req.name,
            last_used_ms: None,
        };
        let key = auth::generate_key();
        let hash = auth::hash_key(&key);
        self.store().put_key(&hash, &record)?;
        tracing::info!(id = %auth::key_id(&hash), permissions = ?record.permissions, "API key created");
        Ok(CreatedKey {
            key,
            info: info(&hash, record),
        })
    }

    /// Every key, by id: never the key itself.
    pub fn list_keys(&self) -> Result<Vec<KeyInfo>, StoreError> {
        Ok(self
            .store()
            .keys()?
            .into_iter()
            .map(|(hash, record)| info(&hash, record))
            .collect())
    }

    /// Revokes the key with id `id`: from now on it is refused like an unknown key.
    pub fn revoke_key(&self, id: &str) -> Result<(), ApiError> {
        check_key_id(id)?;
        let _guard = self.write_lock();
        let hashes = self.store().key_hashes_with_prefix(id)?;
        if hashes.is_empty() {
            return Err(ApiError::NotFound(format!("no API key with id {id}")));
        }
        for hash in &hashes {
            self.store().remove_key(hash)?;
        }
        tracing::info!(id, "API key revoked");
        Ok(())
    }
}
