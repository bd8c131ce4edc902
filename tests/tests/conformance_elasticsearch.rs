//! The conformance suite of `ld_plugin_api::testing` (`check_sink`) run in process
//! against the `elasticsearch` sink, reading back through a real OpenSearch 2.19 node
//! (`ld_e2e_tests::opensearch`).
//!
//! - the default `document_id = offset` (`_id` = stream/topic/partition/offset) with
//!   `op_type = index`: a redelivered batch overwrites its documents, so the target
//!   promises [`Redelivery::ExactlyOnce`];
//! - the same ids with `op_type = create`: the repeats are refused as conflicts (409) and
//!   count as stored, [`Redelivery::ExactlyOnce`] too;
//! - `document_id = none` (the server picks the ids): a redelivered batch adds copies,
//!   [`Redelivery::AtLeastOnce`].
//!
//! Each target also gives an `unreachable_config` on a closed port of 127.0.0.1, so the
//! suite checks that an unreachable cluster is a `transient` error and that `close` after
//! the failed `open` is safe. Skips (printing why) only when `OpenSearch::start` returns
//! `None` (no java or mvn on the machine).

use std::time::Instant;

use ld_e2e_tests::daemon::free_port;
use ld_e2e_tests::opensearch::OpenSearch;
use ld_elasticsearch_sink::ElasticsearchSink;
use ld_plugin_api::testing::conformance::{check_sink, Redelivery, SinkTarget};
use serde_json::{json, Value};

/// The sink indexing into a fresh index of the node.
struct IndexOn<'a> {
    os: &'a OpenSearch,
    index: &'static str,
    /// Extra `plugin_config` fields.
    extra: Value,
    redelivery: Redelivery,
}

impl SinkTarget for IndexOn<'_> {
    type Sink = ElasticsearchSink;

    fn config(&self) -> Value {
        let mut config = json!({"url": self.os.url(), "index": self.index});
        for (k, v) in self.extra.as_object().expect("an object") {
            config[k] = v.clone();
        }
        config
    }

    fn invalid_config(&self) -> Value {
        // Not a `yyyy`/`field:`/`stream` placeholder: refused by the plugin, not serde.
        json!({"url": self.os.url(), "index": "orders-{nonsense}"})
    }

    fn unreachable_config(&self) -> Option<Value> {
        Some(json!({
            "url": format!("http://127.0.0.1:{}", free_port()),
            "index": self.index,
        }))
    }

    async fn stored(&self) -> Vec<u64> {
        let (status, _) = self
            .os
            .request("POST", &format!("/{}/_refresh", self.index), None);
        if status == 404 {
            return Vec::new();
        }
        assert_eq!(status, 200, "refresh of {}", self.index);
        let (status, body) = self.os.request(
            "POST",
            &format!("/{}/_search", self.index),
            Some(&json!({"size": 10_000, "_source": ["n"], "query": {"match_all": {}}})),
        );
        assert_eq!(status, 200, "search of {}: {body}", self.index);
        let hits = body["hits"]["hits"].as_array().expect("hits");
        assert_eq!(
            body["hits"]["total"]["value"].as_u64(),
            Some(hits.len() as u64),
            "every document in one page: {body}"
        );
        hits.iter()
            .map(|hit| {
                hit["_source"]["n"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("no n in {hit}"))
            })
            .collect()
    }

    fn redelivery(&self) -> Redelivery {
        self.redelivery
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elasticsearch_sink_conforms() {
    let Some(os) = OpenSearch::start() else {
        return;
    };
    for (index, extra, redelivery) in [
        ("conformance-offset-ids", json!({}), Redelivery::ExactlyOnce),
        (
            "conformance-create",
            json!({"op_type": "create"}),
            Redelivery::ExactlyOnce,
        ),
        (
            "conformance-server-ids",
            json!({"document_id": "none"}),
            Redelivery::AtLeastOnce,
        ),
    ] {
        let started = Instant::now();
        let target = IndexOn {
            os: &os,
            index,
            extra: extra.clone(),
            redelivery,
        };
        let report = check_sink(&target).await;
        ld_e2e_tests::print_report(
            &format!("elasticsearch sink, {extra} ({redelivery:?})"),
            &report,
            started,
        );
        assert_eq!(report.passed.len(), 4, "{report}");
        assert!(report.skipped.is_empty(), "{report}");
    }
    // With server-picked ids the redelivered batch was stored twice, as the README says.
    assert_eq!(os.count("conformance-server-ids"), 150);
    assert_eq!(os.count("conformance-offset-ids"), 100);
    assert_eq!(os.count("conformance-create"), 100);
}
