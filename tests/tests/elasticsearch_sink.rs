//! The `elasticsearch` sink against a real OpenSearch 2.19 node (`ld_e2e_tests::opensearch`):
//! through the real loader, in a real `ld-connectord local` process and in a real daemon
//! under the real supervisor.
//!
//! What it proves: every message is exactly one document, also after a `kill -9` of the
//! daemon mid-stream; an unreachable server is transient and nothing is lost when it comes
//! back; 429 back-pressure from a one-thread write pool loses nothing; a mapping error
//! follows `on_document_error` (fail, skip, or handed to the host as rejected); a bad
//! URL, bad credentials and a missing index end `failed` with the reason; the password shows up in no log, status or API answer.
//!
//! Every test skips (printing why) only when `OpenSearch::start` returns `None` (no java
//! or mvn on the machine).

use std::{
    io::{Read, Write},
    net::TcpListener,
    sync::Arc,
    time::{Duration, Instant},
};

use ld_connectord::plugin_host::{PluginLibrary, SinkHandle};
use ld_e2e_tests::{
    daemon::{Node, NodeOptions, Supervisor},
    local::LocalRun,
    opensearch::{OpenSearch, OpenSearchOptions},
    plugin,
};
use ld_plugin_api::{ErrorKind, Message, Schema, SinkBatch};
use ld_protocol::InstanceStatus;
use serde_json::{json, Value};

/// A password recognisable anywhere it might leak.
const PASSWORD: &str = "Pa55-word-that-must-never-show";
const T0: u64 = 1_709_251_198_000_000; // 2024-02-29T23:59:58Z

fn library(cache: &tempfile::TempDir) -> Arc<PluginLibrary> {
    PluginLibrary::load(&plugin("elasticsearch_sink"), cache.path()).unwrap()
}

async fn open_sink(lib: &Arc<PluginLibrary>, config: Value) -> SinkHandle {
    let mut sink = lib
        .new_sink("es-sink", &config.to_string())
        .await
        .unwrap_or_else(|e| panic!("new_sink: {e}"));
    sink.open().await.unwrap_or_else(|e| panic!("open: {e}"));
    sink
}

fn views<'a>(first: u64, payloads: &'a [Vec<u8>]) -> Vec<Message<'a>> {
    payloads
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let offset = first + i as u64;
            Message::new(u128::from(offset) + 1, offset, T0, Schema::Json, &[], p)
        })
        .collect()
}

fn json_payloads(first: u64, count: u64) -> Vec<Vec<u8>> {
    (first..first + count)
        .map(|i| format!(r#"{{"n":{i},"name":"item-{i}"}}"#).into_bytes())
        .collect()
}

/// Waits until `index` holds `at_least` documents; returns the count. Panics after
/// `limit` with what `log` says.
fn wait_count(
    os: &OpenSearch,
    index: &str,
    at_least: u64,
    limit: Duration,
    log: impl Fn() -> String,
) -> u64 {
    let started = Instant::now();
    loop {
        let n = os.count(index);
        if n >= at_least {
            return n;
        }
        assert!(
            started.elapsed() < limit,
            "only {n} of {at_least} documents in {index} after {limit:?}; log:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Asserts that `index` holds exactly the documents of payload ids `0..count`, once each,
/// with the default ids `shop/<topic>/0/<offset>`.
fn assert_exactly_once(os: &OpenSearch, index: &str, topic: &str, count: u64) {
    assert_eq!(
        os.count(index),
        count,
        "one document per message in {index}"
    );
    let body = json!({"size": 0, "aggs": {
        "lo": {"min": {"field": "id"}},
        "hi": {"max": {"field": "id"}},
        "twice": {"terms": {"field": "id", "min_doc_count": 2, "size": 10}}}});
    let (status, answer) = os.request("POST", &format!("/{index}/_search"), Some(&body));
    assert_eq!(status, 200, "{answer}");
    let aggs = &answer["aggregations"];
    assert_eq!(aggs["lo"]["value"], 0.0, "{aggs}");
    assert_eq!(aggs["hi"]["value"], (count - 1) as f64, "{aggs}");
    assert_eq!(
        aggs["twice"]["buckets"],
        json!([]),
        "no message stored twice"
    );
    // count documents, ids 0..count-1 and none twice: each id exactly once. The
    // document id is derived from the origin and the offset (= the payload id here).
    for offset in [0, count / 2, count - 1] {
        let doc = os.get_json(&format!("/{index}/_doc/shop%2F{topic}%2F0%2F{offset}"));
        assert_eq!(doc["_source"]["id"], offset, "{doc}");
    }
}

/// The random source's `value` is any u64, beyond the `long` a dynamic mapping picks.
fn random_mapping() -> Value {
    json!({"properties": {"id": {"type": "long"}, "value": {"type": "keyword"}}})
}

/// The log without terminal colours.
fn plain(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Stops the run with SIGTERM and asserts that no sink instance failed. (The random
/// source, once its `count` is done, waits forever in `poll`, which the host's 60 s call
/// timeout turns into a failed source: that says nothing about the sink.)
fn stop_and_check_sinks(run: &mut LocalRun) -> String {
    let (_, took) = run.terminate(Duration::from_secs(30));
    let log = plain(&run.log());
    for line in log.lines().filter(|l| l.contains("instance failed")) {
        assert!(
            line.contains("key=\"gen-") || line.contains("key=gen-"),
            "a sink failed: {line}\n{log}"
        );
    }
    eprintln!("stopped in {took:?}");
    log
}

fn pipeline_run(os: &OpenSearch, topic: &str, count: u64, rate: u64, sink: Value) -> LocalRun {
    let mut run = LocalRun::new(&["random_source", "elasticsearch_sink"]);
    run.instance(
        &format!("gen-{topic}"),
        json!({"type": "source", "key": "random",
               "streams": [{"stream": "shop", "topic": topic}],
               "plugin_config": {"seed": 9, "count": count, "rate": rate,
                                 "batch_size": 500, "payload_size": 200}}),
    );
    let mut plugin_config =
        json!({"url": os.url(), "index": topic, "index_mapping": random_mapping()});
    for (k, v) in sink.as_object().unwrap() {
        plugin_config[k] = v.clone();
    }
    run.instance(
        &format!("{topic}-es-sink"),
        json!({"type": "sink", "key": "elasticsearch",
               "streams": [{"stream": "shop", "topics": [topic], "batch_length": 500,
                            "poll_interval": "5ms"}],
               "plugin_config": plugin_config}),
    );
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_loader_every_message_is_one_document_and_redelivery_adds_none() {
    let Some(os) = OpenSearch::start() else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let lib = library(&cache);
    assert_eq!(lib.meta().key, "elasticsearch");
    let schema = &lib.meta().sink.as_ref().expect("a sink").config_schema;
    assert_eq!(schema["required"], json!(["index", "url"]), "{schema}");
    assert!(
        schema["properties"]["batch_size"].is_object(),
        "Iggy's names: {schema}"
    );

    // Split into requests of 64 documents; the same batch twice (a redelivery).
    let mut sink = open_sink(
        &lib,
        json!({"url": os.url(), "index": "orders", "max_bulk_docs": 64, "max_bulk_bytes": 4096}),
    )
    .await;
    let first = json_payloads(0, 500);
    let second = json_payloads(500, 300);
    let batch1 = views(0, &first);
    let batch2 = views(500, &second);
    sink.consume(SinkBatch::new("shop", "orders", 0, &batch1))
        .await
        .unwrap();
    sink.consume(SinkBatch::new("shop", "orders", 0, &batch2))
        .await
        .unwrap();
    sink.consume(SinkBatch::new("shop", "orders", 0, &batch2))
        .await
        .unwrap();
    sink.close().await.unwrap();
    assert_eq!(
        os.count("orders"),
        800,
        "redelivery overwrote, added nothing"
    );
    let doc = os.get_json("/orders/_doc/shop%2Forders%2F0%2F123");
    assert_eq!(doc["_source"], json!({"n": 123, "name": "item-123"}));

    // op_type = create, ids from a payload field: a redelivered batch meets 409s, which
    // count as stored.
    let mut sink = open_sink(
        &lib,
        json!({"url": os.url(), "index": "orders-created", "op_type": "create",
               "document_id": "{field:name}"}),
    )
    .await;
    sink.consume(SinkBatch::new("shop", "orders", 0, &batch1))
        .await
        .unwrap();
    sink.consume(SinkBatch::new("shop", "orders", 0, &batch1))
        .await
        .unwrap();
    assert_eq!(os.count("orders-created"), 500);
    assert_eq!(
        os.get_json("/orders-created/_doc/item-7")["_source"]["n"],
        7
    );

    // Index patterns: the message date and a payload field; non-JSON payloads wrapped.
    let mut sink = open_sink(
        &lib,
        json!({"url": os.url(), "index": "t-{field:tenant}-{yyyy.MM.dd}"}),
    )
    .await;
    let payloads: Vec<Vec<u8>> = vec![
        br#"{"tenant":"ACME","v":1}"#.to_vec(),
        br#"{"tenant":"globex","v":2}"#.to_vec(),
        br#"{"tenant":"acme","v":3}"#.to_vec(),
    ];
    let msgs = views(0, &payloads);
    sink.consume(SinkBatch::new("shop", "tenants", 0, &msgs))
        .await
        .unwrap();
    assert_eq!(os.count("t-acme-2024.02.29"), 2);
    assert_eq!(os.count("t-globex-2024.02.29"), 1);

    let mut sink = open_sink(&lib, json!({"url": os.url(), "index": "raw"})).await;
    let payloads: Vec<Vec<u8>> = vec![b"plain text".to_vec(), vec![0xff, 0x00], b"[1,2]".to_vec()];
    let msgs = views(0, &payloads);
    sink.consume(SinkBatch::new("shop", "raw", 0, &msgs))
        .await
        .unwrap();
    assert_eq!(os.count("raw"), 3);
    assert_eq!(
        os.get_json("/raw/_doc/shop%2Fraw%2F0%2F0")["_source"],
        json!({"payload": "plain text"})
    );
    assert_eq!(
        os.get_json("/raw/_doc/shop%2Fraw%2F0%2F1")["_source"],
        json!({"payload_base64": "/wA="})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapping_error_follows_on_document_error() {
    let Some(os) = OpenSearch::start() else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let lib = library(&cache);
    // `n` is an integer; the message at offset 3 has a string there.
    let payloads: Vec<Vec<u8>> = (0..6u64)
        .map(|i| {
            if i == 3 {
                br#"{"n":"not a number"}"#.to_vec()
            } else {
                format!(r#"{{"n":{i}}}"#).into_bytes()
            }
        })
        .collect();
    let msgs = views(100, &payloads);
    let mapping = json!({"properties": {"n": {"type": "integer"}}});

    // fail: a fatal error naming the offset and the server's reason.
    let mut sink = open_sink(
        &lib,
        json!({"url": os.url(), "index": "typed-fail", "index_mapping": mapping}),
    )
    .await;
    let err = sink
        .consume(SinkBatch::new("shop", "typed", 0, &msgs))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Fatal, "{err}");
    assert!(err.message().contains("offset 103"), "{err}");
    assert!(err.message().contains("mapper_parsing_exception"), "{err}");
    assert!(err.message().contains("on_document_error"), "{err}");
    assert_eq!(
        os.get_json("/typed-fail/_mapping")["typed-fail"]["mappings"]["properties"]["n"]["type"],
        "integer",
        "index_mapping was applied"
    );

    // skip: the batch succeeds, the bad document is left out and counted in the log.
    let mut sink = open_sink(
        &lib,
        json!({"url": os.url(), "index": "typed-skip", "index_mapping": mapping,
               "on_document_error": "skip"}),
    )
    .await;
    sink.consume(SinkBatch::new("shop", "typed", 0, &msgs))
        .await
        .unwrap();
    assert_eq!(os.count("typed-skip"), 5);
    assert!(sink.rejected().unwrap().is_empty(), "skip rejects nothing");

    // dead_letter: the batch succeeds and the bad document is handed to the host as
    // rejected, with the server's reason, once.
    let mut sink = open_sink(
        &lib,
        json!({"url": os.url(), "index": "typed-dead", "index_mapping": mapping,
               "on_document_error": "dead_letter"}),
    )
    .await;
    sink.consume(SinkBatch::new("shop", "typed", 0, &msgs))
        .await
        .unwrap();
    assert_eq!(os.count("typed-dead"), 5);
    let rejected = sink.rejected().unwrap();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0].offset(), 103);
    assert!(
        rejected[0].reason().contains("mapper_parsing_exception"),
        "{rejected:?}"
    );
    assert!(sink.rejected().unwrap().is_empty(), "handed over once");

    // A payload that is not an object, with non_object_payloads = reject and skip.
    let mut sink = open_sink(
        &lib,
        json!({"url": os.url(), "index": "objects-only", "non_object_payloads": "reject",
               "on_document_error": "skip"}),
    )
    .await;
    let payloads = vec![b"42".to_vec(), br#"{"ok":true}"#.to_vec()];
    let msgs = views(0, &payloads);
    sink.consume(SinkBatch::new("shop", "x", 0, &msgs))
        .await
        .unwrap();
    assert_eq!(os.count("objects-only"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_fails_with_the_reason_and_never_the_password() {
    let Some(os) = OpenSearch::start() else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let lib = library(&cache);

    // Missing index without create_index_if_not_exists: fatal at open, with the fix.
    let mut sink = lib
        .new_sink(
            "s",
            &json!({"url": os.url(), "index": "absent", "create_index_if_not_exists": false,
                    "username": "writer", "password": PASSWORD})
            .to_string(),
        )
        .await
        .unwrap();
    let err = sink.open().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Fatal, "{err}");
    assert_eq!(
        err.message(),
        "index `absent` does not exist (set create_index_if_not_exists = true to create it, or create it first)"
    );

    // A missing ingest pipeline: fatal at open.
    let mut sink = lib
        .new_sink(
            "s",
            &json!({"url": os.url(), "index": "p", "pipeline": "nope"}).to_string(),
        )
        .await
        .unwrap();
    let err = sink.open().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Fatal, "{err}");
    assert!(
        err.message()
            .contains("ingest pipeline `nope` does not exist"),
        "{err}"
    );

    // A bad URL: refused as an invalid config naming the field.
    let err = lib
        .new_sink(
            "s",
            &json!({"url": format!("127.0.0.1:{}", os.port()), "index": "x"}).to_string(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err}");
    assert!(err.message().starts_with("plugin_config.url:"), "{err}");

    // Nothing listening: transient (it may come back), and the next node is tried.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut sink = lib
        .new_sink(
            "s",
            &json!({"url": [format!("http://127.0.0.1:{closed}")], "index": "x",
                    "username": "u", "password": PASSWORD})
            .to_string(),
        )
        .await
        .unwrap();
    let err = sink.open().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient, "{err}");
    assert!(
        err.message().contains(&format!("127.0.0.1:{closed}")),
        "{err}"
    );
    assert!(!err.message().contains(PASSWORD), "{err}");
    let sink = open_sink(
        &lib,
        json!({"url": [format!("http://127.0.0.1:{closed}"), os.url()], "index": "failover"}),
    )
    .await;
    drop(sink);

    // Bad credentials. OpenSearch without its security plugin (as here) ignores
    // credentials, so a stand-in answering 401 the way a secured cluster does plays the
    // server.
    eprintln!(
        "NOTE: bad credentials run against a stand-in answering 401 (a mock), not OpenSearch"
    );
    let fake = UnauthorizedServer::start();
    let mut sink = lib
        .new_sink(
            "s",
            &json!({"url": fake.url(), "index": "x", "username": "admin", "password": PASSWORD})
                .to_string(),
        )
        .await
        .unwrap();
    let err = sink.open().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Fatal, "{err}");
    assert!(err.message().contains("authentication failed"), "{err}");
    assert!(!err.message().contains(PASSWORD), "{err}");
    let seen = fake.requests();
    assert!(
        seen.iter()
            .any(|r| r.to_ascii_lowercase().contains("authorization: basic ")),
        "the credentials were sent: {seen:?}"
    );
}

/// A stand-in for a secured cluster: answers every request with 401 and the body
/// Elasticsearch and the OpenSearch security plugin send.
struct UnauthorizedServer {
    port: u16,
    requests: Arc<std::sync::Mutex<Vec<String>>>,
}

impl UnauthorizedServer {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut buf = [0u8; 8192];
                let n = stream.read(&mut buf).unwrap_or(0);
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                let body = r#"{"error":{"root_cause":[{"type":"security_exception","reason":"unable to authenticate user [admin] for REST request [/]"}],"type":"security_exception","reason":"unable to authenticate user [admin] for REST request [/]"},"status":401}"#;
                let _ = write!(
                    stream,
                    "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"security\"\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        UnauthorizedServer { port, requests }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

#[test]
fn kill9_mid_stream_leaves_every_message_exactly_one_document() {
    let Some(os) = OpenSearch::start() else {
        return;
    };
    const COUNT: u64 = 30_000;
    let mut run = pipeline_run(&os, "crash", COUNT, 10_000, json!({}));
    run.start();
    let at_kill = wait_count(&os, "crash", 5_000, Duration::from_secs(120), || run.log());
    run.kill9();
    assert!(at_kill < COUNT, "killed mid-stream ({at_kill})");
    run.start();
    wait_count(&os, "crash", COUNT, Duration::from_secs(180), || run.log());
    // Let a redelivered batch land, if one is coming.
    std::thread::sleep(Duration::from_millis(1000));
    let log = stop_and_check_sinks(&mut run);
    assert_exactly_once(&os, "crash", "crash", COUNT);
    assert!(
        log.contains("connected to OpenSearch 2.19"),
        "flavour and version logged: {log}"
    );
}

#[test]
fn an_unreachable_server_is_transient_and_nothing_is_lost_when_it_returns() {
    let Some(mut os) = OpenSearch::start() else {
        return;
    };
    const COUNT: u64 = 20_000;
    let mut run = pipeline_run(
        &os,
        "outage",
        COUNT,
        1_000,
        json!({"retry_timeout": "10s", "timeout": "5s", "username": "u", "password": PASSWORD}),
    );
    run.start();
    wait_count(&os, "outage", 2_000, Duration::from_secs(120), || run.log());
    os.stop();
    let stopped = Instant::now();
    // Long enough for the sink to give the batch back as transient, and the host to retry.
    std::thread::sleep(Duration::from_secs(8));
    os.start_again();
    eprintln!("OpenSearch was away for {:?}", stopped.elapsed());
    wait_count(&os, "outage", COUNT, Duration::from_secs(240), || run.log());
    std::thread::sleep(Duration::from_millis(1000));
    let log = stop_and_check_sinks(&mut run);
    assert_exactly_once(&os, "outage", "outage", COUNT);
    assert!(
        log.contains("transient") || log.contains("retrying"),
        "the outage was seen and retried: {log}"
    );
    assert!(!log.contains(PASSWORD), "the password is not in the log");
}

#[test]
fn back_pressure_429_from_a_one_thread_write_pool_loses_nothing() {
    let Some(os) = OpenSearch::start_with(
        OpenSearchOptions::default()
            .setting("thread_pool.write.size", "1")
            .setting("thread_pool.write.queue_size", "1"),
    ) else {
        return;
    };
    const COUNT: u64 = 15_000;
    const SINKS: usize = 4;
    let mut run = LocalRun::new(&["random_source", "elasticsearch_sink"]);
    for s in 0..SINKS {
        let topic = format!("bp{s}");
        run.instance(
            &format!("gen-{topic}"),
            json!({"type": "source", "key": "random",
                   "streams": [{"stream": "shop", "topic": topic}],
                   "plugin_config": {"seed": s, "count": COUNT, "batch_size": 1000, "payload_size": 300}}),
        );
        // Small bulks from several sinks at once into several indices keep more shard
        // requests in flight than one thread and a queue of one can take.
        run.instance(
            &format!("{topic}-es-sink"),
            json!({"type": "sink", "key": "elasticsearch",
                   "streams": [{"stream": "shop", "topics": [topic], "batch_length": 1000,
                                "poll_interval": "5ms"}],
                   "plugin_config": {"url": os.url(), "index": topic, "max_bulk_docs": 100,
                                     "index_mapping": random_mapping()}}),
        );
    }
    run.start();
    let started = Instant::now();
    for s in 0..SINKS {
        wait_count(
            &os,
            &format!("bp{s}"),
            COUNT,
            Duration::from_secs(300),
            || run.log(),
        );
    }
    eprintln!(
        "{} documents through a one-thread write pool in {:?}",
        COUNT * SINKS as u64,
        started.elapsed()
    );
    std::thread::sleep(Duration::from_millis(1000));
    stop_and_check_sinks(&mut run);
    for s in 0..SINKS {
        assert_exactly_once(&os, &format!("bp{s}"), &format!("bp{s}"), COUNT);
    }
    let stats = os.get_json("/_nodes/stats/thread_pool");
    let rejected: u64 = stats["nodes"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n["thread_pool"]["write"]["rejected"].as_u64().unwrap_or(0))
        .sum();
    eprintln!("write pool rejections: {rejected}");
    assert!(rejected > 0, "the server pushed back (429): {stats}");
}

fn sink_config(plugin_config: Value) -> Value {
    json!({"enabled": true,
           "streams": [{"stream": "e2e", "topics": ["numbers"], "schema": "json",
                        "batch_length": 500, "poll_interval": "10ms"}],
           "plugin_config": plugin_config})
}

#[test]
fn bad_url_bad_credentials_and_missing_index_end_failed_with_the_reason() {
    let Some(os) = OpenSearch::start() else {
        return;
    };
    let supervisor = Supervisor::start();
    let node = Node::start(
        &supervisor,
        "node-es",
        NodeOptions {
            plugins: vec!["elasticsearch_sink", "random_source"],
            ..NodeOptions::default()
        },
    );
    supervisor.wait_catalog("elasticsearch");
    eprintln!(
        "NOTE: bad credentials run against a stand-in answering 401 (a mock), not OpenSearch"
    );
    let fake = UnauthorizedServer::start();
    let gen = supervisor.activate(
        "gen",
        "random",
        "source",
        json!({"enabled": true, "streams": [{"stream": "e2e", "topic": "numbers", "schema": "json"}],
               "plugin_config": {"seed": 1, "rate": 500, "batch_size": 50}}),
    );
    let good = supervisor.activate(
        "good",
        "elasticsearch",
        "sink",
        sink_config(
            json!({"url": os.url(), "index": "numbers", "username": "w", "password": PASSWORD,
                   "index_mapping": random_mapping()}),
        ),
    );
    let cases = [
        (
            "bad-url",
            json!({"url": "localhost:9200", "index": "numbers", "password": PASSWORD, "username": "w"}),
            "plugin_config.url",
        ),
        (
            "bad-credentials",
            json!({"url": fake.url(), "index": "numbers", "username": "admin", "password": PASSWORD}),
            "authentication failed",
        ),
        (
            "missing-index",
            json!({"url": os.url(), "index": "absent", "create_index_if_not_exists": false,
                   "username": "w", "password": PASSWORD}),
            "index `absent` does not exist (set create_index_if_not_exists = true",
        ),
    ];
    let mut items = Vec::new();
    for (key, config, _) in &cases {
        items.push(supervisor.activate(key, "elasticsearch", "sink", sink_config(config.clone())));
    }
    supervisor.wait_status(gen.id, InstanceStatus::Active, Duration::from_secs(20));
    supervisor.wait_status(good.id, InstanceStatus::Active, Duration::from_secs(20));
    for (item, (key, _, expected)) in items.iter().zip(&cases) {
        let failed =
            supervisor.wait_status(item.id, InstanceStatus::Failed, Duration::from_secs(60));
        let reason = failed.reason.expect("failed carries a reason");
        assert!(reason.contains(expected), "{key}: {reason}");
        assert!(!reason.contains(PASSWORD), "{key}: {reason}");
        let view = node.instance(item.id).unwrap();
        assert_eq!(view["status"], "failed", "{view}");
    }
    // The good instance writes meanwhile.
    wait_count(&os, "numbers", 200, Duration::from_secs(30), || node.log());
    assert_eq!(
        supervisor.instance(good.id).unwrap().status,
        InstanceStatus::Active
    );

    // The password is nowhere: not in the node's log, its local API, the statuses.
    let log = node.log();
    assert!(log.contains("connected to OpenSearch"), "{log}");
    assert!(!log.contains(PASSWORD), "the node's log shows the password");
    let instances = serde_json::to_string(&node.instances()).unwrap();
    assert!(
        !instances.contains(PASSWORD),
        "node /instances: {instances}"
    );
    let (_, health) = node.health();
    assert!(!health.to_string().contains(PASSWORD), "{health}");
    for item in supervisor.instances() {
        let reason = item.reason.unwrap_or_default();
        assert!(!reason.contains(PASSWORD), "{reason}");
    }
    // `password` is a `Secret` in the published schema, so the control plane masks it in
    // its answers too (the whole list, configs included).
    let list = supervisor.list_json();
    assert!(
        !list.contains(PASSWORD),
        "the instance list shows the password: {list}"
    );
    let supervisor_log = supervisor.log();
    assert!(
        !supervisor_log.contains(PASSWORD),
        "the supervisor's log shows the password"
    );
}
