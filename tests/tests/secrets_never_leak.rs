//! A recognisable password goes through every path of the real supervisor and a real
//! daemon and never comes back out: API answers (activate, list for read and manage keys),
//! status reasons, both logs, the node's `/instances` and `/metrics`. The plugin (the test
//! sink) behaves as carelessly as it can: it logs the password and fails with it in its
//! error text. `${file:..}` references are resolved on the node only.

use std::time::Duration;

use ld_e2e_tests::daemon::{sink_config, Http, Node, NodeOptions, Supervisor};
use ld_protocol::{InstanceStatus, Permission};
use serde_json::json;

const PASSWORD: &str = "SuperSecret123";
const FILE_PASSWORD: &str = "FileSecret456";

/// A GET of the node's local API (no key).
fn get(http: &Http, url: &str) -> String {
    let answer = http.send(http.client().get(url)).unwrap();
    assert_eq!(answer.status, 200, "GET {url}: {}", answer.body);
    answer.body
}

fn assert_clean(what: &str, text: &str) {
    for secret in [PASSWORD, FILE_PASSWORD] {
        assert!(!text.contains(secret), "{what} shows the secret: {text}");
    }
}

#[test]
fn a_password_never_comes_back_out_of_any_path() {
    let supervisor = Supervisor::start();
    let node = Node::start(&supervisor, "node-s", NodeOptions::default());
    let http = Http::new();
    let secret_file = node.path("db-password");
    std::fs::write(&secret_file, format!("{FILE_PASSWORD}\n")).unwrap();

    // Both instances fail in `open` with the password in the plugin's own error text.
    let inline = supervisor.activate(
        "leaky-inline",
        "test",
        "sink",
        sink_config(
            "orders",
            json!({"password": PASSWORD, "leak_password": true}),
        ),
    );
    let by_ref = supervisor.activate(
        "leaky-ref",
        "test",
        "sink",
        sink_config(
            "orders",
            json!({"password": format!("${{file:{}}}", secret_file.display()),
                   "leak_password": true}),
        ),
    );
    assert_clean(
        "the activate answer",
        &serde_json::to_string(&inline.config).unwrap(),
    );
    for item in [&inline, &by_ref] {
        let failed =
            supervisor.wait_status(item.id, InstanceStatus::Failed, Duration::from_secs(15));
        let reason = failed.reason.clone().expect("a reason");
        assert!(
            reason.contains("login refused for password ******"),
            "the plugin's reason, masked: {reason}"
        );
        assert_clean("the status reason", &reason);
    }

    for permissions in [
        &[Permission::Read][..],
        &[Permission::Manage, Permission::Read][..],
    ] {
        let key = supervisor.create_key(permissions);
        let body = supervisor.list_json_as(&key);
        assert_clean(&format!("the list for {permissions:?}"), &body);
        assert!(body.contains("******"), "masked, not dropped: {body}");
    }

    let local = node.api_url();
    assert_clean("/instances", &get(&http, &format!("{local}/instances")));
    assert_clean("/metrics", &get(&http, &format!("{local}/metrics")));
    let daemon_log = node.log();
    assert!(
        daemon_log.contains("logging in with password ******"),
        "the plugin's log line arrived, masked: {daemon_log}"
    );
    assert_clean("the daemon log", &daemon_log);
    assert_clean("the supervisor log", &supervisor.log());
}

#[test]
fn a_missing_reference_fails_the_instance_naming_the_reference() {
    let supervisor = Supervisor::start();
    let _node = Node::start(&supervisor, "node-r", NodeOptions::default());
    let item = supervisor.activate(
        "no-secret",
        "test",
        "sink",
        sink_config(
            "orders",
            json!({"password": "${env:LD_TEST_NOT_SET_ANYWHERE}"}),
        ),
    );
    let failed = supervisor.wait_status(item.id, InstanceStatus::Failed, Duration::from_secs(15));
    let reason = failed.reason.expect("a reason");
    assert!(
        reason.contains("plugin_config.password: cannot resolve `${env:LD_TEST_NOT_SET_ANYWHERE}`: the environment variable is not set"),
        "{reason}"
    );
}
