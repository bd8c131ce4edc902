//! `ld-connectord standalone` as a newcomer meets it: a fresh build starts with no
//! warning, and its catalog offers only the connectors we ship (no example or test
//! fixture), over the real API.

use std::time::Duration;

use ld_e2e_tests::{daemon::wait_until, standalone::Standalone};
use ld_protocol::{CatalogQuery, Scope};

#[test]
fn a_fresh_standalone_lists_only_shipped_connectors_without_warnings() {
    let mut standalone = Standalone::start(&["--no-demo"]);
    let query = CatalogQuery {
        page: Some(1),
        results: Some(100),
        ..CatalogQuery::default()
    };
    let catalog =
        |s: &Standalone| s.block_on(s.client().catalog(&Scope::new("1", "1", "1"), &query));
    // The node's first heartbeat brings the catalog.
    let catalog = wait_until(
        Duration::from_secs(60),
        "an available connector in the catalog",
        || {
            let items = catalog(&standalone).ok()?.items;
            items.iter().any(|i| i.available).then_some(items)
        },
        || format!("{:?}; log:\n{}", catalog(&standalone), standalone.log()),
    );
    standalone.terminate(Duration::from_secs(15));
    let log = standalone.log();

    let mut keys: Vec<String> = catalog
        .iter()
        .map(|i| format!("{} {}", i.key, i.connector_type))
        .collect();
    keys.sort();
    for shipped in [
        "random source",
        "stdout sink",
        "postgres sink",
        "postgres source",
    ] {
        assert!(
            keys.iter().any(|k| k == shipped),
            "{shipped} offered: {keys:?}"
        );
    }
    for fixture in ["test", "minimal", "old"] {
        assert!(
            !keys.iter().any(|k| k.starts_with(fixture)),
            "no {fixture} connector offered: {keys:?}"
        );
    }
    assert!(!log.contains("WARN"), "no warning on a fresh build:\n{log}");
}
