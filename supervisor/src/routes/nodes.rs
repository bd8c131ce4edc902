//! Node-facing extensions: heartbeats, status reports and shared source checkpoints.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use axum::response::{IntoResponse, Response};

use crate::api::{Heartbeat, HeartbeatAck, SourceCheckpoint, StatusReport};
use crate::auth::{Authorized, NodeCalls};
use crate::extract::{Ids, JsonBody};
use crate::problem::ApiError;
use crate::Supervisor;

pub(super) async fn heartbeat(
    _: Authorized<NodeCalls>,
    State(supervisor): State<Supervisor>,
    ids: Ids,
    JsonBody(beat): JsonBody<Heartbeat>,
) -> Result<Json<HeartbeatAck>, ApiError> {
    let node_id = ids.node_id.as_deref().expect("route has {node_id}");
    Ok(Json(supervisor.heartbeat(
        ids.deployment_id,
        node_id,
        beat,
    )?))
}

pub(super) async fn report_status(
    _: Authorized<NodeCalls>,
    State(supervisor): State<Supervisor>,
    ids: Ids,
    JsonBody(report): JsonBody<StatusReport>,
) -> Result<StatusCode, ApiError> {
    supervisor.report_status(ids.deployment_id, ids.instance(), report)?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn checkpoint(
    _: Authorized<NodeCalls>,
    State(supervisor): State<Supervisor>,
    ids: Ids,
) -> Result<Response, ApiError> {
    Ok(
        match supervisor.checkpoint(ids.deployment_id, ids.instance())? {
            Some(checkpoint) => Json(checkpoint).into_response(),
            None => StatusCode::NO_CONTENT.into_response(),
        },
    )
}

pub(super) async fn save_checkpoint(
    _: Authorized<NodeCalls>,
    State(supervisor): State<Supervisor>,
    ids: Ids,
    JsonBody(checkpoint): JsonBody<SourceCheckpoint>,
) -> Result<StatusCode, ApiError> {
    supervisor.save_checkpoint(ids.deployment_id, ids.instance(), checkpoint)?;
    Ok(StatusCode::NO_CONTENT)
}
