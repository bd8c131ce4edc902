//! Key management routes: `/keys` (create, list) and `/keys/{key_id}` (revoke).

use axum::extract::{RawPathParams, State};
use axum::http::StatusCode;
use axum::Json;

use crate::api::{CreateKeyRequest, CreatedKey, KeyInfo};
use crate::auth::{Authorized, KeysCalls};
use crate::extract::JsonBody;
use crate::problem::ApiError;
use crate::Supervisor;

pub(super) async fn create(
    Authorized(caller, _): Authorized<KeysCalls>,
    State(supervisor): State<Supervisor>,
    JsonBody(req): JsonBody<CreateKeyRequest>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let created = supervisor.create_key(req, Some(&caller))?;
    Ok((StatusCode::CREATED, Json(created)))
}

pub(super) async fn list(
    _: Authorized<KeysCalls>,
    State(supervisor): State<Supervisor>,
) -> Result<Json<Vec<KeyInfo>>, ApiError> {
    Ok(Json(supervisor.list_keys()?))
}

pub(super) async fn revoke(
    _: Authorized<KeysCalls>,
    State(supervisor): State<Supervisor>,
    params: RawPathParams,
) -> Result<StatusCode, ApiError> {
    let id = params
        .iter()
        .find(|(name, _)| *name == "key_id")
        .map(|(_, value)| value.to_string())
        .unwrap_or_default();
    supervisor.revoke_key(&id)?;
    Ok(StatusCode::NO_CONTENT)
}
