//! The local HTTP API on 127.0.0.1: `/health`, `/metrics` (Prometheus text) and
//! `/instances` (JSON).

use std::{fmt::Write, sync::atomic::Ordering, sync::Arc};

use axum::{extract::State, http::StatusCode, response::IntoResponse, routing::get, Json, Router};
use serde_json::json;

use super::manager::{InstanceView, Manager};
use crate::instance::ERROR_KINDS;

/// The router of the local API.
pub fn router(manager: Arc<Manager>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/instances", get(instances))
        .with_state(manager)
}

fn view_json(v: &InstanceView) -> serde_json::Value {
    let mut value = serde_json::to_value(v).unwrap_or_default();
    if let Some(m) = &v.metrics {
        value["metrics"] = json!({
            "messages": m.messages.load(Ordering::Relaxed),
            "bytes": m.bytes.load(Ordering::Relaxed),
            "batches": m.batches.load(Ordering::Relaxed),
            "errors": m.errors.load(Ordering::Relaxed),
            "filtered": m.filtered.load(Ordering::Relaxed),
        });
    }
    value
}

async fn instances(State(manager): State<Arc<Manager>>) -> Json<serde_json::Value> {
    Json(serde_json::Value::Array(
        manager.views().iter().map(view_json).collect(),
    ))
}

/// 200 only when every instance is where it should be (running when wanted, stopped
/// when not); 503 with the ones that are not.
async fn health(State(manager): State<Arc<Manager>>) -> impl IntoResponse {
    let views = manager.views();
    let unsettled: Vec<serde_json::Value> = views
        .iter()
        .filter(|v| !v.settled())
        .map(|v| json!({"id": v.id, "key": v.key, "status": v.status, "reason": v.reason}))
        .collect();
    let code = if unsettled.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(json!({
            "status": if unsettled.is_empty() { "ok" } else { "degraded" },
            "instances": views.len(),
            "not_settled": unsettled,
        })),
    )
}

/// Reads one counter of an instance.
type Counter = fn(&crate::instance::InstanceMetrics) -> u64;

fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

async fn metrics(State(manager): State<Arc<Manager>>) -> impl IntoResponse {
    let views = manager.views();
    let mut out = String::new();
    let counters: [(&str, &str, Counter); 8] = [
        (
            "ld_instance_dead_lettered_total",
            "Messages set aside in the instance's dead-letter topic.",
            |m| m.dead_lettered.load(Ordering::Relaxed),
        ),
        (
            "ld_instance_messages_total",
            "Messages delivered by the instance (out: a sink's plugin wrote them, a source's were appended).",
            |m| m.messages.load(Ordering::Relaxed),
        ),
        (
            "ld_instance_messages_in_total",
            "Messages taken in by the instance (a sink read them, a source's plugin produced them).",
            |m| m.messages_in.load(Ordering::Relaxed),
        ),
        (
            "ld_instance_retries_total",
            "Calls retried after a transient failure.",
            |m| m.retries.load(Ordering::Relaxed),
        ),
        (
            "ld_instance_bytes_total",
            "Payload bytes delivered by the instance.",
            |m| m.bytes.load(Ordering::Relaxed),
        ),
        (
            "ld_instance_batches_total",
            "Batches delivered by the instance.",
            |m| m.batches.load(Ordering::Relaxed),
        ),
        (
            "ld_instance_errors_total",
            "Failed plugin or stream calls of the instance.",
            |m| m.errors.load(Ordering::Relaxed),
        ),
        (
            "ld_instance_filtered_total",
            "Messages dropped by filter transforms.",
            |m| m.filtered.load(Ordering::Relaxed),
        ),
    ];
    let labels = |v: &InstanceView| {
        format!(
            "instance=\"{}\",connector=\"{}\",type=\"{}\"",
            label(&v.key),
            label(&v.connector_key),
            v.connector_type
        )
    };
    for (name, help, get) in counters {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for v in &views {
            let value = v.metrics.as_deref().map_or(0, get);
            let _ = writeln!(out, "{name}{{{}}} {value}", labels(v));
        }
    }
    let _ = writeln!(out, "# HELP ld_instance_errors_by_kind_total Failed plugin or stream calls of the instance, by kind.\n# TYPE ld_instance_errors_by_kind_total counter");
    for v in &views {
        let Some(m) = &v.metrics else { continue };
        for (kind, count) in ERROR_KINDS.iter().zip(&m.errors_by_kind) {
            let _ = writeln!(
                out,
                "ld_instance_errors_by_kind_total{{{},kind=\"{kind}\"}} {}",
                labels(v),
                count.load(Ordering::Relaxed)
            );
        }
    }
    let _ = writeln!(out, "# HELP ld_instance_last_success_timestamp_seconds When a batch last went through (Unix time; 0: never).\n# TYPE ld_instance_last_success_timestamp_seconds gauge");
    for v in &views {
        let ms = v
            .metrics
            .as_deref()
            .map_or(0, |m| m.last_success_ms.load(Ordering::Relaxed));
        let _ = writeln!(
            out,
            "ld_instance_last_success_timestamp_seconds{{{}}} {}",
            labels(v),
            ms as f64 / 1000.0
        );
    }
    let _ = writeln!(out, "# HELP ld_instance_lag_messages A sink's lag: messages in the partition after what it has read.\n# TYPE ld_instance_lag_messages gauge");
    for v in &views {
        let Some(m) = &v.metrics else { continue };
        for (topic, partition, lag) in m.lags() {
            let _ = writeln!(
                out,
                "ld_instance_lag_messages{{{},topic=\"{}\",partition=\"{partition}\"}} {lag}",
                labels(v),
                label(&topic.to_string())
            );
        }
    }
    let _ = writeln!(out, "# HELP ld_instance_restarts_total Restarts after failures.\n# TYPE ld_instance_restarts_total counter");
    for v in &views {
        let _ = writeln!(
            out,
            "ld_instance_restarts_total{{{}}} {}",
            labels(v),
            v.restarts
        );
    }
    let _ = writeln!(out, "# HELP ld_instance_status Local status of the instance (1 for the current one).\n# TYPE ld_instance_status gauge");
    for v in &views {
        for status in ["pending", "active", "inactive", "failed"] {
            let on = u8::from(v.status.as_str() == status);
            let _ = writeln!(
                out,
                "ld_instance_status{{{},status=\"{status}\"}} {on}",
                labels(v)
            );
        }
    }
    let _ = writeln!(out, "# HELP ld_instance_batch_seconds Time to deliver one batch.\n# TYPE ld_instance_batch_seconds histogram");
    for v in &views {
        let Some(m) = &v.metrics else { continue };
        let (buckets, count, sum) = m.batch_latency.snapshot();
        let l = labels(v);
        for (bound, n) in buckets {
            let _ = writeln!(
                out,
                "ld_instance_batch_seconds_bucket{{{l},le=\"{bound}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "ld_instance_batch_seconds_bucket{{{l},le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(out, "ld_instance_batch_seconds_sum{{{l}}} {sum}");
        let _ = writeln!(out, "ld_instance_batch_seconds_count{{{l}}} {count}");
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        out,
    )
}
