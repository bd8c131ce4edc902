//! The real plugin libraries of this workspace through the real loader.

use std::{path::Path, process::Command};

use ld_connectord::plugin_host::{Catalog, PluginLibrary};
use ld_e2e_tests::{daemon_binary, plugin, plugin_dir_with};
use ld_plugin_api::{ffi::ConnectorType, ErrorKind, Message, Schema, SinkBatch};

fn cache() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Sink message views over the payloads of a source batch (what the data plane does).
fn as_sink_batch_input(batch: &ld_plugin_api::ffi::RawSourceBatch) -> Vec<(u128, Vec<u8>)> {
    batch
        .iter()
        .map(|m| (m.id(), m.payload().to_vec()))
        .collect()
}

#[test]
fn catalog_lists_the_workspace_plugins_by_key_and_type() {
    let dir = plugin_dir_with(&["stdout_sink", "random_source", "test_sink"]);
    let cache = cache();
    let catalog = Catalog::load_dir(dir.path(), cache.path()).unwrap();
    assert!(catalog.refused().is_empty(), "{:?}", catalog.refused());
    let entries: Vec<(String, &str)> = catalog
        .entries()
        .into_iter()
        .map(|e| (e.key, e.connector_type.as_str()))
        .collect();
    assert_eq!(
        entries,
        vec![
            ("random".to_string(), "source"),
            ("stdout".to_string(), "sink"),
            ("test".to_string(), "source"),
            ("test".to_string(), "sink"),
        ]
    );
    assert!(catalog.get("stdout", ConnectorType::Sink).is_some());
    assert!(catalog.get("stdout", ConnectorType::Source).is_none());
    let schema = &catalog.entries()[1].config_schema;
    assert!(
        schema["properties"]["print_payload"].is_object(),
        "stdout config schema published: {schema}"
    );
}

#[test]
fn bad_files_in_a_directory_are_refused_and_the_rest_load() {
    let dir = plugin_dir_with(&["stdout_sink", "old_abi_plugin"]);
    std::fs::write(dir.path().join("x.so"), b"\x01\x02 definitely not ELF").unwrap();
    let cache = cache();
    let catalog = Catalog::load_dir(dir.path(), cache.path()).unwrap();
    assert_eq!(catalog.entries().len(), 1);
    assert_eq!(catalog.refused().len(), 2);
    for err in catalog.refused() {
        let text = err.to_string();
        assert!(!text.contains('\n'), "one line: {text}");
        assert!(text.len() < 400, "short: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_plugins_in_one_process_each_run_their_own_code() {
    let cache = cache();
    let random = PluginLibrary::load(&plugin("random_source"), cache.path()).unwrap();
    let test_sink = PluginLibrary::load(&plugin("test_sink"), cache.path()).unwrap();
    let stdout = PluginLibrary::load(&plugin("stdout_sink"), cache.path()).unwrap();
    // RootModule::load_from_file would have handed back the first module for all three.
    assert_eq!(random.meta().key, "random");
    assert_eq!(test_sink.meta().key, "test");
    assert_eq!(stdout.meta().key, "stdout");

    // Each validates with its own config type.
    assert!(stdout
        .validate_config(ConnectorType::Sink, r#"{"print_payload": false}"#)
        .is_ok());
    let err = stdout
        .validate_config(ConnectorType::Sink, r#"{"seed": 1}"#)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(err.message().contains("seed"), "{err}");
    assert!(random
        .validate_config(ConnectorType::Source, r#"{"seed": 1, "count": 5}"#)
        .is_ok());

    // The random source's code produces the batch...
    let mut source = random
        .new_source("gen", r#"{"seed": 3, "count": 5, "batch_size": 5}"#, None)
        .await
        .unwrap();
    source.open().await.unwrap();
    let batch = source.poll().await.unwrap();
    assert_eq!(batch.len(), 5);
    let msgs = as_sink_batch_input(&batch);
    let ids: Vec<u128> = msgs.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, vec![1, 2, 3, 4, 5]);
    let first: serde_json::Value = serde_json::from_slice(&msgs[0].1).unwrap();
    assert_eq!(first["id"], 0);

    // ...and the test sink's code writes it to a file.
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("ids.txt");
    let mut sink = test_sink
        .new_sink(
            "rec",
            &serde_json::json!({"output_file": file.to_str().unwrap()}).to_string(),
        )
        .await
        .unwrap();
    sink.open().await.unwrap();
    let views: Vec<Message<'_>> = msgs
        .iter()
        .enumerate()
        .map(|(i, (id, payload))| Message::new(*id, i as u64, 0, Schema::Json, &[], payload))
        .collect();
    sink.consume(SinkBatch::new("s", "t", 0, &views))
        .await
        .unwrap();
    sink.close().await.unwrap();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "1\n2\n3\n4\n5\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_consume_is_an_error_and_the_process_lives() {
    let cache = cache();
    let lib = PluginLibrary::load(&plugin("test_sink"), cache.path()).unwrap();
    let mut sink = lib
        .new_sink("boom", r#"{"panic_in": "consume"}"#)
        .await
        .unwrap();
    sink.open().await.unwrap();
    let payload = b"{}";
    let views = [Message::new(1, 0, 0, Schema::Json, &[], payload)];
    let err = sink
        .consume(SinkBatch::new("s", "t", 0, &views))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Panicked);
    assert!(err.message().contains("index out of bounds"), "{err}");

    // The same library still serves new instances, and so does the panicking one's
    // process: another sink instance works normally.
    let mut healthy = lib.new_sink("ok", "{}").await.unwrap();
    healthy.open().await.unwrap();
    healthy
        .consume(SinkBatch::new("s", "t", 0, &views))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_in_constructor_and_open_are_errors() {
    let cache = cache();
    let lib = PluginLibrary::load(&plugin("test_sink"), cache.path()).unwrap();
    let err = lib
        .new_sink("boom", r#"{"panic_in": "new"}"#)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Panicked);
    assert!(err.message().contains("panic in new"), "{err}");

    let mut sink = lib
        .new_sink("boom2", r#"{"panic_in": "open"}"#)
        .await
        .unwrap();
    let err = sink.open().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Panicked);

    let mut sink = lib
        .new_sink("fails", r#"{"fail_open": "database is gone"}"#)
        .await
        .unwrap();
    let err = sink.open().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Fatal);
    assert_eq!(err.message(), "database is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_config_is_refused_naming_the_field() {
    let cache = cache();
    let lib = PluginLibrary::load(&plugin("random_source"), cache.path()).unwrap();
    let err = lib
        .new_source("gen", r#"{"rate": "fast"}"#, None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(err.message().starts_with("plugin_config.rate:"), "{err}");
    let err = lib
        .new_source("gen", r#"{"batch_size": 0}"#, None)
        .await
        .unwrap_err();
    assert!(err.message().contains("batch_size"), "{err}");
    // The source side of a sink-only plugin does not exist.
    let sink_only = PluginLibrary::load(&plugin("stdout_sink"), cache.path()).unwrap();
    let err = sink_only.new_source("x", "{}", None).await.unwrap_err();
    assert!(err.message().contains("provides no source"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sources_saved_state_comes_back_on_the_next_construction() {
    let cache = cache();
    let lib = PluginLibrary::load(&plugin("random_source"), cache.path()).unwrap();
    let config = r#"{"seed": 11, "batch_size": 4}"#;
    let mut first = lib.new_source("gen", config, None).await.unwrap();
    first.open().await.unwrap();
    let mut batch = first.poll().await.unwrap();
    let last_id = batch.iter().last().unwrap().id();
    assert_eq!(last_id, 4);
    let state = batch
        .take_state()
        .expect("random source saves its position");
    first.committed(1).await.unwrap();
    first.close().await.unwrap();
    drop(first);

    let mut second = lib.new_source("gen", config, Some(state)).await.unwrap();
    second.open().await.unwrap();
    let batch = second.poll().await.unwrap();
    let ids: Vec<u128> = batch.iter().map(|m| m.id()).collect();
    assert_eq!(ids, vec![5, 6, 7, 8], "resumes after the saved position");

    let err = lib
        .new_source("gen", config, Some(b"not json".to_vec()))
        .await
        .unwrap_err();
    assert!(err.message().contains("saved source state"), "{err}");
}

#[test]
fn libraries_load_from_a_content_addressed_copy() {
    let cache = cache();
    let dir = plugin_dir_with(&["minimal_sink"]);
    let original = dir.path().join("libld_minimal_sink.so");
    let lib = PluginLibrary::load(&original, cache.path()).unwrap();
    assert_ne!(lib.loaded_from(), original.as_path());
    assert!(lib.loaded_from().starts_with(cache.path()));
    assert!(lib
        .loaded_from()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with(&lib.digest()[..32]));
    // Overwriting the original (a new build being installed) leaves the mapped copy
    // alone: this process keeps running the code it loaded.
    std::fs::write(&original, b"garbage").unwrap();
    assert!(std::fs::read(lib.loaded_from())
        .unwrap()
        .starts_with(b"\x7fELF"));
    assert_eq!(lib.meta().key, "minimal");
    // The same content loads once.
    let again = PluginLibrary::load(&plugin("minimal_sink"), cache.path()).unwrap();
    assert!(std::sync::Arc::ptr_eq(&lib, &again));
}

fn run_check(path: &Path) -> (bool, String, String) {
    let cache = cache();
    let out = Command::new(daemon_binary())
        .arg("check-plugin")
        .arg(path)
        .arg("--cache-dir")
        .arg(cache.path())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_plugin_accepts_a_plugin_and_prints_its_info() {
    let (ok, stdout, _) = run_check(&plugin("stdout_sink"));
    assert!(ok);
    assert!(stdout.starts_with("ok: stdout 0.1.0 (sink)"), "{stdout}");
}

#[test]
fn check_plugin_refuses_random_bytes_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.so");
    let bytes: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&path, bytes).unwrap();
    let (ok, _, stderr) = run_check(&path);
    assert!(!ok);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("x.so") && stderr.contains("not an ELF shared object"),
        "{stderr}"
    );
}

#[test]
fn check_plugin_refuses_a_shared_library_that_is_no_plugin() {
    // A real ELF shared object without our root module: a test binary's own libstd is
    // not at hand, so use the daemon-built plugin directory's neighbour: libc.
    let libc = [
        "/lib/x86_64-linux-gnu/libz.so.1",
        "/usr/lib/x86_64-linux-gnu/libz.so.1",
        "/lib/x86_64-linux-gnu/libm.so.6",
    ]
    .iter()
    .map(Path::new)
    .find(|p| p.exists());
    let Some(lib) = libc else {
        eprintln!("skipped: no system shared library found to test with");
        return;
    };
    let (ok, _, stderr) = run_check(lib);
    assert!(!ok);
    assert!(stderr.contains("exports no plugin root module"), "{stderr}");
}

#[test]
fn check_plugin_refuses_an_incompatible_abi_clearly() {
    let (ok, _, stderr) = run_check(&plugin("old_abi_plugin"));
    assert!(!ok);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("incompatible plugin ABI"), "{stderr}");
    assert!(
        stderr.contains("0.0.1"),
        "names the plugin's ABI version: {stderr}"
    );
}

#[test]
fn plugins_json_lists_stdout_and_random() {
    let dir = plugin_dir_with(&["stdout_sink", "random_source"]);
    let cache = cache();
    let out = Command::new(daemon_binary())
        .args(["plugins", "--json", "--dir"])
        .arg(dir.path())
        .arg("--cache-dir")
        .arg(cache.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pairs: Vec<(String, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["key"].as_str().unwrap().into(),
                e["type"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        pairs,
        vec![
            ("random".into(), "source".into()),
            ("stdout".into(), "sink".into())
        ]
    );
}
