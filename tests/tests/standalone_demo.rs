//! `ld-connectord standalone` with its demo: the embedded supervisor, the daemon, and the
//! demo pipeline it activates through the protocol client (random source -> embedded
//! log -> stdout sink) all run in one process, and the printed API key works against the
//! printed API.

use std::time::Duration;

use ld_e2e_tests::{daemon::wait_until, plugin_dir_with, standalone::Standalone};
use ld_protocol::InstanceStatus;

#[test]
fn standalone_runs_the_demo_pipeline() {
    let plugins = plugin_dir_with(&["random_source", "stdout_sink"]);
    let mut standalone = Standalone::start(&["--plugins", plugins.path().to_str().unwrap()]);
    let list = wait_until(
        Duration::from_secs(30),
        "both demo instances active",
        || {
            let list = standalone
                .block_on(standalone.client().list_instances())
                .ok()?;
            let active = list.len() == 2 && list.iter().all(|i| i.status == InstanceStatus::Active);
            active.then_some(list)
        },
        || {
            format!(
                "{:?}",
                standalone.block_on(standalone.client().list_instances())
            )
        },
    );
    let mut keys: Vec<&str> = list.iter().map(|i| i.key.as_str()).collect();
    keys.sort();
    assert_eq!(keys, ["demo-random", "demo-stdout"]);
    // The stdout sink prints the demo's messages.
    wait_until(
        Duration::from_secs(30),
        "the demo's messages on stdout",
        || (!standalone.stdout().trim().is_empty()).then_some(()),
        || standalone.log(),
    );
    let (ok, _) = standalone.terminate(Duration::from_secs(15));
    assert!(ok, "a clean exit on SIGTERM; log:\n{}", standalone.log());
}
