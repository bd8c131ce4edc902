//! `ld-connectord local` runs a file-configured pipeline against a real Apache Iggy
//! server: random source -> Iggy topic -> test sink; every id arrives, and SIGTERM
//! then a restart loses nothing.
//!
//! Needs `--features iggy` and `IGGY_TEST_ADDRESS` (e.g. `127.0.0.1:8090`; user and
//! password from `IGGY_TEST_USER`/`IGGY_TEST_PASSWORD`, default iggy/iggy); without the
//! address it prints a skip notice.
#![cfg(feature = "iggy")]

use std::time::Duration;

use ld_e2e_tests::local::{read_ids, wait_for_ids, LocalRun};

#[test]
fn local_runs_a_file_configured_pipeline_through_iggy() {
    let Ok(address) = std::env::var("IGGY_TEST_ADDRESS") else {
        eprintln!("skipped: IGGY_TEST_ADDRESS is not set");
        return;
    };
    let user = std::env::var("IGGY_TEST_USER").unwrap_or_else(|_| "iggy".into());
    let password = std::env::var("IGGY_TEST_PASSWORD").unwrap_or_else(|_| "iggy".into());
    const COUNT: u64 = 20_000;
    let stream = format!("ld-local-{}", std::process::id());
    let mut run = LocalRun::new(&["random_source", "test_sink"]);
    let out = run.path("ids.txt");
    // Instance files in the shape of Iggy's connector files.
    for (name, text) in [
        (
            "gen.toml",
            format!(
                "type = \"source\"\nkey = \"random\"\nenabled = true\nversion = 0\n\
                 name = \"Random source\"\npath = \"target/release/libiggy_connector_random_source\"\n\
                 [[streams]]\nstream = \"{stream}\"\ntopic = \"numbers\"\nschema = \"json\"\n\
                 batch_length = 1000\nlinger_time = \"5ms\"\n\
                 [plugin_config]\nseed = 9\ncount = {COUNT}\nrate = 20000\nbatch_size = 1000\n"
            ),
        ),
        (
            "rec.toml",
            format!(
                "type = \"sink\"\nkey = \"test\"\nenabled = true\nversion = 0\n\
                 name = \"Test sink\"\npath = \"target/release/libiggy_connector_test_sink\"\n\
                 [[streams]]\nstream = \"{stream}\"\ntopics = [\"numbers\"]\nschema = \"json\"\n\
                 batch_length = 1000\npoll_interval = \"5ms\"\nconsumer_group = \"rec\"\n\
                 [plugin_config]\noutput_file = \"{}\"\n",
                out.display()
            ),
        ),
    ] {
        std::fs::write(run.path(name), text).unwrap();
    }
    let files = [run.path("gen.toml"), run.path("rec.toml")];
    run.args(&[
        "--stream",
        &format!("iggy://{user}:{password}@{address}"),
        files[0].to_str().unwrap(),
        files[1].to_str().unwrap(),
    ]);
    run.start();
    wait_for_ids(&out, Duration::from_secs(120), |ids| ids.len() >= 5_000);
    let (ok, _) = run.terminate(Duration::from_secs(30));
    assert!(ok, "clean exit after SIGTERM; log:\n{}", run.log());
    assert!(
        run.log().contains("iggy"),
        "the log names the backend:\n{}",
        run.log()
    );

    run.start();
    let ids = wait_for_ids(&out, Duration::from_secs(120), |ids| {
        ids.len() as u64 >= COUNT
    });
    for id in 1..=COUNT as u128 {
        assert!(ids.contains_key(&id), "id {id} missing");
    }
    assert_eq!(ids.len() as u64, COUNT, "no id outside 1..={COUNT}");
    let (ok, _) = run.terminate(Duration::from_secs(30));
    assert!(ok, "clean exit; log:\n{}", run.log());
    assert_eq!(read_ids(&out).len() as u64, COUNT);
}
