//! Instance config files, as `ld-connectord local` reads them: TOML in the shape of
//! Iggy's connector files, or JSON, with the side (`type`) and the connector (`key`).

use std::path::Path;

use anyhow::{bail, Context};
use ld_plugin_api::ffi::ConnectorType;

use super::{document, instance::warn_ignored, IgnoredField, InstanceConfig};
use crate::instance::InstanceSpec;

/// Reads one instance file: its side, connector key and config. Fields of Iggy's format
/// that have no effect here are named in one warning with the instance key.
pub fn read_instance_file(path: &Path) -> anyhow::Result<InstanceSpec> {
    let (spec, ignored) = read_instance_file_noted(path)?;
    warn_ignored(Some(&spec.instance_key), &ignored);
    Ok(spec)
}

/// [`read_instance_file`] without the warning: the spec, and the fields accepted but not
/// used.
pub(crate) fn read_instance_file_noted(
    path: &Path,
) -> anyhow::Result<(InstanceSpec, Vec<IgnoredField>)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let doc = document(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let side = match doc.get("type").and_then(|v| v.as_str()) {
        Some("source") => ConnectorType::Source,
        Some("sink") => ConnectorType::Sink,
        Some(other) => bail!(
            "{}: type: `{other}` is neither source nor sink",
            path.display()
        ),
        None => bail!("{}: type: missing (source or sink)", path.display()),
    };
    let Some(key) = doc.get("key").and_then(|v| v.as_str()) else {
        bail!(
            "{}: key: missing (the connector key, e.g. stdout)",
            path.display()
        );
    };
    let (config, ignored) = InstanceConfig::parse_noted(side, &doc)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let instance_key = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .context("instance file has no name")?;
    Ok((
        InstanceSpec {
            instance_key,
            connector_key: key.to_string(),
            connector_type: side,
            config,
            lease: None,
        },
        ignored,
    ))
}

#[cfg(test)]
mod tests {
    //! Every connector file of Apache Iggy's repository, copied verbatim into
    //! `runtime/tests/iggy_configs/` (see the README there for the commit), loads as
    //! `ld-connectord local` reads it.

    use std::{
        path::PathBuf,
        sync::{Arc, Mutex},
        time::Duration,
    };

    use ld_plugin_api::Schema;

    use super::*;
    use crate::config::Streams;

    fn iggy_file(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/iggy_configs")
            .join(name)
    }

    enum Expect {
        /// Loads: side, connector key, transforms kept, fields named in the warning.
        Loads(ConnectorType, &'static str, usize, &'static [&'static str]),
        /// Refused, with this message after the file name.
        Refused(&'static str),
    }
    use Expect::{Loads, Refused};

    const SINK: ConnectorType = ConnectorType::Sink;
    const SOURCE: ConnectorType = ConnectorType::Source;
    const ID: &[&str] = &["name", "version", "path"];
    const ID_FORMAT: &[&str] = &["name", "version", "path", "plugin_config_format"];
    const ID_VERBOSE: &[&str] = &["name", "version", "path", "verbose"];

    const FILES: &[(&str, Expect)] = &[
        (
            "example_config/clickhouse_sink.toml",
            Loads(SINK, "clickhouse", 0, ID),
        ),
        (
            "example_config/delta_sink.toml",
            Loads(SINK, "delta", 0, ID_VERBOSE),
        ),
        (
            "example_config/doris_sink.toml",
            Loads(SINK, "doris", 0, ID_FORMAT),
        ),
        (
            "example_config/iceberg_sink.toml",
            Loads(SINK, "iceberg", 1, ID),
        ),
        (
            "example_config/influxdb_sink.toml",
            Loads(SINK, "influxdb", 0, ID_FORMAT),
        ),
        (
            "example_config/influxdb_source.toml",
            Loads(SOURCE, "influxdb", 0, ID_FORMAT),
        ),
        (
            "example_config/quickwit_sink.toml",
            Loads(SINK, "quickwit", 2, ID_FORMAT),
        ),
        (
            "example_config/random_source_v0.toml",
            Loads(
                SOURCE,
                "random",
                1,
                &[
                    "name",
                    "version",
                    "path",
                    "plugin_config_format",
                    "benchmark",
                ],
            ),
        ),
        (
            "example_config/random_source_v1.toml",
            Loads(SOURCE, "random", 1, ID_FORMAT),
        ),
        (
            "example_config/stdout_sink.toml",
            Loads(SINK, "stdout", 1, &["name", "version", "path", "benchmark"]),
        ),
        (
            "sinks/clickhouse_sink.toml",
            Loads(SINK, "clickhouse", 0, ID),
        ),
        ("sinks/delta_sink.toml", Loads(SINK, "delta", 0, ID_VERBOSE)),
        (
            "sinks/doris_sink.toml",
            Refused("streams[0].topics: expected a non-empty list of topic names"),
        ),
        (
            "sinks/elasticsearch_sink.toml",
            Loads(SINK, "elasticsearch", 0, ID),
        ),
        ("sinks/http_sink.toml", Loads(SINK, "http", 0, ID)),
        (
            "sinks/iceberg_sink.toml",
            Loads(SINK, "iceberg", 0, ID_VERBOSE),
        ),
        ("sinks/influxdb_sink.toml", Loads(SINK, "influxdb", 0, ID)),
        (
            "sinks/meilisearch_sink.toml",
            Loads(SINK, "meilisearch", 0, ID),
        ),
        ("sinks/mongodb_sink.toml", Loads(SINK, "mongodb", 0, ID)),
        ("sinks/postgres_sink.toml", Loads(SINK, "postgres", 0, ID)),
        (
            "sinks/quickwit_sink.toml",
            Refused("streams[0].topics: expected a non-empty list of topic names"),
        ),
        (
            "sinks/stdout_sink.toml",
            Loads(SINK, "stdout", 0, ID_VERBOSE),
        ),
        (
            "sinks/surrealdb_sink.toml",
            Loads(SINK, "surrealdb", 0, ID_FORMAT),
        ),
        (
            "sources/elasticsearch_source.toml",
            Loads(SOURCE, "elasticsearch", 0, ID_FORMAT),
        ),
        (
            "sources/influxdb_source.toml",
            Loads(SOURCE, "influxdb", 0, ID),
        ),
        (
            "sources/postgres_source.toml",
            Loads(SOURCE, "postgres", 0, ID),
        ),
        (
            "sources/random_source.toml",
            Loads(SOURCE, "random", 1, ID_FORMAT),
        ),
    ];

    #[test]
    fn every_iggy_connector_file_is_listed() {
        let mut on_disk = Vec::new();
        for folder in ["example_config", "sinks", "sources"] {
            for entry in std::fs::read_dir(iggy_file(folder)).unwrap() {
                let name = entry.unwrap().file_name().into_string().unwrap();
                on_disk.push(format!("{folder}/{name}"));
            }
        }
        on_disk.sort();
        let mut listed: Vec<String> = FILES.iter().map(|(f, _)| f.to_string()).collect();
        listed.sort();
        assert_eq!(on_disk, listed);
    }

    #[test]
    fn every_iggy_connector_file_loads_or_names_its_placeholder() {
        for (file, expect) in FILES {
            let result = read_instance_file_noted(&iggy_file(file));
            match expect {
                Loads(side, key, transforms, warned) => {
                    let (spec, ignored) = result.unwrap_or_else(|e| panic!("{file}: {e:#}"));
                    assert_eq!(spec.connector_type, *side, "{file}");
                    assert_eq!(spec.connector_key, *key, "{file}");
                    assert!(spec.config.enabled, "{file}");
                    assert_eq!(spec.config.transforms.len(), *transforms, "{file}");
                    let paths: Vec<&str> = ignored.iter().map(|f| f.path.as_str()).collect();
                    assert_eq!(paths, *warned, "{file}");
                    let streams = match &spec.config.streams {
                        Streams::Sink(s) => s.len(),
                        Streams::Source(s) => s.len(),
                    };
                    assert_eq!(streams, 1, "{file}");
                    assert!(spec.config.plugin_config.is_object(), "{file}");
                }
                Refused(message) => {
                    let Err(err) = result else {
                        panic!("{file}: loaded, but a blank stream should be refused")
                    };
                    let err = format!("{err:#}");
                    let expected = format!("{}: {message}", iggy_file(file).display());
                    assert!(err.starts_with(&expected), "{file}: {err}");
                }
            }
        }
    }

    #[test]
    fn iggy_stdout_sink_file_keeps_what_it_says() {
        let (spec, _) =
            read_instance_file_noted(&iggy_file("example_config/stdout_sink.toml")).unwrap();
        assert_eq!(spec.instance_key, "stdout_sink");
        let Streams::Sink(s) = &spec.config.streams else {
            panic!("a sink")
        };
        assert_eq!(s[0].stream, "example_stream");
        assert_eq!(s[0].topics, ["example_topic"]);
        assert_eq!(s[0].schema, Schema::Json);
        assert_eq!(s[0].batch_length, 100);
        assert_eq!(s[0].poll_interval, Duration::from_millis(5));
        assert_eq!(
            s[0].consumer_group.as_deref(),
            Some("stdout_sink_connector")
        );
        assert_eq!(spec.config.plugin_config["print_payload"], true);
        assert_eq!(spec.config.transforms[0].name(), "add_fields");
    }

    #[test]
    fn iggy_random_source_file_keeps_what_it_says() {
        let (spec, _) =
            read_instance_file_noted(&iggy_file("example_config/random_source_v0.toml")).unwrap();
        let Streams::Source(s) = &spec.config.streams else {
            panic!("a source")
        };
        assert_eq!(
            (s[0].stream.as_str(), s[0].topic.as_str()),
            ("example_stream", "example_topic")
        );
        assert_eq!(s[0].batch_length, 1000);
        assert_eq!(s[0].linger_time, Duration::from_millis(5));
        // plugin_config goes to the plugin as written; the random source reads Iggy's
        // field names.
        assert_eq!(
            spec.config.plugin_config,
            serde_json::json!({"interval": "100ms", "max_count": 1000,
                               "messages_range": [10, 50], "payload_size": 200})
        );
    }

    /// Collects what a `tracing` subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    #[test]
    fn unused_fields_are_named_once_in_one_warning_with_the_instance_key() {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(captured.clone())
            .with_ansi(false)
            .finish();
        let spec = tracing::subscriber::with_default(subscriber, || {
            read_instance_file(&iggy_file("example_config/stdout_sink.toml")).unwrap()
        });
        assert_eq!(spec.connector_key, "stdout");
        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let warnings: Vec<&str> = log.lines().filter(|l| l.contains("WARN")).collect();
        assert_eq!(warnings.len(), 1, "{log}");
        let line = warnings[0];
        assert!(line.contains("instance stdout_sink:"), "{line}");
        assert!(
            line.contains("name, version, path (Iggy's file identity"),
            "{line}"
        );
        assert!(
            line.contains("benchmark (batch timings are published as metrics"),
            "{line}"
        );
        assert!(
            !line.contains("verbose"),
            "verbose = false asks for nothing: {line}"
        );
    }

    #[test]
    fn a_file_without_iggy_extras_warns_about_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orders.toml");
        std::fs::write(
            &path,
            "type = \"sink\"\nkey = \"stdout\"\n[[streams]]\nstream = \"s\"\ntopics = [\"t\"]\n",
        )
        .unwrap();
        let (spec, ignored) = read_instance_file_noted(&path).unwrap();
        assert_eq!(spec.instance_key, "orders");
        assert!(ignored.is_empty(), "{ignored:?}");
    }
}
