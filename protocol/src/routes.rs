//! Every route the supervisor serves: the path templates (OpenAPI syntax, which is also
//! axum's), the table of (method, template) the router is built from, and builders that
//! fill a template with ids.
//!
//! The templates are the one spelling of each path: the supervisor routes on them, the
//! OpenAPI test compares them with `docs/supervisor-openapi.yaml`, and the client builds
//! its URLs from them through the builders below.

use std::fmt::{self, Write};

use reqwest::Method;

/// Main API: the connector catalog of a deployment (`GET`).
pub const CATALOG: &str = "/tenants/{tenant_id}/divisions/{division_id}/environments/{environment_id}/deployments/{deployment_id}/connectors";
/// Main API: activate a connector (`POST`).
pub const ACTIVATE: &str = "/tenants/{tenant_id}/divisions/{division_id}/environments/{environment_id}/deployments/{deployment_id}/connectors/activate";
/// Supervisor API: list instances (`GET`; long poll with `If-None-Match` + `wait`).
pub const INSTANCES: &str = "/deployments/{deployment_id}/connectors/instances";
/// Supervisor API: one instance (`DELETE`).
pub const INSTANCE: &str = "/deployments/{deployment_id}/connectors/instances/{instance_id}";
/// *Extension:* a node's status report on one instance (`PUT`).
pub const INSTANCE_STATUS: &str =
    "/deployments/{deployment_id}/connectors/instances/{instance_id}/status";
/// *Extension:* store a new config version (`PUT`).
pub const INSTANCE_CONFIG: &str =
    "/deployments/{deployment_id}/connectors/instances/{instance_id}/config";
/// *Extension:* stop an instance (`POST`).
pub const INSTANCE_STOP: &str =
    "/deployments/{deployment_id}/connectors/instances/{instance_id}/stop";
/// *Extension:* start a stopped instance (`POST`).
pub const INSTANCE_START: &str =
    "/deployments/{deployment_id}/connectors/instances/{instance_id}/start";
/// *Extension:* restart an instance on every node it runs on (`POST`), a failed one
/// included.
pub const INSTANCE_RESTART: &str =
    "/deployments/{deployment_id}/connectors/instances/{instance_id}/restart";
/// *Extension:* restart every running instance of a deployment (`POST`), or with
/// `?only_failed=true` the failed ones.
pub const INSTANCES_RESTART: &str = "/deployments/{deployment_id}/connectors/instances/restart";
/// *Extension:* a sink's committed offsets and lag per partition, or a source's saved
/// state, as its nodes last reported them (`GET`); while the instance is stopped, set
/// them (`PATCH`) or reset them (`DELETE`) for its next start.
pub const INSTANCE_OFFSETS: &str =
    "/deployments/{deployment_id}/connectors/instances/{instance_id}/offsets";
/// *Extension:* a source's checkpoint shared between nodes: read (`GET`) and save
/// (`PUT`, refused with 409 `fenced` unless the saver holds the current lease).
pub const INSTANCE_CHECKPOINT: &str =
    "/deployments/{deployment_id}/connectors/instances/{instance_id}/checkpoint";
/// *Extension:* node heartbeat (`PUT`).
pub const NODE: &str = "/deployments/{deployment_id}/nodes/{node_id}";
/// *Extension:* API keys: create (`POST`) and list (`GET`).
pub const KEYS: &str = "/keys";
/// *Extension:* one API key: revoke (`DELETE`).
pub const KEY: &str = "/keys/{key_id}";

/// Every route the supervisor serves, as (method, template).
pub const ROUTES: &[(Method, &str)] = &[
    (Method::GET, CATALOG),
    (Method::POST, ACTIVATE),
    (Method::GET, INSTANCES),
    (Method::DELETE, INSTANCE),
    (Method::PUT, INSTANCE_STATUS),
    (Method::PUT, INSTANCE_CONFIG),
    (Method::POST, INSTANCE_STOP),
    (Method::POST, INSTANCE_START),
    (Method::POST, INSTANCE_RESTART),
    (Method::POST, INSTANCES_RESTART),
    (Method::GET, INSTANCE_OFFSETS),
    (Method::PATCH, INSTANCE_OFFSETS),
    (Method::DELETE, INSTANCE_OFFSETS),
    (Method::GET, INSTANCE_CHECKPOINT),
    (Method::PUT, INSTANCE_CHECKPOINT),
    (Method::PUT, NODE),
    (Method::GET, KEYS),
    (Method::POST, KEYS),
    (Method::DELETE, KEY),
];

/// Where a Main API call is addressed above the deployment: the seed's tenant, division
/// and environment ids. The reference supervisor only checks that they are ids (letters,
/// digits, `-`, `_`, `.`); a real control plane routes on them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    /// `{tenant_id}`.
    pub tenant_id: String,
    /// `{division_id}`.
    pub division_id: String,
    /// `{environment_id}`.
    pub environment_id: String,
}

impl Scope {
    /// A scope of these three ids.
    pub fn new(
        tenant_id: impl Into<String>,
        division_id: impl Into<String>,
        environment_id: impl Into<String>,
    ) -> Self {
        Scope {
            tenant_id: tenant_id.into(),
            division_id: division_id.into(),
            environment_id: environment_id.into(),
        }
    }
}

/// `template` with its `{...}` placeholders replaced, in order, by `values`, each
/// percent-encoded as one path segment (so an id holding `/` or `?` reaches the server
/// as one bad id, which it refuses naming the field, not as another route).
fn fill(template: &str, values: &[&dyn fmt::Display]) -> String {
    let mut path = String::with_capacity(template.len() + 32);
    let mut values = values.iter();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        path.push_str(&rest[..open]);
        let close = open + rest[open..].find('}').expect("placeholder closes");
        let value = values.next().expect("a value for every placeholder");
        encode_segment(&mut path, &value.to_string());
        rest = &rest[close + 1..];
    }
    path.push_str(rest);
    debug_assert!(values.next().is_none(), "more values than placeholders");
    path
}

fn encode_segment(out: &mut String, segment: &str) {
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
}

/// [`CATALOG`] of `deployment_id` in `scope`.
pub fn catalog(scope: &Scope, deployment_id: u64) -> String {
    fill(
        CATALOG,
        &[
            &scope.tenant_id,
            &scope.division_id,
            &scope.environment_id,
            &deployment_id,
        ],
    )
}

/// [`ACTIVATE`] of `deployment_id` in `scope`.
pub fn activate(scope: &Scope, deployment_id: u64) -> String {
    fill(
        ACTIVATE,
        &[
            &scope.tenant_id,
            &scope.division_id,
            &scope.environment_id,
            &deployment_id,
        ],
    )
}

/// [`INSTANCES`] of `deployment_id`.
pub fn instances(deployment_id: u64) -> String {
    fill(INSTANCES, &[&deployment_id])
}

/// [`INSTANCE`]: instance `instance_id` of `deployment_id`.
pub fn instance(deployment_id: u64, instance_id: u64) -> String {
    fill(INSTANCE, &[&deployment_id, &instance_id])
}

/// [`INSTANCE_STATUS`] of one instance.
pub fn instance_status(deployment_id: u64, instance_id: u64) -> String {
    fill(INSTANCE_STATUS, &[&deployment_id, &instance_id])
}

/// [`INSTANCE_CONFIG`] of one instance.
pub fn instance_config(deployment_id: u64, instance_id: u64) -> String {
    fill(INSTANCE_CONFIG, &[&deployment_id, &instance_id])
}

/// [`INSTANCE_STOP`] of one instance.
pub fn instance_stop(deployment_id: u64, instance_id: u64) -> String {
    fill(INSTANCE_STOP, &[&deployment_id, &instance_id])
}

/// [`INSTANCE_START`] of one instance.
pub fn instance_start(deployment_id: u64, instance_id: u64) -> String {
    fill(INSTANCE_START, &[&deployment_id, &instance_id])
}

/// [`INSTANCE_RESTART`] of one instance.
pub fn instance_restart(deployment_id: u64, instance_id: u64) -> String {
    fill(INSTANCE_RESTART, &[&deployment_id, &instance_id])
}

/// [`INSTANCE_OFFSETS`] of one instance.
pub fn instance_offsets(deployment_id: u64, instance_id: u64) -> String {
    fill(INSTANCE_OFFSETS, &[&deployment_id, &instance_id])
}

/// [`INSTANCES_RESTART`] of a deployment.
pub fn instances_restart(deployment_id: u64) -> String {
    fill(INSTANCES_RESTART, &[&deployment_id])
}

/// [`INSTANCE_CHECKPOINT`] of one instance.
pub fn instance_checkpoint(deployment_id: u64, instance_id: u64) -> String {
    fill(INSTANCE_CHECKPOINT, &[&deployment_id, &instance_id])
}

/// [`NODE`]: node `node_id` of `deployment_id`.
pub fn node(deployment_id: u64, node_id: &str) -> String {
    fill(NODE, &[&deployment_id, &node_id])
}

/// [`KEY`]: the key with id `key_id`.
pub fn key(key_id: &str) -> String {
    fill(KEY, &[&key_id])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values `path` gives `template`'s placeholders, or None when it does not match.
    fn parse<'a>(template: &str, path: &'a str) -> Option<Vec<&'a str>> {
        let t: Vec<&str> = template.split('/').collect();
        let p: Vec<&str> = path.split('/').collect();
        if t.len() != p.len() {
            return None;
        }
        let mut values = Vec::new();
        for (t, p) in t.iter().zip(p) {
            if t.starts_with('{') {
                values.push(p);
            } else if t != &p {
                return None;
            }
        }
        Some(values)
    }

    #[test]
    fn every_builder_fills_its_own_template() {
        let scope = Scope::new("t1", "d1", "e1");
        let cases: Vec<(&str, String, Vec<&str>)> = vec![
            (CATALOG, catalog(&scope, 7), vec!["t1", "d1", "e1", "7"]),
            (ACTIVATE, activate(&scope, 7), vec!["t1", "d1", "e1", "7"]),
            (INSTANCES, instances(7), vec!["7"]),
            (INSTANCE, instance(7, 3), vec!["7", "3"]),
            (INSTANCE_STATUS, instance_status(7, 3), vec!["7", "3"]),
            (INSTANCE_CONFIG, instance_config(7, 3), vec!["7", "3"]),
            (INSTANCE_STOP, instance_stop(7, 3), vec!["7", "3"]),
            (INSTANCE_START, instance_start(7, 3), vec!["7", "3"]),
            (
                INSTANCE_CHECKPOINT,
                instance_checkpoint(7, 3),
                vec!["7", "3"],
            ),
            (NODE, node(7, "node-1"), vec!["7", "node-1"]),
            (KEY, key("0123abcd"), vec!["0123abcd"]),
        ];
        for (template, path, expected) in cases {
            assert_eq!(parse(template, &path), Some(expected), "{path}");
            // No other route matches the same path (a builder must not pick the wrong one).
            let others = ROUTES
                .iter()
                .filter(|(_, t)| *t != template && parse(t, &path).is_some())
                .count();
            assert_eq!(others, 0, "{path} matches another route too");
        }
    }

    #[test]
    fn an_id_is_one_segment_whatever_it_holds() {
        assert_eq!(node(1, "a/b?c"), "/deployments/1/nodes/a%2Fb%3Fc");
        assert_eq!(key("x y"), "/keys/x%20y");
    }

    #[test]
    fn every_template_is_in_the_table_once_per_method() {
        let mut seen = std::collections::BTreeSet::new();
        for (method, template) in ROUTES {
            assert!(template.starts_with('/'), "{template}");
            assert!(
                seen.insert((method.as_str(), *template)),
                "{method} {template} twice"
            );
        }
        assert_eq!(seen.len(), 19);
    }
}
