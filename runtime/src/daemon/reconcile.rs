//! Reconcile as a pure diff: what to stop, restart and start to go from what the node
//! manages to what the supervisor assigns. The daemon applies the [`Plan`].

use std::collections::BTreeMap;

/// What the node must run for one instance, as far as reconciling is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// The config version to run.
    pub config_version: u64,
    /// `false` when stopped or disabled: the instance is kept, not run.
    pub run: bool,
    /// The digest of the plugin library that provides the connector, if installed: a
    /// new build restarts the instance.
    pub plugin: Option<String>,
    /// A source's lease epoch: a source given to this node anew restarts (and resumes
    /// from the checkpoint shared since).
    pub lease_epoch: Option<u64>,
    /// Restarts asked for through the API: one more restarts the instance.
    pub restarts: u64,
}

/// The steps to apply, each a list of instance ids in ascending order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Deleted: stop, close the plugin and forget local state.
    pub stop: Vec<u64>,
    /// Changed (config version, run/stopped, or plugin build): stop, then start anew.
    pub restart: Vec<u64>,
    /// New: start.
    pub start: Vec<u64>,
}

impl Plan {
    /// Whether nothing is to be done.
    pub fn is_empty(&self) -> bool {
        self.stop.is_empty() && self.restart.is_empty() && self.start.is_empty()
    }
}

/// The diff between the assignment and what the node manages, by instance id.
pub fn reconcile(desired: &BTreeMap<u64, Wanted>, managed: &BTreeMap<u64, Wanted>) -> Plan {
    let mut plan = Plan::default();
    for (id, have) in managed {
        match desired.get(id) {
            None => plan.stop.push(*id),
            Some(want) if want != have => plan.restart.push(*id),
            Some(_) => {}
        }
    }
    plan.start = desired
        .keys()
        .filter(|id| !managed.contains_key(id))
        .copied()
        .collect();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(v: u64, run: bool) -> Wanted {
        Wanted {
            config_version: v,
            run,
            plugin: Some("a1".into()),
            lease_epoch: None,
            restarts: 0,
        }
    }

    fn built(v: u64, digest: &str) -> Wanted {
        Wanted {
            plugin: Some(digest.into()),
            ..w(v, true)
        }
    }

    #[test]
    fn table() {
        type Case = (&'static str, Vec<(u64, Wanted)>, Vec<(u64, Wanted)>, Plan);
        let cases: Vec<Case> = vec![
            ("nothing", vec![], vec![], Plan::default()),
            (
                "a restart asked for",
                vec![(
                    1,
                    Wanted {
                        restarts: 1,
                        ..w(1, true)
                    },
                )],
                vec![(1, w(1, true))],
                Plan {
                    restart: vec![1],
                    ..Plan::default()
                },
            ),
            (
                "new",
                vec![(1, w(1, true))],
                vec![],
                Plan {
                    start: vec![1],
                    ..Plan::default()
                },
            ),
            (
                "deleted",
                vec![],
                vec![(1, w(1, true))],
                Plan {
                    stop: vec![1],
                    ..Plan::default()
                },
            ),
            (
                "same",
                vec![(1, w(2, true))],
                vec![(1, w(2, true))],
                Plan::default(),
            ),
            (
                "new config",
                vec![(1, w(3, true))],
                vec![(1, w(2, true))],
                Plan {
                    restart: vec![1],
                    ..Plan::default()
                },
            ),
            (
                "stopped",
                vec![(1, w(2, false))],
                vec![(1, w(2, true))],
                Plan {
                    restart: vec![1],
                    ..Plan::default()
                },
            ),
            (
                "started again",
                vec![(1, w(2, true))],
                vec![(1, w(2, false))],
                Plan {
                    restart: vec![1],
                    ..Plan::default()
                },
            ),
            (
                "new plugin build",
                vec![(1, built(2, "b2"))],
                vec![(1, built(2, "a1"))],
                Plan {
                    restart: vec![1],
                    ..Plan::default()
                },
            ),
            (
                "plugin installed",
                vec![(1, built(2, "a1"))],
                vec![(
                    1,
                    Wanted {
                        plugin: None,
                        ..w(2, true)
                    },
                )],
                Plan {
                    restart: vec![1],
                    ..Plan::default()
                },
            ),
            (
                "mixed",
                vec![(1, w(1, true)), (3, w(2, true)), (4, w(1, true))],
                vec![(1, w(1, true)), (2, w(1, true)), (3, w(1, true))],
                Plan {
                    stop: vec![2],
                    restart: vec![3],
                    start: vec![4],
                },
            ),
        ];
        for (name, desired, managed, want) in cases {
            let plan = reconcile(
                &desired.into_iter().collect(),
                &managed.into_iter().collect(),
            );
            assert_eq!(plan, want, "{name}");
        }
    }
}
