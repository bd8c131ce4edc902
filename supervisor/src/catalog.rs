//! The connector catalog of a deployment, and its pagination.
//!
//! The catalog is the union of the registered entries (built-in list, `--catalog` file,
//! [`crate::Supervisor::register_catalog_entry`]) and the plugins the deployment's nodes
//! reported in heartbeats. An entry is `available` when a *live* node has the plugin; nodes
//! whose heartbeat expired still contribute their plugins, as unavailable, so a connector
//! does not vanish from the catalog while its node restarts.

use std::collections::BTreeMap;
use std::ops::Range;

use crate::api::{CatalogItem, ConnectorType};
use crate::store::{CatalogEntry, NodeRecord};

/// Default page size of the catalog.
pub const DEFAULT_RESULTS: u64 = 10;
/// Largest page size of the catalog.
pub const MAX_RESULTS: u64 = 100;

/// Builds the full catalog, sorted by key then type, with `permitted` set for every entry.
pub fn build(
    registered: &[CatalogEntry],
    nodes: &[(&NodeRecord, bool)],
    permitted: bool,
) -> Vec<CatalogItem> {
    let mut items: BTreeMap<(String, ConnectorType), CatalogItem> = BTreeMap::new();
    for entry in registered {
        items.insert(
            (entry.key.clone(), entry.connector_type),
            CatalogItem {
                key: entry.key.clone(),
                connector_type: entry.connector_type,
                name: entry.name.clone(),
                description: entry.description.clone(),
                available: false,
                permitted,
            },
        );
    }
    for (node, live) in nodes {
        for plugin in &node.plugins {
            let item = items
                .entry((plugin.key.clone(), plugin.connector_type))
                .or_insert_with(|| CatalogItem {
                    key: plugin.key.clone(),
                    connector_type: plugin.connector_type,
                    name: plugin.name.clone(),
                    description: plugin.description.clone(),
                    available: false,
                    permitted,
                });
            item.available |= *live;
        }
    }
    items.into_values().collect()
}

/// The slice of `total` results on `page` (from 1) at `results` per page, and the page count.
pub fn paginate(total: usize, page: u64, results: u64) -> (Range<usize>, u64) {
    let total_pages = (total as u64).div_ceil(results);
    let start = page
        .saturating_sub(1)
        .saturating_mul(results)
        .min(total as u64) as usize;
    let end = (start as u64 + results).min(total as u64) as usize;
    (start..end, total_pages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::PluginInfo;

    #[test]
    fn paginate_edges() {
        assert_eq!(paginate(0, 1, 10), (0..0, 0));
        assert_eq!(paginate(10, 1, 10), (0..10, 1));
        assert_eq!(paginate(11, 2, 10), (10..11, 2));
        assert_eq!(paginate(11, 3, 10), (11..11, 2));
        assert_eq!(paginate(5, u64::MAX, 100), (5..5, 1));
    }

    #[test]
    fn live_node_makes_an_entry_available_and_adds_its_plugins() {
        let registered = vec![CatalogEntry {
            key: "postgres".into(),
            connector_type: ConnectorType::Sink,
            name: "PostgreSQL".into(),
            description: String::new(),
        }];
        let plugin = |key: &str| PluginInfo {
            key: key.into(),
            connector_type: ConnectorType::Sink,
            name: key.into(),
            description: String::new(),
            version: "1".into(),
            secret_fields: Vec::new(),
        };
        let live = NodeRecord {
            deployment_id: 1,
            node_id: "a".into(),
            runtime_version: "0.1.0".into(),
            plugins: vec![plugin("postgres")],
            reports: Default::default(),
            last_seen_ms: 0,
        };
        let gone = NodeRecord {
            node_id: "b".into(),
            plugins: vec![plugin("stdout")],
            ..live.clone()
        };
        let items = build(&registered, &[(&live, true), (&gone, false)], true);
        let view: Vec<(&str, bool)> = items
            .iter()
            .map(|i| (i.key.as_str(), i.available))
            .collect();
        assert_eq!(view, vec![("postgres", true), ("stdout", false)]);
        assert_eq!(items[0].name, "PostgreSQL", "registered name wins");
    }
}
