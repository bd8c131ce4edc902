//! HTTP routes: one table of (method, path, handler) builds the router, and the same table
//! is what the OpenAPI test compares `docs/supervisor-openapi.yaml` against.

use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;

use crate::Supervisor;

mod catalog;
mod fallback;
mod instances;
mod keys;
mod nodes;

/// Main API: the connector catalog of a deployment.
pub const CATALOG: &str = "/tenants/{tenant_id}/divisions/{division_id}/environments/{environment_id}/deployments/{deployment_id}/connectors";
/// Main API: activate a connector.
pub const ACTIVATE: &str = "/tenants/{tenant_id}/divisions/{division_id}/environments/{environment_id}/deployments/{deployment_id}/connectors/activate";
/// Supervisor API: list instances (long poll with `If-None-Match` + `wait`).
pub const INSTANCES: &str = "/deployments/{deployment_id}/connectors/instances";
/// Supervisor API: one instance (delete).
pub const INSTANCE: &str = "/deployments/{deployment_id}/connectors/instances/{instance_id}";
/// *Extension:* a node's status report on one instance.
pub const INSTANCE_STATUS: &str =
    "/deployments/{deployment_id}/connectors/instances/{instance_id}/status";
/// *Extension:* store a new config version.
pub const INSTANCE_CONFIG: &str =
    "/deployments/{deployment_id}/connectors/instances/{instance_id}/config";
/// *Extension:* stop an instance.
pub const INSTANCE_STOP: &str =
    "/deployments/{deployment_id}/connectors/instances/{instance_id}/stop";
/// *Extension:* start a stopped instance.
pub const INSTANCE_START: &str =
    "/deployments/{deployment_id}/connectors/instances/{instance_id}/start";
/// *Extension:* node heartbeat.
pub const NODE: &str = "/deployments/{deployment_id}/nodes/{node_id}";

/// *Extension:* API keys: create (POST) and list (GET).
pub const KEYS: &str = "/keys";
/// *Extension:* one API key: revoke (DELETE).
pub const KEY: &str = "/keys/{key_id}";

/// Every route the supervisor serves, as (method, path) in OpenAPI path syntax.
pub const ROUTES: &[(Method, &str)] = &[
    (Method::GET, CATALOG),
    (Method::POST, ACTIVATE),
    (Method::GET, INSTANCES),
    (Method::DELETE, INSTANCE),
    (Method::PUT, INSTANCE_STATUS),
    (Method::PUT, INSTANCE_CONFIG),
    (Method::POST, INSTANCE_STOP),
    (Method::POST, INSTANCE_START),
    (Method::PUT, NODE),
    (Method::GET, KEYS),
    (Method::POST, KEYS),
    (Method::DELETE, KEY),
];

fn handler(method: &Method, path: &str) -> MethodRouter<Supervisor> {
    let filter = MethodFilter::try_from(method.clone()).expect("standard method");
    match (method.as_str(), path) {
        ("GET", CATALOG) => on(filter, catalog::list),
        ("POST", ACTIVATE) => on(filter, instances::activate),
        ("GET", INSTANCES) => on(filter, instances::list),
        ("DELETE", INSTANCE) => on(filter, instances::delete),
        ("PUT", INSTANCE_STATUS) => on(filter, nodes::report_status),
        ("PUT", INSTANCE_CONFIG) => on(filter, instances::set_config),
        ("POST", INSTANCE_STOP) => on(filter, instances::stop),
        ("POST", INSTANCE_START) => on(filter, instances::start),
        ("PUT", NODE) => on(filter, nodes::heartbeat),
        ("GET", KEYS) => on(filter, keys::list),
        ("POST", KEYS) => on(filter, keys::create),
        ("DELETE", KEY) => on(filter, keys::revoke),
        (m, p) => unreachable!("route {m} {p} is in ROUTES but has no handler"),
    }
}

/// The router over [`ROUTES`], with problem+json fallbacks and the body limit.
pub fn router(supervisor: Supervisor) -> Router {
    let body_limit = supervisor.config().body_limit;
    let mut router = Router::new();
    let mut by_path: Vec<(&str, MethodRouter<Supervisor>)> = Vec::new();
    for (method, path) in ROUTES {
        match by_path.iter_mut().find(|(p, _)| p == path) {
            Some((_, methods)) => *methods = std::mem::take(methods).merge(handler(method, path)),
            None => by_path.push((path, handler(method, path))),
        }
    }
    for (path, methods) in by_path {
        router = router.route(path, methods.fallback(fallback::method_not_allowed));
    }
    router
        .fallback(fallback::not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(supervisor)
}
