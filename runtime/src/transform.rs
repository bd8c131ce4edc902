//! Transforms run by the host on JSON payloads, in the order listed: `add_fields`,
//! `delete_fields`, `filter_fields`, `update_fields` (same meaning as Apache Iggy's
//! connectors) and `filter_messages` (ours: keep or drop whole messages).
//!
//! Payload bytes stay bytes unless a transform is configured: only then is a payload
//! parsed and re-encoded.

use std::time::SystemTime;

use ld_plugin_api::Schema;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::stream::MessageBatch;

/// A transform config that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct TransformError {
    /// Field path, e.g. `transforms[1].fields`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// A message a transform could not process; names the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("transform {transform} cannot process the message at offset {offset} (id {id}): {reason}")]
pub struct ApplyError {
    /// The transform.
    pub transform: &'static str,
    /// The message's offset.
    pub offset: u64,
    /// The message's id.
    pub id: u128,
    /// Why.
    pub reason: String,
}

/// A value computed per message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Computed {
    /// RFC 3339 date and time.
    DateTime,
    /// Nanoseconds since the Unix epoch.
    TimestampNanos,
    /// Microseconds since the Unix epoch.
    TimestampMicros,
    /// Milliseconds since the Unix epoch.
    TimestampMillis,
    /// Seconds since the Unix epoch.
    TimestampSeconds,
    /// A random UUID.
    UuidV4,
    /// A time-ordered UUID.
    UuidV7,
}

/// The value of an added or updated field.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum FieldValue {
    /// A fixed JSON value.
    Static(Value),
    /// A value computed for each message.
    Computed(Computed),
}

/// When `update_fields` writes a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateCondition {
    /// Always.
    #[default]
    Always,
    /// Only when the key is there.
    KeyExists,
    /// Only when the key is absent.
    KeyNotExists,
}

/// One field to add.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddField {
    /// Top-level key.
    pub key: String,
    /// Its value.
    pub value: FieldValue,
}

/// One field to update.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateField {
    /// Top-level key.
    pub key: String,
    /// Its new value.
    pub value: FieldValue,
    /// When to write it.
    #[serde(default)]
    pub condition: UpdateCondition,
}

/// A test on a message's top-level field.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// Top-level key.
    pub field: String,
    /// Matches when the field equals this value.
    #[serde(default)]
    pub equals: Option<Value>,
    /// Matches when the field is present (`true`) or absent (`false`).
    #[serde(default)]
    pub exists: Option<bool>,
}

impl Condition {
    fn matches(&self, object: &Map<String, Value>) -> bool {
        let field = object.get(&self.field);
        let equals = self.equals.as_ref().is_none_or(|v| field == Some(v));
        let exists = self.exists.is_none_or(|e| field.is_some() == e);
        equals && exists
    }
}

/// One transform.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Transform {
    /// Adds (or overwrites) fields.
    AddFields {
        /// The fields.
        fields: Vec<AddField>,
    },
    /// Removes fields.
    DeleteFields {
        /// Keys to remove.
        fields: Vec<String>,
    },
    /// Keeps only the listed fields.
    FilterFields {
        /// Keys to keep.
        keep_fields: Vec<String>,
    },
    /// Sets fields, under a condition.
    UpdateFields {
        /// The fields.
        fields: Vec<UpdateField>,
    },
    /// Keeps or drops whole messages. Dropped messages still count as processed: the
    /// sink's offset moves past them.
    FilterMessages {
        /// Keep only messages matching this.
        #[serde(default)]
        keep_if: Option<Condition>,
        /// Drop messages matching this.
        #[serde(default)]
        drop_if: Option<Condition>,
    },
}

impl Transform {
    /// The transform's config name.
    pub fn name(&self) -> &'static str {
        match self {
            Transform::AddFields { .. } => "add_fields",
            Transform::DeleteFields { .. } => "delete_fields",
            Transform::FilterFields { .. } => "filter_fields",
            Transform::UpdateFields { .. } => "update_fields",
            Transform::FilterMessages { .. } => "filter_messages",
        }
    }
}

fn parse_one(path: String, value: Value) -> Result<Transform, TransformError> {
    let t: Transform = serde_path_to_error::deserialize(&value).map_err(|e| {
        let inner = e.path().to_string();
        TransformError {
            path: if inner == "." {
                path.clone()
            } else {
                format!("{path}.{inner}")
            },
            message: e.into_inner().to_string(),
        }
    })?;
    if let Transform::FilterMessages { keep_if, drop_if } = &t {
        if keep_if.is_some() == drop_if.is_some() {
            return Err(TransformError {
                path,
                message: "set exactly one of keep_if and drop_if".into(),
            });
        }
    }
    Ok(t)
}

/// Parses `transforms`: a list (`[{"type": "add_fields", ...}]`, run in order) or
/// Iggy's map form (`{"add_fields": {"enabled": true, ...}}`, run in document order;
/// entries with `enabled = false` are skipped).
pub fn parse_list(value: &Value) -> Result<Vec<Transform>, TransformError> {
    match value {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| parse_one(format!("transforms[{i}]"), item.clone()))
            .collect(),
        Value::Object(map) => {
            let mut out = Vec::new();
            for (name, body) in map {
                let path = format!("transforms.{name}");
                let Value::Object(body) = body else {
                    return Err(TransformError {
                        path,
                        message: "expected a table of settings".into(),
                    });
                };
                let mut body = body.clone();
                match body.remove("enabled") {
                    None | Some(Value::Bool(true)) => {}
                    Some(Value::Bool(false)) => continue,
                    Some(other) => {
                        return Err(TransformError {
                            path: format!("{path}.enabled"),
                            message: format!("expected true or false, got {other}"),
                        })
                    }
                }
                body.insert("type".into(), Value::String(name.clone()));
                out.push(parse_one(path, Value::Object(body))?);
            }
            Ok(out)
        }
        other => Err(TransformError {
            path: "transforms".into(),
            message: format!("expected a list or a table, got {other}"),
        }),
    }
}

fn compute(value: &FieldValue) -> Value {
    let now = || {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
    };
    match value {
        FieldValue::Static(v) => v.clone(),
        FieldValue::Computed(c) => match c {
            Computed::DateTime => {
                Value::String(humantime::format_rfc3339_millis(SystemTime::now()).to_string())
            }
            Computed::TimestampNanos => Value::from(now().as_nanos() as u64),
            Computed::TimestampMicros => Value::from(now().as_micros() as u64),
            Computed::TimestampMillis => Value::from(now().as_millis() as u64),
            Computed::TimestampSeconds => Value::from(now().as_secs()),
            Computed::UuidV4 => Value::String(uuid::Uuid::new_v4().to_string()),
            Computed::UuidV7 => Value::String(uuid::Uuid::now_v7().to_string()),
        },
    }
}

/// Applies `transforms` to one JSON object; `false` means the message is dropped.
fn apply_to(transforms: &[Transform], object: &mut Map<String, Value>) -> bool {
    for t in transforms {
        match t {
            Transform::AddFields { fields } => {
                for f in fields {
                    object.insert(f.key.clone(), compute(&f.value));
                }
            }
            Transform::DeleteFields { fields } => {
                for key in fields {
                    object.shift_remove(key);
                }
            }
            Transform::FilterFields { keep_fields } => {
                object.retain(|k, _| keep_fields.iter().any(|keep| keep == k));
            }
            Transform::UpdateFields { fields } => {
                for f in fields {
                    let present = object.contains_key(&f.key);
                    let write = match f.condition {
                        UpdateCondition::Always => true,
                        UpdateCondition::KeyExists => present,
                        UpdateCondition::KeyNotExists => !present,
                    };
                    if write {
                        object.insert(f.key.clone(), compute(&f.value));
                    }
                }
            }
            Transform::FilterMessages { keep_if, drop_if } => {
                let keep = match (keep_if, drop_if) {
                    (Some(c), _) => c.matches(object),
                    (None, Some(c)) => !c.matches(object),
                    (None, None) => true,
                };
                if !keep {
                    return false;
                }
            }
        }
    }
    true
}

/// Runs `transforms` over a batch, returning the transformed batch (ids, offsets,
/// timestamps and headers kept; dropped messages left out). With no transform the
/// batch is returned untouched, without parsing anything. The first message a
/// transform cannot process fails the whole batch.
pub fn apply(transforms: &[Transform], batch: MessageBatch) -> Result<MessageBatch, ApplyError> {
    if transforms.is_empty() {
        return Ok(batch);
    }
    run(transforms, &batch, |_, e| Err(e))
}

/// Like [`apply`], but a message a transform cannot process is left out of the result
/// and named in `failed` (its index in `batch`, and why) instead of failing the batch.
/// The batch is borrowed, so the caller still has the messages that failed; with no
/// transform the result is a copy (callers skip the call then).
pub fn apply_tolerant(
    transforms: &[Transform],
    batch: &MessageBatch,
    failed: &mut Vec<(usize, ApplyError)>,
) -> MessageBatch {
    if transforms.is_empty() {
        return batch.clone();
    }
    run(transforms, batch, |i, e| {
        failed.push((i, e));
        Ok(())
    })
    .expect("a tolerant run does not fail")
}

/// The transforms over every message; `on_fail` decides what a message that cannot be
/// processed does to the batch.
fn run(
    transforms: &[Transform],
    batch: &MessageBatch,
    mut on_fail: impl FnMut(usize, ApplyError) -> Result<(), ApplyError>,
) -> Result<MessageBatch, ApplyError> {
    let first = transforms[0].name();
    let mut out = MessageBatch::with_capacity(batch.len(), batch.byte_len() + batch.len() * 32);
    let mut payload = Vec::new();
    let mut headers: Vec<(&str, &[u8])> = Vec::new();
    for (i, message) in batch.iter().enumerate() {
        let e = message.entry();
        let fail = |reason: String| ApplyError {
            transform: first,
            offset: e.offset,
            id: e.id,
            reason,
        };
        let object = if e.schema != Schema::Json {
            Err(fail(format!(
                "its schema is {}, transforms need json",
                e.schema.as_str()
            )))
        } else {
            match serde_json::from_slice::<Value>(message.payload()) {
                Ok(Value::Object(map)) => Ok(map),
                Ok(_) => Err(fail("the payload is JSON but not an object".into())),
                Err(err) => Err(fail(format!("the payload is not valid JSON: {err}"))),
            }
        };
        let mut object = match object {
            Ok(object) => object,
            Err(error) => {
                on_fail(i, error)?;
                continue;
            }
        };
        if !apply_to(transforms, &mut object) {
            continue;
        }
        payload.clear();
        if let Err(err) = serde_json::to_writer(&mut payload, &object) {
            on_fail(i, fail(err.to_string()))?;
            continue;
        }
        headers.clear();
        headers.extend(message.headers());
        out.push(
            e.id,
            e.offset,
            e.timestamp_micros,
            e.schema,
            headers.iter().copied(),
            &payload,
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn batch(payloads: &[&str]) -> MessageBatch {
        let mut b = MessageBatch::default();
        for (i, p) in payloads.iter().enumerate() {
            b.push(
                i as u128 + 1,
                10 + i as u64,
                5,
                Schema::Json,
                [("h", &b"v"[..])],
                p.as_bytes(),
            );
        }
        b
    }

    #[test]
    fn a_tolerant_run_leaves_out_and_names_what_it_cannot_process() {
        let t = parse_list(&json!([
            {"type": "add_fields", "fields": [{"key": "k", "value": {"static": 1}}]}
        ]))
        .unwrap();
        let mut failed = Vec::new();
        let input = batch(&[r#"{"a":1}"#, "nope", "[1]", r#"{"b":2}"#]);
        let out = apply_tolerant(&t, &input, &mut failed);
        assert_eq!(
            payloads(&out),
            vec![json!({"a":1,"k":1}), json!({"b":2,"k":1})]
        );
        let failed: Vec<(usize, u64, &str)> = failed
            .iter()
            .map(|(i, e)| (*i, e.offset, e.transform))
            .collect();
        assert_eq!(failed, vec![(1, 11, "add_fields"), (2, 12, "add_fields")]);
        // The strict run fails on the first of them.
        let e = apply(&t, batch(&[r#"{"a":1}"#, "nope"])).unwrap_err();
        assert_eq!(e.offset, 11);
    }

    fn payloads(b: &MessageBatch) -> Vec<Value> {
        b.iter()
            .map(|m| serde_json::from_slice(m.payload()).unwrap())
            .collect()
    }

    #[test]
    fn transforms_run_in_the_order_listed() {
        // Add then delete: the field is gone. Delete then add: it is there.
        let add_then_delete = parse_list(&json!([
            {"type": "add_fields", "fields": [{"key": "x", "value": {"static": 1}}]},
            {"type": "delete_fields", "fields": ["x"]},
        ]))
        .unwrap();
        let delete_then_add = parse_list(&json!([
            {"type": "delete_fields", "fields": ["x"]},
            {"type": "add_fields", "fields": [{"key": "x", "value": {"static": 1}}]},
        ]))
        .unwrap();
        let input = batch(&[r#"{"a":1}"#]);
        assert_eq!(
            payloads(&apply(&add_then_delete, input.clone()).unwrap()),
            vec![json!({"a": 1})]
        );
        assert_eq!(
            payloads(&apply(&delete_then_add, input).unwrap()),
            vec![json!({"a": 1, "x": 1})]
        );
    }

    #[test]
    fn update_and_filter_fields() {
        let t = parse_list(&json!([
            {"type": "update_fields", "fields": [
                {"key": "a", "value": {"static": "seen"}, "condition": "key_exists"},
                {"key": "b", "value": {"static": 2}, "condition": "key_not_exists"},
                {"key": "ts", "value": {"computed": "timestamp_millis"}},
            ]},
            {"type": "filter_fields", "keep_fields": ["a", "b", "ts"]},
        ]))
        .unwrap();
        let out = payloads(&apply(&t, batch(&[r#"{"a":1,"z":0}"#, r#"{"b":1}"#])).unwrap());
        assert_eq!(out[0]["a"], "seen");
        assert_eq!(out[0]["b"], 2);
        assert!(out[0]["ts"].as_u64().unwrap() > 1_600_000_000_000);
        assert!(out[0].get("z").is_none());
        assert_eq!(out[1]["b"], 1, "not overwritten: key existed");
        assert!(out[1].get("a").is_none(), "not added: key did not exist");
    }

    #[test]
    fn filter_messages_drops_and_keeps_metadata_of_the_rest() {
        let t = parse_list(
            &json!([{"type": "filter_messages", "drop_if": {"field": "kind", "equals": "noise"}}]),
        )
        .unwrap();
        let out = apply(
            &t,
            batch(&[r#"{"kind":"noise"}"#, r#"{"kind":"order"}"#, r#"{"x":1}"#]),
        )
        .unwrap();
        assert_eq!(out.len(), 2);
        let kept: Vec<_> = out
            .iter()
            .map(|m| (m.entry().id, m.entry().offset))
            .collect();
        assert_eq!(kept, vec![(2, 11), (3, 12)]);
        assert_eq!(
            out.iter().next().unwrap().headers().collect::<Vec<_>>(),
            vec![("h", &b"v"[..])]
        );
        assert!(parse_list(&json!([{"type": "filter_messages"}])).is_err());
    }

    #[test]
    fn non_json_payload_is_an_error_naming_the_message() {
        let t = parse_list(&json!([{"type": "delete_fields", "fields": ["a"]}])).unwrap();
        let err = apply(&t, batch(&[r#"{"a":1}"#, "not json"])).unwrap_err();
        assert_eq!((err.offset, err.id), (11, 2));
        assert!(err.to_string().contains("offset 11 (id 2)"), "{err}");
        let mut raw = MessageBatch::default();
        raw.push(9, 3, 0, Schema::Raw, [], b"\x00");
        assert!(apply(&t, raw).unwrap_err().reason.contains("schema is raw"));
    }

    #[test]
    fn iggy_map_form_and_bad_configs() {
        let t = parse_list(&json!({
            "delete_fields": {"enabled": true, "fields": ["x"]},
            "add_fields": {"enabled": false, "fields": []},
        }))
        .unwrap();
        assert_eq!(t.len(), 1);
        let err = parse_list(&json!([{"type": "add_fields", "fields": [{"key": "k", "value": {"computed": "tomorrow"}}]}]))
            .unwrap_err();
        // serde reads an internally tagged enum as a whole: the path stops at the
        // transform, the message names the bad value.
        assert_eq!(err.path, "transforms[0]");
        assert!(err.message.contains("unknown variant `tomorrow`"), "{err}");
        let err = parse_list(&json!([{"type": "shuffle"}])).unwrap_err();
        assert!(err.message.contains("unknown variant `shuffle`"), "{err}");
    }

    #[test]
    fn no_transform_leaves_the_batch_untouched() {
        let input = batch(&["not even json"]);
        assert_eq!(apply(&[], input.clone()).unwrap(), input);
    }
}
