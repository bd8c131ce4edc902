//! The systemd unit in `systemd/`: `systemd-analyze verify` accepts it (when the tool is
//! installed), it says what the daemon needs (notify, restart on failure, a stop timeout
//! above the daemon's own, no W^X rule that would break dlopen), and the example config
//! and env file load.

use std::{path::PathBuf, process::Command, time::Duration};

use ld_connectord::config::DaemonConfig;

fn systemd_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("systemd")
}

fn unit() -> String {
    std::fs::read_to_string(systemd_dir().join("ld-connectord.service")).unwrap()
}

/// Every `Key=value` of the unit, in order (a key may repeat).
fn settings(unit: &str) -> Vec<(String, String)> {
    unit.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn value<'a>(all: &'a [(String, String)], key: &str) -> Option<&'a str> {
    all.iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[test]
fn systemd_analyze_verifies_the_unit() {
    let Ok(found) = Command::new("which").arg("systemd-analyze").output() else {
        eprintln!("SKIPPED: `which` is not available to look for systemd-analyze");
        return;
    };
    if !found.status.success() {
        eprintln!("SKIPPED: systemd-analyze is not installed (apt-get install systemd)");
        return;
    }
    // `verify` checks that ExecStart's binary exists: verify a copy of the real unit in
    // a temp dir with only /usr/bin/ld-connectord replaced by the binary we built.
    let binary = ld_e2e_tests::daemon_binary();
    let text = unit();
    let exec = "ExecStart=/usr/bin/ld-connectord ";
    assert!(text.contains(exec));
    let copy = text.replace(exec, &format!("ExecStart={} ", binary.display()));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ld-connectord.service");
    std::fs::write(&path, copy).unwrap();
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    // systemd-analyze exits 0 on unknown keys and merely warns: any line about our
    // unit is a failure.
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("ld-connectord"))
        .collect();
    assert!(
        output.status.success() && ours.is_empty(),
        "systemd-analyze verify: {}\n{stderr}",
        output.status
    );
}

#[test]
fn unit_says_what_the_daemon_needs() {
    let all = settings(&unit());
    let get = |key| value(&all, key);
    assert_eq!(get("Type"), Some("notify"));
    assert_eq!(
        get("ExecStart"),
        Some("/usr/bin/ld-connectord run --config /etc/ld-connectord/config.toml")
    );
    assert_eq!(get("EnvironmentFile"), Some("-/etc/ld-connectord/env"));
    assert_eq!(get("Restart"), Some("on-failure"));
    assert_eq!(get("StateDirectory"), Some("ld-connectord"));
    assert!(get("DynamicUser") == Some("yes") || get("User").is_some());
    assert_eq!(get("ProtectSystem"), Some("strict"));
    assert_eq!(get("NoNewPrivileges"), Some("yes"));
    assert_eq!(get("PrivateTmp"), Some("yes"));
    assert_eq!(get("CapabilityBoundingSet"), Some(""));
    assert_eq!(get("ProtectHome"), Some("yes"));
    assert_eq!(
        get("RestrictAddressFamilies"),
        Some("AF_INET AF_INET6 AF_UNIX")
    );
    // Plugins are dlopen'ed: W^X would refuse to map them.
    assert_eq!(get("MemoryDenyWriteExecute"), None);
    // The daemon drains within its shutdown_timeout; systemd must wait longer.
    let stop = humantime::parse_duration(get("TimeoutStopSec").expect("TimeoutStopSec"))
        .expect("a duration");
    let example = example_config();
    assert!(
        stop > example.shutdown_timeout + Duration::from_secs(5),
        "TimeoutStopSec {stop:?} leaves margin over shutdown_timeout {:?}",
        example.shutdown_timeout
    );
    assert_eq!(example.state_dir, PathBuf::from("/var/lib/ld-connectord"));
}

fn example_config() -> DaemonConfig {
    // The API key comes from the env file in production; put one in a copy.
    let text = std::fs::read_to_string(systemd_dir().join("config.toml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, format!("api_key = \"from-env\"\n{text}")).unwrap();
    DaemonConfig::load(Some(&path)).unwrap_or_else(|e| panic!("systemd/config.toml: {e}"))
}

#[test]
fn example_env_file_only_sets_daemon_variables() {
    let text = std::fs::read_to_string(systemd_dir().join("env")).unwrap();
    let set: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert!(set.iter().any(|l| l.starts_with("LD_CONNECTORD_API_KEY=")));
    for line in set {
        assert!(line.starts_with("LD_CONNECTORD_"), "{line}");
    }
}
