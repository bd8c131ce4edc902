//! Node-facing extensions: heartbeats and status reports.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use crate::api::{Heartbeat, HeartbeatAck, StatusReport};
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
