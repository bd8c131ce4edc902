//! `GET .../deployments/{deployment_id}/connectors`: the catalog, filtered and paged.

use axum::extract::State;
use axum::Json;

use crate::api::{CatalogPage, ConnectorType};
use crate::auth::{Authorized, Permission, ReadCalls};
use crate::catalog::{paginate, DEFAULT_RESULTS, MAX_RESULTS};
use crate::extract::{Ids, QueryMap};
use crate::problem::ApiError;
use crate::Supervisor;

pub(super) async fn list(
    Authorized(caller, _): Authorized<ReadCalls>,
    State(supervisor): State<Supervisor>,
    ids: Ids,
    query: QueryMap,
) -> Result<Json<CatalogPage>, ApiError> {
    let page = query.u64_in("page", 1, u64::MAX)?.unwrap_or(1);
    let results = query
        .u64_in("results", 1, MAX_RESULTS)?
        .unwrap_or(DEFAULT_RESULTS);
    let filter = match query.get("type") {
        None | Some("") => None,
        Some(raw) => Some(
            raw.parse::<ConnectorType>()
                .map_err(|reason| ApiError::invalid_field("type", reason))?,
        ),
    };
    let mut items = supervisor.catalog(ids.deployment_id, caller.has(Permission::Manage))?;
    if let Some(kind) = filter {
        items.retain(|item| item.connector_type == kind);
    }
    let total_results = items.len() as u64;
    let (range, total_pages) = paginate(items.len(), page, results);
    let items = items.drain(range).collect();
    Ok(Json(CatalogPage {
        page,
        total_pages,
        total_results,
        items,
    }))
}
