//! Reading the server's answers: the per-item results of `_bulk`, error bodies, and
//! `GET /` (which server this is).

use serde::Deserialize;
use serde_json::Value;

use crate::config::OpType;

/// What became of one document of a `_bulk` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Written.
    Stored,
    /// `op_type = create` and the document is already there (a redelivered batch).
    AlreadyStored,
    /// Refused for now (429, 5xx): send it again.
    Retry(String),
    /// Refused for its content (mapping, parse, other 4xx).
    Rejected(String),
    /// Refused for a reason no document can fix (missing index, no permission).
    Fatal(String),
}

#[derive(Deserialize)]
struct BulkBody {
    #[serde(default)]
    items: Vec<Item>,
}

/// `{"index": {...}}` or `{"create": {...}}`.
#[derive(Deserialize)]
struct Item {
    #[serde(alias = "create", alias = "update", alias = "delete")]
    index: ItemResult,
}

#[derive(Deserialize)]
struct ItemResult {
    status: u16,
    #[serde(default)]
    error: Option<Value>,
}

/// The outcomes of a `_bulk` answer (HTTP 200) for `expected` documents.
pub fn parse_bulk(body: &[u8], expected: usize, op: OpType) -> Result<Vec<Outcome>, String> {
    let parsed: BulkBody = serde_json::from_slice(body)
        .map_err(|e| format!("the _bulk answer cannot be read ({e}): {}", preview(body)))?;
    if parsed.items.len() != expected {
        return Err(format!(
            "the _bulk answer has {} items for {expected} documents",
            parsed.items.len()
        ));
    }
    Ok(parsed
        .items
        .iter()
        .map(|i| classify(i.index.status, i.index.error.as_ref(), op))
        .collect())
}

/// Sorts one item result.
pub fn classify(status: u16, error: Option<&Value>, op: OpType) -> Outcome {
    let reason = || {
        let text = error.map(describe_error).unwrap_or_default();
        format!("HTTP {status} {text}").trim_end().to_string()
    };
    let kind = error
        .and_then(|e| e.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("");
    match status {
        200..=299 => Outcome::Stored,
        409 if op == OpType::Create => Outcome::AlreadyStored,
        429 => Outcome::Retry(reason()),
        500..=599 => Outcome::Retry(reason()),
        401 | 403 => Outcome::Fatal(format!(
            "the server refused the write: {} (check the user's or API key's privileges on the index)",
            reason()
        )),
        404 if kind == "index_not_found_exception" => Outcome::Fatal(format!(
            "{} (set create_index_if_not_exists = true, or create the index)",
            reason()
        )),
        _ if kind == "illegal_argument_exception"
            && error
                .and_then(|e| e.get("reason"))
                .and_then(Value::as_str)
                .is_some_and(|r| r.contains("pipeline") && r.contains("does not exist")) =>
        {
            Outcome::Fatal(reason())
        }
        _ => Outcome::Rejected(reason()),
    }
}

/// `type: reason (caused by type: reason)` of an error object.
pub fn describe_error(error: &Value) -> String {
    let one = |e: &Value| -> String {
        let kind = e.get("type").and_then(Value::as_str).unwrap_or("");
        let reason = e.get("reason").and_then(Value::as_str).unwrap_or("");
        match (kind.is_empty(), reason.is_empty()) {
            (false, false) => format!("{kind}: {reason}"),
            (false, true) => kind.to_string(),
            (true, false) => reason.to_string(),
            (true, true) => e.to_string(),
        }
    };
    if let Value::String(s) = error {
        return s.clone();
    }
    let mut text = one(error);
    let mut cause = error.get("caused_by");
    let mut depth = 0;
    while let (Some(c), true) = (cause, depth < 3) {
        text.push_str(&format!(" (caused by {})", one(c)));
        cause = c.get("caused_by");
        depth += 1;
    }
    text.replace('\n', " ")
}

/// The reason in a whole-request error answer (`{"error": ..., "status": N}` or text).
pub fn describe_body(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => match v.get("error") {
            Some(e) => {
                // Elasticsearch puts the useful part in root_cause too; the top-level
                // error already carries it.
                describe_error(e)
            }
            None => preview(body),
        },
        Err(_) => preview(body),
    }
}

/// At most 300 characters of a body, on one line.
pub fn preview(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let mut out: String = text.chars().take(300).collect();
    if text.chars().count() > 300 {
        out.push_str("...");
    }
    if out.is_empty() {
        out.push_str("(empty answer)");
    }
    out.replace(['\n', '\r'], " ")
}

/// What `GET /` said about the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// `Elasticsearch` or `OpenSearch`.
    pub flavour: &'static str,
    /// `8.15.0`, `2.19.6`.
    pub version: String,
    /// The major version, when it reads as a number.
    pub major: Option<u32>,
    /// The cluster's name.
    pub cluster: String,
}

/// Reads the answer of `GET /`.
pub fn server_info(body: &[u8]) -> Option<ServerInfo> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let version = v.get("version")?;
    let number = version.get("number")?.as_str()?.to_string();
    let flavour = match version.get("distribution").and_then(Value::as_str) {
        Some("opensearch") => "OpenSearch",
        _ => "Elasticsearch",
    };
    Some(ServerInfo {
        flavour,
        major: number.split('.').next().and_then(|m| m.parse().ok()),
        version: number,
        cluster: v
            .get("cluster_name")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_stored() {
        let body = br#"{"took":3,"errors":false,"items":[
            {"index":{"_index":"i","_id":"1","status":201}},
            {"index":{"_index":"i","_id":"2","status":200}}]}"#;
        assert_eq!(
            parse_bulk(body, 2, OpType::Index).unwrap(),
            vec![Outcome::Stored, Outcome::Stored]
        );
        // As filter_path=errors,items.*.status,items.*.error returns it.
        let body = br#"{"errors":false,"items":[{"create":{"status":201}}]}"#;
        assert_eq!(
            parse_bulk(body, 1, OpType::Create).unwrap(),
            vec![Outcome::Stored]
        );
        assert!(parse_bulk(body, 2, OpType::Create)
            .unwrap_err()
            .contains("1 items for 2"));
        assert!(parse_bulk(b"<html>", 1, OpType::Index)
            .unwrap_err()
            .contains("<html>"));
    }

    #[test]
    fn mixed_results_are_sorted() {
        // A real OpenSearch 2 answer, trimmed: a mapping error, a rejection by a full
        // write queue, a version conflict, a shard failure and a success.
        let body = br#"{"took":30,"errors":true,"items":[
          {"index":{"_index":"m","_id":"a","status":400,"error":{"type":"mapper_parsing_exception",
            "reason":"failed to parse field [n] of type [integer] in document with id 'a'. Preview of field's value: 'abc'",
            "caused_by":{"type":"number_format_exception","reason":"For input string: \"abc\""}}}},
          {"index":{"_index":"m","_id":"b","status":429,"error":{"type":"es_rejected_execution_exception",
            "reason":"rejected execution of coordinating operation"}}},
          {"create":{"_index":"m","_id":"c","status":409,"error":{"type":"version_conflict_engine_exception",
            "reason":"[c]: version conflict, document already exists (current version [1])"}}},
          {"index":{"_index":"m","_id":"d","status":503,"error":{"type":"unavailable_shards_exception","reason":"primary shard is not active"}}},
          {"index":{"_index":"m","_id":"e","status":201}}]}"#;
        let out = parse_bulk(body, 5, OpType::Create).unwrap();
        match &out[0] {
            Outcome::Rejected(r) => {
                assert!(
                    r.starts_with("HTTP 400 mapper_parsing_exception: failed to parse field [n]"),
                    "{r}"
                );
                assert!(r.contains("caused by number_format_exception"), "{r}");
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(&out[1], Outcome::Retry(r) if r.contains("429 es_rejected_execution_exception"))
        );
        assert_eq!(out[2], Outcome::AlreadyStored);
        assert!(matches!(&out[3], Outcome::Retry(r) if r.contains("503")));
        assert_eq!(out[4], Outcome::Stored);
        // With op_type = index a conflict is the document's problem.
        let out = parse_bulk(body, 5, OpType::Index).unwrap();
        assert!(matches!(out[2], Outcome::Rejected(_)));
    }

    #[test]
    fn config_problems_are_fatal_for_every_document() {
        let missing =
            serde_json::json!({"type":"index_not_found_exception","reason":"no such index [x]"});
        assert!(matches!(
            classify(404, Some(&missing), OpType::Index),
            Outcome::Fatal(r) if r.contains("create_index_if_not_exists")
        ));
        let denied = serde_json::json!({"type":"security_exception","reason":"action [indices:data/write/bulk[s]] is unauthorized"});
        assert!(matches!(
            classify(403, Some(&denied), OpType::Index),
            Outcome::Fatal(_)
        ));
        let pipeline = serde_json::json!({"type":"illegal_argument_exception","reason":"pipeline with id [p] does not exist"});
        assert!(matches!(
            classify(400, Some(&pipeline), OpType::Index),
            Outcome::Fatal(_)
        ));
        let other = serde_json::json!({"type":"illegal_argument_exception","reason":"Limit of total fields [1000] has been exceeded"});
        assert!(matches!(
            classify(400, Some(&other), OpType::Index),
            Outcome::Rejected(_)
        ));
    }

    #[test]
    fn error_bodies() {
        let body = br#"{"error":{"root_cause":[{"type":"security_exception","reason":"missing authentication credentials"}],
            "type":"security_exception","reason":"missing authentication credentials for REST request [/]"},"status":401}"#;
        assert_eq!(
            describe_body(body),
            "security_exception: missing authentication credentials for REST request [/]"
        );
        assert_eq!(describe_body(b"Bad Gateway\n"), "Bad Gateway");
        assert_eq!(describe_body(b""), "(empty answer)");
        assert!(preview(&[b'x'; 1000]).ends_with("..."));
    }

    #[test]
    fn server_flavours() {
        let os = br#"{"name":"n1","cluster_name":"test","version":{"distribution":"opensearch",
            "number":"2.19.6","lucene_version":"9.12.1"},"tagline":"The OpenSearch Project: https://opensearch.org/"}"#;
        assert_eq!(
            server_info(os).unwrap(),
            ServerInfo {
                flavour: "OpenSearch",
                version: "2.19.6".into(),
                major: Some(2),
                cluster: "test".into()
            }
        );
        let es = br#"{"name":"es01","cluster_name":"docker-cluster","version":{"number":"8.15.0",
            "build_flavor":"default","lucene_version":"9.11.1"},"tagline":"You Know, for Search"}"#;
        let info = server_info(es).unwrap();
        assert_eq!((info.flavour, info.major), ("Elasticsearch", Some(8)));
        let es7 = br#"{"version":{"number":"7.17.9","build_flavor":"default"}}"#;
        assert_eq!(server_info(es7).unwrap().major, Some(7));
        assert!(server_info(b"hello").is_none());
    }
}
