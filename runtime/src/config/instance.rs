//! An instance's config: which streams it reads or writes, its `plugin_config` and its
//! transforms. Same shape as Apache Iggy's connector configs, so those carry over.
//!
//! Every field of Iggy's format (`core/connectors/runtime/src/configs/connectors.rs`) is
//! accepted. What means the same here is honoured; the rest is listed in
//! [`IgnoredField`]s and named in one warning per instance, never refused, so that a
//! file written for Iggy's runtime loads as it is. Fields Iggy does not have either are
//! refused (a typo should not pass silently).
//!
//! Parsing names the field that is wrong: `streams[0].batch_length: expected a
//! positive integer`.

use std::time::Duration;

use ld_plugin_api::{ffi::ConnectorType, Schema};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::{
    stream::TopicDurability,
    transform::{Transform, TransformError},
};

/// A config that cannot be used, with the path of the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    /// Field path, e.g. `streams[0].batch_length`.
    pub path: String,
    /// What is wrong, and where it helps, the fix.
    pub message: String,
}

impl ConfigError {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl From<TransformError> for ConfigError {
    fn from(e: TransformError) -> Self {
        ConfigError::new(e.path, e.message)
    }
}

/// What a sink reads: one stream and its topics.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkStream {
    /// Stream name.
    pub stream: String,
    /// Topics read, each on its own consumer.
    pub topics: Vec<String>,
    /// Payload encoding expected.
    pub schema: Schema,
    /// Most messages per batch handed to the plugin.
    pub batch_length: u32,
    /// Longest wait for a batch to fill before handing over what there is.
    pub poll_interval: Duration,
    /// Consumer group; default `ld-<instance key>`.
    pub consumer_group: Option<String>,
    /// Durability of the topics this instance creates.
    pub durability: TopicDurability,
}

/// Where a source writes: one stream topic.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceStream {
    /// Stream name.
    pub stream: String,
    /// Topic written.
    pub topic: String,
    /// Payload encoding of the messages produced.
    pub schema: Schema,
    /// Most messages per appended batch.
    pub batch_length: u32,
    /// Longest wait to fill a batch (accepted for compatibility; the plugin's batches are
    /// appended as they come).
    pub linger_time: Duration,
    /// Durability of the topic when this instance creates it.
    pub durability: TopicDurability,
}

/// The streams of an instance, by side.
#[derive(Debug, Clone, PartialEq)]
pub enum Streams {
    /// A source's output topics.
    Source(Vec<SourceStream>),
    /// A sink's input topics.
    Sink(Vec<SinkStream>),
}

/// A parsed, validated instance config.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceConfig {
    /// `false` keeps the instance stopped (`inactive`).
    pub enabled: bool,
    /// Streams read or written.
    pub streams: Streams,
    /// The plugin's own config, handed to it as JSON.
    pub plugin_config: Value,
    /// Transforms, in the order they run.
    pub transforms: Vec<Transform>,
    /// What happens to a message that cannot be processed.
    pub errors: ErrorPolicy,
}

/// What happens to a message a transform cannot process (`errors` in the config).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorPolicy {
    /// `none` (default): such a message fails the batch (and the instance, as any
    /// failure does). `all`: it goes to the dead-letter topic and the rest flows on.
    pub tolerance: Tolerance,
    /// Where tolerated messages go, with headers naming where they came from and why
    /// (needed with `tolerance = "all"`).
    pub dead_letter: Option<crate::stream::TopicRef>,
}

/// See [`ErrorPolicy::tolerance`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tolerance {
    /// A message that cannot be processed fails the batch.
    #[default]
    None,
    /// It is set aside in the dead-letter topic.
    All,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawErrors {
    #[serde(default)]
    tolerance: Tolerance,
    #[serde(default)]
    dead_letter: Option<RawDeadLetter>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeadLetter {
    stream: String,
    topic: String,
}

fn error_policy(raw: Option<RawErrors>) -> Result<ErrorPolicy, ConfigError> {
    let Some(raw) = raw else {
        return Ok(ErrorPolicy::default());
    };
    let dead_letter = match raw.dead_letter {
        None => None,
        Some(d) => {
            if d.stream.trim().is_empty() {
                return Err(ConfigError::new(
                    "errors.dead_letter.stream",
                    "must not be empty",
                ));
            }
            if d.topic.trim().is_empty() {
                return Err(ConfigError::new(
                    "errors.dead_letter.topic",
                    "must not be empty",
                ));
            }
            Some(crate::stream::TopicRef::new(d.stream, d.topic))
        }
    };
    if raw.tolerance == Tolerance::All && dead_letter.is_none() {
        return Err(ConfigError::new(
            "errors.dead_letter",
            "missing: with tolerance = \"all\" the messages that cannot be processed go to a dead-letter topic ({\"stream\": ..., \"topic\": ...})",
        ));
    }
    Ok(ErrorPolicy {
        tolerance: raw.tolerance,
        dead_letter,
    })
}

/// A field of Iggy's connector format that is accepted but has no effect here, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoredField {
    /// Field path, e.g. `verbose` or `streams[0].avro_schema_path`.
    pub path: String,
    /// Why it has no effect, and where it helps, what to use instead.
    pub reason: &'static str,
}

impl IgnoredField {
    fn new(path: impl Into<String>, reason: &'static str) -> Self {
        Self {
            path: path.into(),
            reason,
        }
    }
}

/// The ignored fields in one line, fields with the same reason grouped:
/// `name, version, path (identity ...); benchmark (...)`.
pub fn describe_ignored(ignored: &[IgnoredField]) -> String {
    let mut groups: Vec<(&'static str, Vec<&str>)> = Vec::new();
    for field in ignored {
        match groups
            .iter_mut()
            .find(|(reason, _)| *reason == field.reason)
        {
            Some((_, paths)) => paths.push(&field.path),
            None => groups.push((field.reason, vec![&field.path])),
        }
    }
    groups
        .iter()
        .map(|(reason, paths)| format!("{} ({reason})", paths.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Logs the ignored fields of one instance in one warning. `instance` is given when the
/// caller is not inside the instance's span (which names it otherwise).
pub fn warn_ignored(instance: Option<&str>, ignored: &[IgnoredField]) {
    if ignored.is_empty() {
        return;
    }
    let fields = describe_ignored(ignored);
    match instance {
        Some(key) => tracing::warn!(
            instance = %key,
            "instance {key}: config fields accepted for Iggy compatibility but not used: {fields}"
        ),
        None => {
            tracing::warn!("config fields accepted for Iggy compatibility but not used: {fields}")
        }
    }
}

const IDENTITY: &str = "Iggy's file identity: ld-connectord names an instance by its key (with `local`, the file name), loads the plugin by `key` from the plugin directory and runs the config it is given";
const CONFIG_FORMAT: &str = "it only chooses how Iggy's HTTP API shows plugin_config";
const VERBOSE: &str = "per-batch logs are at debug level: set LD_CONNECTORD_LOG=debug to see them";
const BENCHMARK: &str = "batch timings are published as metrics on /metrics, not as log events";
const AVRO_SCHEMA: &str = "Avro payloads are not decoded: they are passed on as raw bytes";
const UNDECODED: &str =
    "proto, flatbuffer and avro payloads are not decoded: they are passed on as raw bytes";
const TRANSFORM_MISSING: &str =
    "ld-connectord has no such transform: it is skipped, messages pass on without it";
const FILTER_PATTERNS: &str = "filter_fields patterns are not supported (only keep_fields): the transform is skipped, every field is kept";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    streams: Vec<RawStream>,
    #[serde(default)]
    plugin_config: Option<Value>,
    #[serde(default)]
    transforms: Option<Value>,
    #[serde(default)]
    errors: Option<RawErrors>,
    // Identity fields of an Iggy connector file: `type` and `key` are read by the local
    // runner (the control plane gives them otherwise), not here.
    #[serde(default, rename = "type")]
    _type: Option<String>,
    #[serde(default, rename = "key")]
    _key: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    version: Option<Value>,
    #[serde(default, rename = "id")]
    _id: Option<Value>,
    // Iggy's runtime loads the library from `path`; we load by key from the plugin
    // directory.
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    plugin_config_format: Option<String>,
    // Iggy: log each batch at info rather than debug.
    #[serde(default)]
    verbose: Option<bool>,
    // Iggy: emit per-batch timing events.
    #[serde(default)]
    benchmark: Option<bool>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStream {
    stream: Option<String>,
    topic: Option<String>,
    topics: Option<Vec<String>>,
    schema: Option<String>,
    batch_length: Option<Value>,
    poll_interval: Option<Value>,
    linger_time: Option<Value>,
    consumer_group: Option<String>,
    durability: Option<String>,
    avro_schema_json: Option<String>,
    avro_schema_path: Option<String>,
}

fn positive(path: &str, v: &Option<Value>, default: u32) -> Result<u32, ConfigError> {
    match v {
        None => Ok(default),
        Some(v) => v
            .as_u64()
            .filter(|n| *n > 0 && *n <= u64::from(u32::MAX))
            .map(|n| n as u32)
            .ok_or_else(|| ConfigError::new(path, format!("expected a positive integer, got {v}"))),
    }
}

fn duration(path: &str, v: &Option<Value>, default: Duration) -> Result<Duration, ConfigError> {
    match v {
        None => Ok(default),
        Some(Value::Number(n)) => n.as_u64().map(Duration::from_millis).ok_or_else(|| {
            ConfigError::new(path, "expected milliseconds or a duration like \"5ms\"")
        }),
        Some(Value::String(s)) => humantime::parse_duration(s).map_err(|e| {
            ConfigError::new(
                path,
                format!("`{s}` is not a duration ({e}); use e.g. \"5ms\" or \"1s\""),
            )
        }),
        Some(other) => Err(ConfigError::new(
            path,
            format!("expected a duration like \"5ms\", got {other}"),
        )),
    }
}

fn schema(
    path: &str,
    v: &Option<String>,
    ignored: &mut Vec<IgnoredField>,
) -> Result<Schema, ConfigError> {
    match v.as_deref() {
        None => Ok(Schema::Json),
        // Iggy's other schemas: the payload is carried, undecoded.
        Some("proto" | "flatbuffer" | "flat_buffer" | "avro") => {
            ignored.push(IgnoredField::new(path, UNDECODED));
            Ok(Schema::Raw)
        }
        Some(s) => s.parse().map_err(|e: String| ConfigError::new(path, e)),
    }
}

fn durability(path: &str, v: &Option<String>) -> Result<TopicDurability, ConfigError> {
    match v {
        None => Ok(TopicDurability::Default),
        Some(s) => s.parse().map_err(|e: String| ConfigError::new(path, e)),
    }
}

fn required(path: &str, v: &Option<String>) -> Result<String, ConfigError> {
    match v {
        Some(s) if !s.trim().is_empty() => Ok(s.clone()),
        Some(_) => Err(ConfigError::new(path, "must not be empty")),
        None => Err(ConfigError::new(path, "missing")),
    }
}

impl InstanceConfig {
    /// Parses and validates a config for one side from JSON (or a TOML document
    /// converted to JSON). Fields of Iggy's format that have no effect here are named in
    /// one warning, logged in the caller's span (the instance's, in the daemon).
    pub fn parse(side: ConnectorType, value: &Value) -> Result<InstanceConfig, ConfigError> {
        let (config, ignored) = InstanceConfig::parse_noted(side, value)?;
        warn_ignored(None, &ignored);
        Ok(config)
    }

    /// Parses and validates a config, and says which accepted fields have no effect
    /// (nothing is logged).
    pub fn parse_noted(
        side: ConnectorType,
        value: &Value,
    ) -> Result<(InstanceConfig, Vec<IgnoredField>), ConfigError> {
        let raw: RawConfig = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            ConfigError::new(
                if path == "." { "config".into() } else { path },
                e.into_inner().to_string(),
            )
        })?;
        let mut ignored = Vec::new();
        for (field, present) in [
            ("name", raw.name.is_some()),
            ("version", raw.version.is_some()),
            ("path", raw.path.is_some()),
        ] {
            if present {
                ignored.push(IgnoredField::new(field, IDENTITY));
            }
        }
        if let Some(format) = &raw.plugin_config_format {
            // Iggy's `ConfigFormat`; anything else Iggy refuses too.
            if !matches!(format.as_str(), "json" | "yaml" | "toml" | "text") {
                return Err(ConfigError::new(
                    "plugin_config_format",
                    format!("`{format}` is not one of json, yaml, toml, text"),
                ));
            }
            ignored.push(IgnoredField::new("plugin_config_format", CONFIG_FORMAT));
        }
        // `false` is what happens here anyway: only `true` asks for something not done.
        if raw.verbose == Some(true) {
            ignored.push(IgnoredField::new("verbose", VERBOSE));
        }
        if raw.benchmark == Some(true) {
            ignored.push(IgnoredField::new("benchmark", BENCHMARK));
        }
        let plugin_config = match raw.plugin_config {
            None | Some(Value::Null) => Value::Object(Default::default()),
            Some(v @ Value::Object(_)) => v,
            Some(other) => {
                return Err(ConfigError::new(
                    "plugin_config",
                    format!("expected an object, got {other}"),
                ))
            }
        };
        let transforms = match &raw.transforms {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(map)) => {
                crate::transform::parse_list(&iggy_transforms(map, &mut ignored)?)?
            }
            Some(v) => crate::transform::parse_list(v)?,
        };
        let streams = match side {
            ConnectorType::Sink => Streams::Sink(
                raw.streams
                    .iter()
                    .enumerate()
                    .map(|(i, s)| sink_stream(i, s, &mut ignored))
                    .collect::<Result<_, _>>()?,
            ),
            ConnectorType::Source => Streams::Source(
                raw.streams
                    .iter()
                    .enumerate()
                    .map(|(i, s)| source_stream(i, s, &mut ignored))
                    .collect::<Result<_, _>>()?,
            ),
        };
        let config = InstanceConfig {
            enabled: raw.enabled,
            streams,
            plugin_config,
            transforms,
            errors: error_policy(raw.errors)?,
        };
        if config.enabled && config.stream_count() == 0 {
            return Err(ConfigError::new(
                "streams",
                "at least one stream entry is needed for an enabled instance",
            ));
        }
        Ok((config, ignored))
    }

    /// Parses a config file's text: TOML (as written for Iggy's connectors runtime) or JSON.
    pub fn parse_text(side: ConnectorType, text: &str) -> Result<InstanceConfig, ConfigError> {
        InstanceConfig::parse(side, &document(text)?)
    }

    fn stream_count(&self) -> usize {
        match &self.streams {
            Streams::Source(s) => s.len(),
            Streams::Sink(s) => s.len(),
        }
    }
}

/// A config document as JSON: JSON text, or TOML converted.
pub fn document(text: &str) -> Result<Value, ConfigError> {
    if text.trim_start().starts_with('{') {
        return serde_json::from_str(text)
            .map_err(|e| ConfigError::new("config", format!("invalid JSON: {e}")));
    }
    // Straight into JSON, not through `toml::Table`: that one sorts keys, and the order
    // of Iggy's transform tables is the order the transforms run in.
    toml::from_str::<Value>(text)
        .map_err(|e| ConfigError::new("config", format!("invalid TOML: {}", e.message())))
}

fn avro_fields(i: usize, s: &RawStream, ignored: &mut Vec<IgnoredField>) {
    for (field, present) in [
        ("avro_schema_json", s.avro_schema_json.is_some()),
        ("avro_schema_path", s.avro_schema_path.is_some()),
    ] {
        if present {
            ignored.push(IgnoredField::new(
                format!("streams[{i}].{field}"),
                AVRO_SCHEMA,
            ));
        }
    }
}

/// Iggy's transforms (the map form, `[transforms.add_fields]`) made ready for
/// [`crate::transform::parse_list`]: Iggy's defaults filled in, and what cannot be done
/// here taken out and noted in `ignored`. Disabled entries are left for `parse_list` to
/// skip.
fn iggy_transforms(
    map: &Map<String, Value>,
    ignored: &mut Vec<IgnoredField>,
) -> Result<Value, ConfigError> {
    let mut out = Map::new();
    for (name, body) in map {
        let path = format!("transforms.{name}");
        let Value::Object(body) = body else {
            // Not a table: parse_list names the error.
            out.insert(name.clone(), body.clone());
            continue;
        };
        if body.get("enabled") == Some(&Value::Bool(false)) {
            out.insert(name.clone(), Value::Object(body.clone()));
            continue;
        }
        let mut body = body.clone();
        match name.as_str() {
            "proto_convert" | "flatbuffer_convert" | "avro_convert" | "unwrap_envelope" => {
                ignored.push(IgnoredField::new(path, TRANSFORM_MISSING));
                continue;
            }
            // Iggy's `fields` default to an empty list.
            "add_fields" | "delete_fields" | "update_fields" => {
                body.entry("fields")
                    .or_insert_with(|| Value::Array(Vec::new()));
            }
            "filter_fields" => {
                let patterns = match body.remove("patterns") {
                    None => Vec::new(),
                    Some(Value::Array(p)) => p,
                    Some(other) => {
                        return Err(ConfigError::new(
                            format!("{path}.patterns"),
                            format!("expected a list, got {other}"),
                        ))
                    }
                };
                let include_matching = match body.remove("include_matching") {
                    None => true,
                    Some(Value::Bool(b)) => b,
                    Some(other) => {
                        return Err(ConfigError::new(
                            format!("{path}.include_matching"),
                            format!("expected true or false, got {other}"),
                        ))
                    }
                };
                if !patterns.is_empty() {
                    ignored.push(IgnoredField::new(
                        format!("{path}.patterns"),
                        FILTER_PATTERNS,
                    ));
                    continue;
                }
                let keep_fields = body
                    .entry("keep_fields")
                    .or_insert_with(|| Value::Array(Vec::new()));
                // Without patterns, Iggy keeps every field when keep_fields is empty or
                // include_matching is false: the transform does nothing.
                if !include_matching || keep_fields.as_array().is_some_and(Vec::is_empty) {
                    continue;
                }
            }
            _ => {}
        }
        out.insert(name.clone(), Value::Object(body));
    }
    Ok(Value::Object(out))
}

fn sink_stream(
    i: usize,
    s: &RawStream,
    ignored: &mut Vec<IgnoredField>,
) -> Result<SinkStream, ConfigError> {
    let at = |field: &str| format!("streams[{i}].{field}");
    avro_fields(i, s, ignored);
    if s.topic.is_some() {
        return Err(ConfigError::new(
            at("topic"),
            "a sink reads `topics` (a list), not `topic`",
        ));
    }
    if s.linger_time.is_some() {
        return Err(ConfigError::new(
            at("linger_time"),
            "only sources have linger_time",
        ));
    }
    let topics = s
        .topics
        .clone()
        .ok_or_else(|| ConfigError::new(at("topics"), "missing (the topics to read)"))?;
    if topics.is_empty() || topics.iter().any(|t| t.trim().is_empty()) {
        return Err(ConfigError::new(
            at("topics"),
            "expected a non-empty list of topic names",
        ));
    }
    Ok(SinkStream {
        stream: required(&at("stream"), &s.stream)?,
        topics,
        schema: schema(&at("schema"), &s.schema, ignored)?,
        batch_length: positive(&at("batch_length"), &s.batch_length, 1000)?,
        poll_interval: duration(
            &at("poll_interval"),
            &s.poll_interval,
            Duration::from_millis(5),
        )?,
        consumer_group: s.consumer_group.clone().filter(|g| !g.is_empty()),
        durability: durability(&at("durability"), &s.durability)?,
    })
}

fn source_stream(
    i: usize,
    s: &RawStream,
    ignored: &mut Vec<IgnoredField>,
) -> Result<SourceStream, ConfigError> {
    let at = |field: &str| format!("streams[{i}].{field}");
    avro_fields(i, s, ignored);
    if s.topics.is_some() {
        return Err(ConfigError::new(
            at("topics"),
            "a source writes one `topic`, not `topics`",
        ));
    }
    for (field, present) in [
        ("poll_interval", s.poll_interval.is_some()),
        ("consumer_group", s.consumer_group.is_some()),
    ] {
        if present {
            return Err(ConfigError::new(at(field), "only sinks have this field"));
        }
    }
    Ok(SourceStream {
        stream: required(&at("stream"), &s.stream)?,
        topic: required(&at("topic"), &s.topic)?,
        schema: schema(&at("schema"), &s.schema, ignored)?,
        batch_length: positive(&at("batch_length"), &s.batch_length, 1000)?,
        linger_time: duration(&at("linger_time"), &s.linger_time, Duration::from_millis(5))?,
        durability: durability(&at("durability"), &s.durability)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sink(v: Value) -> Result<InstanceConfig, ConfigError> {
        InstanceConfig::parse(ConnectorType::Sink, &v)
    }

    #[test]
    fn a_full_sink_config_parses_with_defaults() {
        let c = sink(json!({
            "streams": [{"stream": "orders", "topics": ["completed"], "poll_interval": "10ms"}],
            "plugin_config": {"target_table": "orders"},
        }))
        .unwrap();
        assert!(c.enabled);
        let Streams::Sink(s) = &c.streams else {
            panic!()
        };
        assert_eq!(s[0].batch_length, 1000);
        assert_eq!(s[0].poll_interval, Duration::from_millis(10));
        assert_eq!(s[0].schema, Schema::Json);
        assert_eq!(c.plugin_config["target_table"], "orders");
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                json!({"streams": [{"stream": "s", "topics": ["t"], "batch_length": 0}]}),
                "streams[0].batch_length: expected a positive integer, got 0",
            ),
            (
                json!({"streams": [{"stream": "s", "topics": ["t"], "batch_length": "x"}]}),
                "streams[0].batch_length: expected a positive integer, got \"x\"",
            ),
            (
                json!({"streams": [{"topics": ["t"]}]}),
                "streams[0].stream: missing",
            ),
            (
                json!({"streams": [{"stream": "s"}]}),
                "streams[0].topics: missing (the topics to read)",
            ),
            (
                json!({"streams": [{"stream": "s", "topics": ["t"], "poll_interval": "soon"}]}),
                "streams[0].poll_interval: `soon` is not a duration",
            ),
            (
                json!({"streams": [{"stream": "s", "topics": ["t"], "schema": "xml"}]}),
                "streams[0].schema: unknown schema `xml`",
            ),
            (
                json!({"streams": [{"stream": "s", "topics": ["t"], "colour": 1}]}),
                "streams[0].colour: unknown field `colour`",
            ),
            (json!({"streams": []}), "streams: at least one stream entry"),
            (
                json!({"enabled": "yes", "streams": []}),
                "enabled: invalid type",
            ),
            (
                json!({"streams": [{"stream": "s", "topics": ["t"]}], "plugin_config": [1]}),
                "plugin_config: expected an object",
            ),
        ];
        for (config, expected) in cases {
            let err = sink(config.clone()).unwrap_err().to_string();
            assert!(
                err.starts_with(expected),
                "{config}: got `{err}`, expected `{expected}`"
            );
        }
    }

    #[test]
    fn a_disabled_instance_needs_no_streams() {
        assert!(!sink(json!({"enabled": false})).unwrap().enabled);
    }

    #[test]
    fn source_entries_use_topic() {
        let c = InstanceConfig::parse(
            ConnectorType::Source,
            &json!({"streams": [{"stream": "s", "topic": "t", "linger_time": "5ms"}]}),
        )
        .unwrap();
        let Streams::Source(s) = &c.streams else {
            panic!()
        };
        assert_eq!(s[0].topic, "t");
        let err = InstanceConfig::parse(
            ConnectorType::Source,
            &json!({"streams": [{"stream": "s", "topics": ["t"]}]}),
        )
        .unwrap_err();
        assert_eq!(err.path, "streams[0].topics");
    }

    #[test]
    fn an_iggy_connector_file_loads_with_the_path_line_ignored() {
        let text = r#"
type = "sink"
key = "stdout"
enabled = true
version = 0
name = "Stdout sink"
path = "target/release/libiggy_connector_stdout_sink"
plugin_config_format = "json"

[[streams]]
stream = "example_stream"
topics = ["example_topic"]
schema = "json"
batch_length = 1000
poll_interval = "5ms"
consumer_group = "stdout_sink_connector"

[plugin_config]
print_payload = true

[transforms.add_fields]
enabled = true

[[transforms.add_fields.fields]]
key = "message"
value.static = "hello"
"#;
        let (c, ignored) =
            InstanceConfig::parse_noted(ConnectorType::Sink, &document(text).unwrap()).unwrap();
        assert_eq!(
            ignored_paths(&ignored),
            ["name", "version", "path", "plugin_config_format"]
        );
        let Streams::Sink(s) = &c.streams else {
            panic!()
        };
        assert_eq!(
            s[0].consumer_group.as_deref(),
            Some("stdout_sink_connector")
        );
        assert_eq!(c.plugin_config["print_payload"], true);
        assert_eq!(c.transforms.len(), 1);
    }

    fn ignored_paths(ignored: &[IgnoredField]) -> Vec<&str> {
        ignored.iter().map(|f| f.path.as_str()).collect()
    }

    /// Every field of Iggy's `SinkConfig` and `StreamConsumerConfig`
    /// (`core/connectors/runtime/src/configs/connectors.rs`), and every transform of its
    /// SDK, in one sink config: it loads, and what is not used is named.
    #[test]
    fn every_iggy_sink_field_is_accepted_and_the_unused_ones_are_named() {
        let text = r#"
type = "sink"
key = "stdout"
enabled = true
version = 3
name = "All fields"
path = "target/release/libiggy_connector_stdout_sink"
plugin_config_format = "yaml"
verbose = true
benchmark = true

[[streams]]
stream = "s"
topics = ["a", "b"]
schema = "proto"
avro_schema_json = "{}"
avro_schema_path = "/schemas/x.avsc"
batch_length = 10
poll_interval = "20ms"
consumer_group = "g"

[plugin_config]
print_payload = false

[transforms.add_fields]
enabled = true
[[transforms.add_fields.fields]]
key = "k"
value.computed = "uuid_v7"

[transforms.delete_fields]
enabled = true
fields = ["secret"]

[transforms.update_fields]
enabled = true
[[transforms.update_fields.fields]]
key = "state"
value.static = "seen"
condition = "key_exists"

[transforms.filter_fields]
enabled = true
keep_fields = ["id"]
patterns = [{ key_pattern = { starts_with = "meta_" } }]
include_matching = true

[transforms.proto_convert]
enabled = true
source_format = "proto"
target_format = "json"

[transforms.flatbuffer_convert]
enabled = true

[transforms.avro_convert]
enabled = false

[transforms.unwrap_envelope]
enabled = true
field = "data"
"#;
        let (c, ignored) =
            InstanceConfig::parse_noted(ConnectorType::Sink, &document(text).unwrap()).unwrap();
        assert_eq!(
            ignored_paths(&ignored),
            [
                "name",
                "version",
                "path",
                "plugin_config_format",
                "verbose",
                "benchmark",
                "transforms.filter_fields.patterns",
                "transforms.proto_convert",
                "transforms.flatbuffer_convert",
                "transforms.unwrap_envelope",
                "streams[0].avro_schema_json",
                "streams[0].avro_schema_path",
                "streams[0].schema",
            ]
        );
        let Streams::Sink(s) = &c.streams else {
            panic!("a sink")
        };
        assert_eq!(
            s[0],
            SinkStream {
                stream: "s".into(),
                topics: vec!["a".into(), "b".into()],
                schema: Schema::Raw,
                batch_length: 10,
                poll_interval: Duration::from_millis(20),
                consumer_group: Some("g".into()),
                durability: TopicDurability::Default,
            }
        );
        let names: Vec<&str> = c.transforms.iter().map(|t| t.name()).collect();
        assert_eq!(names, ["add_fields", "delete_fields", "update_fields"]);
        assert_eq!(c.plugin_config, json!({"print_payload": false}));
        let line = describe_ignored(&ignored);
        assert!(
            line.contains("transforms.proto_convert, transforms.flatbuffer_convert, transforms.unwrap_envelope (ld-connectord has no such transform"),
            "{line}"
        );
    }

    /// Every field of Iggy's `SourceConfig` and `StreamProducerConfig`.
    #[test]
    fn every_iggy_source_field_is_accepted_and_the_unused_ones_are_named() {
        let (c, ignored) = InstanceConfig::parse_noted(
            ConnectorType::Source,
            &json!({
                "type": "source", "key": "random", "enabled": true, "version": 0,
                "name": "r", "path": "lib", "plugin_config_format": "text",
                "verbose": false, "benchmark": false,
                "streams": [{"stream": "s", "topic": "t", "schema": "avro",
                             "avro_schema_json": "{}", "avro_schema_path": "/a.avsc",
                             "batch_length": 7, "linger_time": "9ms"}],
                "plugin_config": {"max_count": 3},
                "transforms": {"add_fields": {"enabled": true}},
            }),
        )
        .unwrap();
        assert_eq!(
            ignored_paths(&ignored),
            [
                "name",
                "version",
                "path",
                "plugin_config_format",
                "streams[0].avro_schema_json",
                "streams[0].avro_schema_path",
                "streams[0].schema",
            ]
        );
        let Streams::Source(s) = &c.streams else {
            panic!("a source")
        };
        assert_eq!(
            s[0],
            SourceStream {
                stream: "s".into(),
                topic: "t".into(),
                schema: Schema::Raw,
                batch_length: 7,
                linger_time: Duration::from_millis(9),
                durability: TopicDurability::Default,
            }
        );
        // A durability that is not one names the values that are.
        let e = InstanceConfig::parse(
            ConnectorType::Source,
            &json!({"streams": [{"stream": "s", "topic": "t", "durability": "disk"}]}),
        )
        .unwrap_err();
        assert_eq!(e.path, "streams[0].durability");
        assert!(
            e.message.contains("default, write or fsync"),
            "{}",
            e.message
        );
        let fsync = InstanceConfig::parse(
            ConnectorType::Source,
            &json!({"streams": [{"stream": "s", "topic": "t", "durability": "fsync"}]}),
        )
        .unwrap();
        let Streams::Source(fsync) = &fsync.streams else {
            panic!("a source")
        };
        assert_eq!(fsync[0].durability, TopicDurability::Fsync);
        // An add_fields without fields (Iggy's default: none) adds nothing, but loads.
        assert_eq!(c.transforms.len(), 1);
    }

    #[test]
    fn errors_tolerance_all_needs_a_dead_letter_topic() {
        let parse = |errors: Value| {
            sink(json!({"streams": [{"stream": "s", "topics": ["t"]}], "errors": errors}))
        };
        let e = parse(json!({"tolerance": "all"})).unwrap_err();
        assert_eq!(e.path, "errors.dead_letter");
        let e = parse(json!({"tolerance": "some"})).unwrap_err();
        assert!(e.path.starts_with("errors"), "{e:?}");
        let c = parse(json!({"tolerance": "all", "dead_letter": {"stream": "s", "topic": "dlq"}}))
            .unwrap();
        assert_eq!(c.errors.tolerance, Tolerance::All);
        assert_eq!(
            c.errors.dead_letter,
            Some(crate::stream::TopicRef::new("s", "dlq"))
        );
        let c = sink(json!({"streams": [{"stream": "s", "topics": ["t"]}]})).unwrap();
        assert_eq!(c.errors, ErrorPolicy::default());
    }

    #[test]
    fn iggy_filter_fields_is_kept_when_it_means_keep_fields() {
        let parse = |filter: Value| {
            InstanceConfig::parse_noted(
                ConnectorType::Sink,
                &json!({"streams": [{"stream": "s", "topics": ["t"]}],
                        "transforms": {"filter_fields": filter}}),
            )
        };
        let (c, ignored) =
            parse(json!({"enabled": true, "keep_fields": ["id"], "include_matching": true}))
                .unwrap();
        assert!(ignored.is_empty());
        assert_eq!(c.transforms[0].name(), "filter_fields");
        // Iggy keeps every field here, so there is nothing to run.
        for does_nothing in [
            json!({"enabled": true, "keep_fields": []}),
            json!({"enabled": true, "keep_fields": ["id"], "include_matching": false}),
        ] {
            let (c, ignored) = parse(does_nothing.clone()).unwrap();
            assert!(
                c.transforms.is_empty() && ignored.is_empty(),
                "{does_nothing}"
            );
        }
        let err = parse(json!({"enabled": true, "include_matching": "yes"})).unwrap_err();
        assert_eq!(err.path, "transforms.filter_fields.include_matching");
    }

    #[test]
    fn iggy_fields_of_the_wrong_type_or_value_are_refused_naming_them() {
        let cases = [
            (
                json!({"plugin_config_format": "xml"}),
                "plugin_config_format: `xml` is not one of json, yaml, toml, text",
            ),
            (json!({"verbose": "yes"}), "verbose: invalid type"),
            (json!({"benchmark": 1}), "benchmark: invalid type"),
            (
                json!({"streams": [{"stream": "s", "topics": ["t"], "avro_schema_path": 5}]}),
                "streams[0].avro_schema_path: invalid type",
            ),
            (
                json!({"transforms": {"delete_fields": {"enabled": true, "fields": "x"}}}),
                "transforms.delete_fields: invalid type",
            ),
        ];
        for (mut config, expected) in cases {
            if config.get("streams").is_none() {
                config["streams"] = json!([{"stream": "s", "topics": ["t"]}]);
            }
            let err = sink(config.clone()).unwrap_err().to_string();
            assert!(
                err.starts_with(expected),
                "{config}: got `{err}`, expected `{expected}`"
            );
        }
    }

    #[test]
    fn the_warning_groups_fields_by_reason() {
        let ignored = [
            IgnoredField::new("name", IDENTITY),
            IgnoredField::new("benchmark", BENCHMARK),
            IgnoredField::new("path", IDENTITY),
        ];
        assert_eq!(
            describe_ignored(&ignored),
            format!("name, path ({IDENTITY}); benchmark ({BENCHMARK})")
        );
    }
}
