//! Instance routes: activate (Main API), list and delete (Supervisor API), and the
//! config and stop/start extensions.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

use crate::api::{ActivateRequest, InstanceItem};
use crate::auth::{Authorized, ListCalls, ManageCalls, Permission};
use crate::extract::{Ids, JsonBody, QueryMap};
use crate::instances::{InstanceList, View};
use crate::problem::ApiError;
use crate::Supervisor;

pub(super) async fn activate(
    _: Authorized<ManageCalls>,
    State(supervisor): State<Supervisor>,
    ids: Ids,
    JsonBody(req): JsonBody<ActivateRequest>,
) -> Result<(StatusCode, Json<InstanceItem>), ApiError> {
    let item = supervisor.activate(ids.deployment_id, req)?;
    Ok((StatusCode::ACCEPTED, Json(item)))
}

/// The list, or with `If-None-Match` a conditional GET: 304 when nothing changed, and with
/// `wait=<secs>` a long poll that answers as soon as the deployment changes.
pub(super) async fn list(
    Authorized(caller, _): Authorized<ListCalls>,
    State(supervisor): State<Supervisor>,
    ids: Ids,
    query: QueryMap,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // Nodes need the real secret values to run the instances and ask for them; every
    // other list (also one by a key that could ask) shows masks.
    let view = match query.bool("reveal_secrets")? {
        Some(true) if caller.has(Permission::Node) => View::Node,
        Some(true) => {
            return Err(ApiError::Forbidden(
                "reveal_secrets=true needs the deployment:node permission".into(),
            ))
        }
        _ => View::Masked,
    };
    let max_wait = supervisor.config().max_wait;
    // Larger waits are capped rather than refused: a client asking for more is not wrong.
    let wait = query
        .u64_in("wait", 0, u64::MAX)?
        .map(|secs| Duration::from_secs(secs).min(max_wait))
        .unwrap_or_default();
    let known = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let deployment_id = ids.deployment_id;
    let node = query.get("node_id").map(str::to_string);
    if let Some(node) = &node {
        crate::validate::key_like("node_id", node)?;
    }

    // Subscribe before reading, so a change between the read and the wait still wakes us.
    let mut changes = supervisor.changes().subscribe(deployment_id);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let list = supervisor.list_instances_for(deployment_id, view, node.as_deref())?;
        let unchanged = known
            .as_deref()
            .is_some_and(|k| etag_matches(k, &list.etag));
        if !unchanged {
            return Ok(full(list));
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(not_modified(&list.etag));
        }
        // Wake at the deadline, on a change, or when a node's heartbeat expires (which
        // changes statuses without any request).
        let mut wake = deadline;
        if let Some(expiry) = list.next_expiry {
            wake = wake.min(now + expiry);
        }
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return Ok(not_modified(&list.etag));
                }
            }
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
}

fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match
        .split(',')
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

fn full(list: InstanceList) -> Response {
    let mut response = Json(list.items).into_response();
    if let Ok(value) = HeaderValue::from_str(&list.etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

fn not_modified(etag: &str) -> Response {
    let mut response = StatusCode::NOT_MODIFIED.into_response();
    if let Ok(value) = HeaderValue::from_str(etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

pub(super) async fn delete(
    _: Authorized<ManageCalls>,
    State(supervisor): State<Supervisor>,
    ids: Ids,
) -> Result<StatusCode, ApiError> {
    supervisor.delete_instance(ids.deployment_id, ids.instance())?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn set_config(
    _: Authorized<ManageCalls>,
    State(supervisor): State<Supervisor>,
    ids: Ids,
    JsonBody(values): JsonBody<Value>,
) -> Result<(StatusCode, Json<InstanceItem>), ApiError> {
    let item = supervisor.set_config(ids.deployment_id, ids.instance(), values)?;
    Ok((StatusCode::ACCEPTED, Json(item)))
}

pub(super) async fn stop(
    _: Authorized<ManageCalls>,
    State(supervisor): State<Supervisor>,
    ids: Ids,
) -> Result<(StatusCode, Json<InstanceItem>), ApiError> {
    let item = supervisor.set_stopped(ids.deployment_id, ids.instance(), true)?;
    Ok((StatusCode::ACCEPTED, Json(item)))
}

pub(super) async fn offsets(
    _: Authorized<ListCalls>,
    State(supervisor): State<Supervisor>,
    ids: Ids,
) -> Result<Json<ld_protocol::InstanceOffsets>, ApiError> {
    Ok(Json(
        supervisor.instance_offsets(ids.deployment_id, ids.instance())?,
    ))
}

pub(super) async fn change_offsets(
    _: Authorized<ManageCalls>,
    State(supervisor): State<Supervisor>,
    ids: Ids,
    JsonBody(change): JsonBody<ld_protocol::OffsetsChange>,
) -> Result<(StatusCode, Json<InstanceItem>), ApiError> {
    let item = supervisor.change_offsets(ids.deployment_id, ids.instance(), Some(change))?;
    Ok((StatusCode::ACCEPTED, Json(item)))
}

pub(super) async fn reset_offsets(
    _: Authorized<ManageCalls>,
    State(supervisor): State<Supervisor>,
    ids: Ids,
) -> Result<(StatusCode, Json<InstanceItem>), ApiError> {
    let item = supervisor.change_offsets(ids.deployment_id, ids.instance(), None)?;
    Ok((StatusCode::ACCEPTED, Json(item)))
}

pub(super) async fn restart(
    _: Authorized<ManageCalls>,
    State(supervisor): State<Supervisor>,
    ids: Ids,
) -> Result<(StatusCode, Json<InstanceItem>), ApiError> {
    let item = supervisor.restart(ids.deployment_id, ids.instance())?;
    Ok((StatusCode::ACCEPTED, Json(item)))
}

/// `?only_failed=true` restarts only the failed instances.
pub(super) async fn restart_all(
    _: Authorized<ManageCalls>,
    State(supervisor): State<Supervisor>,
    ids: Ids,
    query: QueryMap,
) -> Result<(StatusCode, Json<Vec<InstanceItem>>), ApiError> {
    let only_failed = query.bool("only_failed")?.unwrap_or(false);
    let items = supervisor.restart_all(ids.deployment_id, only_failed)?;
    Ok((StatusCode::ACCEPTED, Json(items)))
}

pub(super) async fn start(
    _: Authorized<ManageCalls>,
    State(supervisor): State<Supervisor>,
    ids: Ids,
) -> Result<(StatusCode, Json<InstanceItem>), ApiError> {
    let item = supervisor.set_stopped(ids.deployment_id, ids.instance(), false)?;
    Ok((StatusCode::ACCEPTED, Json(item)))
}
