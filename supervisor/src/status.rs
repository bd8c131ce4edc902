//! The instance status the supervisor shows: a pure function of the desired state and the
//! live nodes' reports, so the rules are tested over tables without a server.

use crate::api::{InstanceConfig, InstanceStatus};
use crate::store::NodeReport;

/// One live node's report on the instance, `None` when the node has not reported it.
pub type LiveReport<'a> = (&'a str, Option<&'a NodeReport>);

/// True when the config switches the instance off (`"enabled": false`).
pub fn disabled(config: &InstanceConfig) -> bool {
    config.values.get("enabled").and_then(|v| v.as_bool()) == Some(false)
}

/// Aggregates the live nodes' reports into one status and, when failed, a reason.
///
/// - `inactive` when stopped or `enabled=false`, whatever the nodes say;
/// - `failed` when a live node reported `failed` for the current config version (a failure
///   on an older version says nothing about the current one);
/// - `active` when there is at least one live node and every live node reports `active`
///   on the current config version;
/// - `pending` otherwise, including when there are no live nodes; with a reason when a
///   live node that does not run it yet says why (waiting for a config, or the failure
///   it is retrying).
pub fn aggregate(
    stopped: bool,
    config: &InstanceConfig,
    live: &[LiveReport<'_>],
) -> (InstanceStatus, Option<String>) {
    if stopped || disabled(config) {
        return (InstanceStatus::Inactive, None);
    }
    let current = |r: &NodeReport| r.config_version == config.version;
    for (node, report) in live {
        if let Some(r) = report {
            if r.status == InstanceStatus::Failed && current(r) {
                let why = r.reason.as_deref().unwrap_or("no reason given");
                return (InstanceStatus::Failed, Some(format!("node {node}: {why}")));
            }
        }
    }
    let all_active = !live.is_empty()
        && live.iter().all(|(_, report)| {
            report.is_some_and(|r| r.status == InstanceStatus::Active && current(r))
        });
    if all_active {
        return (InstanceStatus::Active, None);
    }
    let waiting = live.iter().find_map(|(node, report)| {
        report
            .filter(|r| {
                current(r) && matches!(r.status, InstanceStatus::Pending | InstanceStatus::Inactive)
            })
            .and_then(|r| r.reason.as_deref())
            .map(|why| format!("node {node}: {why}"))
    });
    (InstanceStatus::Pending, waiting)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use InstanceStatus::*;

    fn report(status: InstanceStatus, version: u64) -> NodeReport {
        NodeReport {
            status,
            reason: Some("boom".into()),
            config_version: version,
            at: 1,
        }
    }

    #[test]
    fn table() {
        let v2 = InstanceConfig {
            version: 2,
            values: json!({"enabled": true}),
        };
        let off = InstanceConfig {
            version: 2,
            values: json!({"enabled": false}),
        };
        let active2 = report(Active, 2);
        let active1 = report(Active, 1);
        let failed2 = report(Failed, 2);
        let failed1 = report(Failed, 1);
        let pending2 = report(Pending, 2);
        let pending1 = report(Pending, 1);
        let cases: Vec<(&str, bool, &InstanceConfig, Vec<LiveReport>, InstanceStatus)> = vec![
            ("no live nodes", false, &v2, vec![], Pending),
            (
                "one node active on current",
                false,
                &v2,
                vec![("a", Some(&active2))],
                Active,
            ),
            (
                "active on old version",
                false,
                &v2,
                vec![("a", Some(&active1))],
                Pending,
            ),
            (
                "one node not reported",
                false,
                &v2,
                vec![("a", Some(&active2)), ("b", None)],
                Pending,
            ),
            (
                "two nodes active",
                false,
                &v2,
                vec![("a", Some(&active2)), ("b", Some(&active2))],
                Active,
            ),
            (
                "failed on current",
                false,
                &v2,
                vec![("a", Some(&active2)), ("b", Some(&failed2))],
                Failed,
            ),
            (
                "failed on old version",
                false,
                &v2,
                vec![("a", Some(&failed1))],
                Pending,
            ),
            (
                "stopped beats failed",
                true,
                &v2,
                vec![("a", Some(&failed2))],
                Inactive,
            ),
            (
                "disabled",
                false,
                &off,
                vec![("a", Some(&active2))],
                Inactive,
            ),
            ("stopped, no nodes", true, &v2, vec![], Inactive),
        ];
        for (name, stopped, config, live, want) in cases {
            let (got, reason) = aggregate(stopped, config, &live);
            assert_eq!(got, want, "{name}");
            assert_eq!(
                reason.is_some(),
                want == Failed,
                "{name}: reason {reason:?}"
            );
        }
        // A node that does not run it yet says why: the list shows it on `pending`,
        // but only for the current config version.
        let (got, reason) = aggregate(false, &v2, &[("a", Some(&active2)), ("b", Some(&pending2))]);
        assert_eq!((got, reason.as_deref()), (Pending, Some("node b: boom")));
        let (got, reason) = aggregate(false, &v2, &[("a", Some(&pending1))]);
        assert_eq!((got, reason), (Pending, None));
    }

    #[test]
    fn failed_reason_names_the_node() {
        let v = InstanceConfig {
            version: 1,
            values: json!({}),
        };
        let failed = report(Failed, 1);
        let (_, reason) = aggregate(false, &v, &[("node-7", Some(&failed))]);
        assert_eq!(reason.as_deref(), Some("node node-7: boom"));
    }
}
