//! HTTP routes: `ld-protocol`'s table of (method, path) builds the router, each route
//! paired with its handler here, and the same table is what the OpenAPI test compares
//! `docs/supervisor-openapi.yaml` against.

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

pub use ld_protocol::routes::{
    ACTIVATE, CATALOG, INSTANCE, INSTANCES, INSTANCES_RESTART, INSTANCE_CHECKPOINT,
    INSTANCE_CONFIG, INSTANCE_OFFSETS, INSTANCE_RESTART, INSTANCE_START, INSTANCE_STATUS,
    INSTANCE_STOP, KEY, KEYS, NODE, ROUTES,
};

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
        ("POST", INSTANCE_RESTART) => on(filter, instances::restart),
        ("POST", INSTANCES_RESTART) => on(filter, instances::restart_all),
        ("GET", INSTANCE_OFFSETS) => on(filter, instances::offsets),
        ("PATCH", INSTANCE_OFFSETS) => on(filter, instances::change_offsets),
        ("DELETE", INSTANCE_OFFSETS) => on(filter, instances::reset_offsets),
        ("GET", INSTANCE_CHECKPOINT) => on(filter, nodes::checkpoint),
        ("PUT", INSTANCE_CHECKPOINT) => on(filter, nodes::save_checkpoint),
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
