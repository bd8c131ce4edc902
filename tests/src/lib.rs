//! Shared harness for the end-to-end tests and benchmarks: builds the workspace's real
//! binaries and plugin libraries once per test process and says where they are.

pub mod cluster;
pub mod daemon;
pub mod iceberg;
pub mod iggy_server;
pub mod local;
pub mod opensearch;
pub mod proxy;
pub mod standalone;

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::{Mutex, OnceLock},
};

pub mod pg;

/// Packages whose artifacts the tests use: the daemon and every plugin library.
pub const ARTIFACT_PACKAGES: &[&str] = &[
    "ld-connectord",
    "ld-supervisor",
    "stdout-sink",
    "random-source",
    "minimal-sink",
    "minimal-source",
    "test-sink",
    "old-abi-plugin",
    "postgres-sink",
    "postgres-source",
    "elasticsearch-sink",
    "iceberg-sink",
];

/// The target profile directory this test binary was built into (`target/debug` or
/// `target/release`), found from the test executable's own path so that
/// `CARGO_TARGET_DIR` is honoured.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current test executable");
    // target/<profile>/deps/<test-binary>
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .to_path_buf()
}

/// Builds the daemon and the plugin libraries (a no-op when they are up to date) and
/// returns the directory holding them. `cargo test` does not build other packages'
/// cdylibs or binaries for us, so the harness asks cargo once per process.
pub fn artifacts() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = profile_dir();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.arg("build").arg("--quiet");
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        for package in ARTIFACT_PACKAGES {
            cmd.args(["-p", package]);
        }
        // Tests of the Iggy backend run the daemon built with it.
        if cfg!(feature = "iggy") {
            cmd.args(["--features", "ld-connectord/iggy"]);
        }
        let target_dir = dir.parent().expect("target dir");
        cmd.env("CARGO_TARGET_DIR", target_dir);
        let status = cmd
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cannot run cargo to build the plugin libraries");
        assert!(status.success(), "building the test artifacts failed");
        dir
    })
}

/// Path of a plugin library built against an earlier `ld-plugin-api` by its frozen
/// workspace `tests/frozen/<release>` (e.g. `frozen_plugin("0.1.0", "abi_0_1_0_sink")`).
/// Each release's workspace is built once per process into `<target>/frozen`, with the
/// same profile as the tests.
pub fn frozen_plugin(release: &str, name: &str) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let profile = profile_dir();
    let release_build = profile.file_name().is_some_and(|n| n == "release");
    let target_dir = profile.parent().expect("target dir").join("frozen");
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.iter().any(|r| r == release) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.arg("build").arg("--quiet").arg("--locked");
        if release_build {
            cmd.arg("--release");
        }
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("frozen")
            .join(release)
            .join("Cargo.toml");
        let status = cmd
            .arg("--manifest-path")
            .arg(&manifest)
            .env("CARGO_TARGET_DIR", &target_dir)
            .status()
            .expect("cannot run cargo to build the frozen plugins");
        assert!(status.success(), "building {} failed", manifest.display());
        built.push(release.to_string());
    }
    target_dir
        .join(if release_build { "release" } else { "debug" })
        .join(format!("libld_{name}.so"))
}

/// Prints a conformance report (`ld_plugin_api::testing::conformance::Report`) with the
/// time since `started`, for the test's output.
pub fn print_report(what: &str, report: &impl std::fmt::Display, started: std::time::Instant) {
    eprintln!(
        "{what}: conformance report ({:.1} s)\n{report}",
        started.elapsed().as_secs_f64()
    );
}

/// Path of a plugin library built from this workspace, e.g. `plugin("stdout_sink")`
/// for `libld_stdout_sink.so`.
pub fn plugin(name: &str) -> PathBuf {
    artifacts().join(format!("libld_{name}.so"))
}

/// Path of the `ld-connectord` binary.
pub fn daemon_binary() -> PathBuf {
    artifacts().join("ld-connectord")
}

/// A directory holding copies of just the named plugins, for tests that scan a
/// plugin directory.
pub fn plugin_dir_with(names: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for name in names {
        let src = plugin(name);
        std::fs::copy(&src, dir.path().join(src.file_name().expect("file name")))
            .expect("copy plugin");
    }
    dir
}
