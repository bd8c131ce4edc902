//! An instance's config: which streams it reads or writes, its `plugin_config` and its
//! transforms. Same shape as Apache Iggy's connector configs, so those carry over.
//!
//! Parsing names the field that is wrong: `streams[0].batch_length: expected a
//! positive integer`.

use std::time::Duration;

use ld_plugin_api::{ffi::ConnectorType, Schema};
use serde::Deserialize;
use serde_json::Value;

use crate::transform::{Transform, TransformError};

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
}

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
    // Identity fields of an Iggy connector file: read by the local runner, not here.
    #[serde(default, rename = "type")]
    _type: Option<String>,
    #[serde(default, rename = "key")]
    _key: Option<String>,
    #[serde(default, rename = "name")]
    _name: Option<String>,
    #[serde(default, rename = "version")]
    _version: Option<Value>,
    #[serde(default, rename = "id")]
    _id: Option<Value>,
    // Iggy's runtime loads the library from `path`; we load by key from the plugin
    // directory, so the line is ignored.
    #[serde(default, rename = "path")]
    _path: Option<String>,
    #[serde(default)]
    plugin_config_format: Option<String>,
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

fn schema(path: &str, v: &Option<String>) -> Result<Schema, ConfigError> {
    match v {
        None => Ok(Schema::Json),
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
    /// converted to JSON).
    pub fn parse(side: ConnectorType, value: &Value) -> Result<InstanceConfig, ConfigError> {
        let raw: RawConfig = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            ConfigError::new(
                if path == "." { "config".into() } else { path },
                e.into_inner().to_string(),
            )
        })?;
        if let Some(format) = &raw.plugin_config_format {
            if format != "json" && format != "toml" {
                return Err(ConfigError::new(
                    "plugin_config_format",
                    format!("`{format}` is not supported (json or toml)"),
                ));
            }
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
            Some(v) => crate::transform::parse_list(v)?,
        };
        let streams = match side {
            ConnectorType::Sink => Streams::Sink(
                raw.streams
                    .iter()
                    .enumerate()
                    .map(|(i, s)| sink_stream(i, s))
                    .collect::<Result<_, _>>()?,
            ),
            ConnectorType::Source => Streams::Source(
                raw.streams
                    .iter()
                    .enumerate()
                    .map(|(i, s)| source_stream(i, s))
                    .collect::<Result<_, _>>()?,
            ),
        };
        let config = InstanceConfig {
            enabled: raw.enabled,
            streams,
            plugin_config,
            transforms,
        };
        if config.enabled && config.stream_count() == 0 {
            return Err(ConfigError::new(
                "streams",
                "at least one stream entry is needed for an enabled instance",
            ));
        }
        Ok(config)
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
    let table: toml::Table = toml::from_str(text)
        .map_err(|e| ConfigError::new("config", format!("invalid TOML: {}", e.message())))?;
    serde_json::to_value(table).map_err(|e| ConfigError::new("config", e.to_string()))
}

fn sink_stream(i: usize, s: &RawStream) -> Result<SinkStream, ConfigError> {
    let at = |field: &str| format!("streams[{i}].{field}");
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
        schema: schema(&at("schema"), &s.schema)?,
        batch_length: positive(&at("batch_length"), &s.batch_length, 1000)?,
        poll_interval: duration(
            &at("poll_interval"),
            &s.poll_interval,
            Duration::from_millis(5),
        )?,
        consumer_group: s.consumer_group.clone().filter(|g| !g.is_empty()),
    })
}

fn source_stream(i: usize, s: &RawStream) -> Result<SourceStream, ConfigError> {
    let at = |field: &str| format!("streams[{i}].{field}");
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
        schema: schema(&at("schema"), &s.schema)?,
        batch_length: positive(&at("batch_length"), &s.batch_length, 1000)?,
        linger_time: duration(&at("linger_time"), &s.linger_time, Duration::from_millis(5))?,
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
        let c = InstanceConfig::parse_text(ConnectorType::Sink, text).unwrap();
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
}
