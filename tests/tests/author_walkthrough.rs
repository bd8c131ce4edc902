//! What a plugin author does, end to end, once for a sink and once for a source:
//! `ld-connectord new-plugin`, `cargo build --release` and `cargo test` in the new crate,
//! `check-plugin --config` with its example config (ok) and with a wrong one (refused,
//! naming the fields), then the library in `ld-connectord local` with one of this
//! repository's plugins, until its messages are seen.
//!
//! The crates are generated outside this workspace and built against its `plugin-api`
//! folder, with its Cargo.lock (so no other dependency versions are fetched), into
//! `<target>/walkthrough`, which is kept: the first run compiles the dependencies (for
//! release and for the tests), later runs little more than the new crate. Each step's
//! wall time is printed (see it with `-- --nocapture`).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::Mutex,
    time::{Duration, Instant},
};

use ld_e2e_tests::{daemon_binary, local::LocalRun, profile_dir};
use serde_json::json;

/// The cargo steps of the two tests, one at a time (cargo would make one wait for the
/// other's lock on the target directory anyway; this keeps the timings honest).
static CARGO: Mutex<()> = Mutex::new(());

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Where the generated crates build, kept between runs.
fn target_dir() -> PathBuf {
    profile_dir()
        .parent()
        .expect("target dir")
        .join("walkthrough")
}

/// Runs one step, printing its wall time.
fn step(name: &str, command: &mut Command) -> Output {
    let started = Instant::now();
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{name}: cannot run: {e}"));
    eprintln!(
        "walkthrough: {name}: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    output
}

fn text(output: &Output) -> String {
    format!(
        "exit {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn succeeded(name: &str, output: Output) -> Output {
    assert!(output.status.success(), "{name} failed: {}", text(&output));
    output
}

/// A generated crate, in a temporary directory.
struct Generated {
    tmp: tempfile::TempDir,
    root: PathBuf,
    library: PathBuf,
}

impl Generated {
    /// `ld-connectord new-plugin NAME --sink|--source`, then `cargo build --release` and
    /// `cargo test` in it.
    fn new(name: &str, side: &str) -> Self {
        let daemon = {
            let started = Instant::now();
            let daemon = daemon_binary();
            eprintln!(
                "walkthrough: the workspace's daemon and plugins: {:.1} s",
                started.elapsed().as_secs_f64()
            );
            daemon
        };
        let tmp = tempfile::tempdir().expect("temp dir");
        let created = succeeded(
            "new-plugin",
            step(
                &format!("new-plugin {name} {side}"),
                Command::new(&daemon)
                    .args(["new-plugin", name, side, "--dir"])
                    .arg(tmp.path())
                    .arg("--api-path")
                    .arg(workspace().join("plugin-api")),
            ),
        );
        assert!(
            String::from_utf8_lossy(&created.stdout).contains("created"),
            "{}",
            text(&created)
        );
        let root = tmp.path().join(name);
        std::fs::copy(workspace().join("Cargo.lock"), root.join("Cargo.lock"))
            .expect("copy Cargo.lock");

        let _cargo = CARGO.lock().unwrap_or_else(|e| e.into_inner());
        let cargo = |args: &[&str]| {
            let mut command =
                Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
            command
                .args(args)
                .current_dir(&root)
                .env("CARGO_TARGET_DIR", target_dir());
            command
        };
        succeeded(
            "cargo build --release",
            step(
                &format!("{name}: cargo build --release"),
                &mut cargo(&["build", "--release"]),
            ),
        );
        let tested = succeeded(
            "cargo test",
            step(&format!("{name}: cargo test"), &mut cargo(&["test"])),
        );
        assert!(
            String::from_utf8_lossy(&tested.stdout).contains("test result: ok"),
            "{}",
            text(&tested)
        );
        let library = target_dir()
            .join("release")
            .join(format!("libld_{}.so", name.replace('-', "_")));
        assert!(library.is_file(), "{} was built", library.display());
        Generated { tmp, root, library }
    }

    /// `check-plugin <library> --config <file>`.
    fn check(&self, config: &Path) -> Output {
        step(
            &format!("check-plugin --config {}", config.display()),
            Command::new(daemon_binary())
                .arg("check-plugin")
                .arg(&self.library)
                .arg("--config")
                .arg(config)
                .arg("--cache-dir")
                .arg(self.tmp.path().join("plugin-cache")),
        )
    }

    /// The example config passes with one `ok` line.
    fn check_example_config(&self) {
        let ok = succeeded(
            "check-plugin with the example config",
            self.check(&self.root.join("example-config.json")),
        );
        let stdout = String::from_utf8_lossy(&ok.stdout);
        assert!(stdout.starts_with("ok: "), "{}", text(&ok));
        assert_eq!(stdout.lines().count(), 1, "{}", text(&ok));
    }

    /// `wrong` is refused with exactly the lines `expected`.
    fn check_wrong_config(&self, wrong: serde_json::Value, expected: &[&str]) {
        let file = self.tmp.path().join("wrong-config.json");
        std::fs::write(&file, wrong.to_string()).expect("write config");
        let refused = self.check(&file);
        assert!(!refused.status.success(), "{}", text(&refused));
        let stderr = String::from_utf8_lossy(&refused.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines, expected, "{}", text(&refused));
    }
}

/// Waits for `done` or panics after `limit` with `context()`.
fn wait_until(limit: Duration, mut done: impl FnMut() -> bool, context: impl Fn() -> String) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < limit,
            "not within {limit:?}:\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_new_sink_builds_tests_checks_and_runs_behind_the_random_source() {
    let started = Instant::now();
    let sink = Generated::new("walk-sink", "--sink");
    sink.check_example_config();
    sink.check_wrong_config(
        json!({"prefix": 7, "colour": "red"}),
        &[
            "plugin_config.colour: unknown field",
            "plugin_config.prefix: 7 is not of type \"string\"",
        ],
    );
    // What only the plugin's `new` checks.
    sink.check_wrong_config(
        json!({"prefix": ""}),
        &["plugin_config.prefix: must not be empty"],
    );

    let mut run = LocalRun::new(&["random_source"]);
    std::fs::copy(&sink.library, run.plugin_dir().join("libld_walk_sink.so"))
        .expect("copy the plugin");
    run.instance(
        "gen",
        json!({"type": "source", "key": "random",
               "streams": [{"stream": "walk", "topic": "events"}],
               "plugin_config": {"seed": 1, "count": 500, "rate": 0, "batch_size": 100}}),
    );
    run.instance(
        "out",
        json!({"type": "sink", "key": "walk-sink",
               "streams": [{"stream": "walk", "topics": ["events"], "batch_length": 100}],
               "plugin_config": {"prefix": "walk-sink got"}}),
    );
    let running = Instant::now();
    run.start();
    wait_until(
        Duration::from_secs(60),
        || run.log().contains("(500 in all)"),
        || run.log(),
    );
    eprintln!(
        "walkthrough: local, random -> walk-sink, 500 messages seen: {:.1} s",
        running.elapsed().as_secs_f64()
    );
    let (clean, _) = run.terminate(Duration::from_secs(20));
    let log = run.log();
    assert!(clean, "clean exit:\n{log}");
    // One line per batch, each with its count: together every message, once.
    let seen: u64 = log
        .lines()
        .filter_map(|line| line.split("walk-sink got ").nth(1))
        .map(|rest| {
            let count = rest.split(' ').next().expect("a count");
            count.parse::<u64>().expect("a number")
        })
        .sum();
    assert_eq!(seen, 500, "{log}");
    eprintln!(
        "walkthrough: sink, in all: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn a_new_source_builds_tests_checks_and_runs_into_the_stdout_sink() {
    let started = Instant::now();
    let source = Generated::new("walk-source", "--source");
    source.check_example_config();
    source.check_wrong_config(
        json!({"batch_size": "x", "interval": 5}),
        &[
            "plugin_config.batch_size: \"x\" is not of type \"integer\"",
            "plugin_config.interval: 5 is not of type \"string\"",
        ],
    );
    source.check_wrong_config(
        json!({"interval": "soon"}),
        &["plugin_config.interval: `soon` is not a duration (e.g. \"500ms\", \"1s\", \"2m\")"],
    );

    let mut run = LocalRun::new(&["stdout_sink"]);
    std::fs::copy(
        &source.library,
        run.plugin_dir().join("libld_walk_source.so"),
    )
    .expect("copy the plugin");
    run.instance(
        "gen",
        json!({"type": "source", "key": "walk-source",
               "streams": [{"stream": "walk", "topic": "numbers"}],
               "plugin_config": {"count": 50, "batch_size": 10, "interval": "10ms"}}),
    );
    run.instance(
        "out",
        json!({"type": "sink", "key": "stdout",
               "streams": [{"stream": "walk", "topics": ["numbers"]}],
               "plugin_config": {}}),
    );
    run.capture_stdout();
    let running = Instant::now();
    run.start();
    let numbers = |stdout: &str| -> BTreeMap<u64, u32> {
        let mut seen = BTreeMap::new();
        // Only whole lines: the sink may be writing one right now.
        for line in stdout.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
            let message: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            let n = message["n"]
                .as_u64()
                .unwrap_or_else(|| panic!("no n: {line}"));
            *seen.entry(n).or_insert(0) += 1;
        }
        seen
    };
    wait_until(
        Duration::from_secs(60),
        || numbers(&run.stdout()).len() >= 50,
        || format!("stdout:\n{}\nlog:\n{}", run.stdout(), run.log()),
    );
    eprintln!(
        "walkthrough: local, walk-source -> stdout, 50 messages seen: {:.1} s",
        running.elapsed().as_secs_f64()
    );
    let (clean, _) = run.terminate(Duration::from_secs(20));
    assert!(clean, "clean exit:\n{}", run.log());
    let seen = numbers(&run.stdout());
    let expected: BTreeMap<u64, u32> = (1..=50).map(|n| (n, 1)).collect();
    assert_eq!(seen, expected, "each of 1..=50 once");
    eprintln!(
        "walkthrough: source, in all: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
