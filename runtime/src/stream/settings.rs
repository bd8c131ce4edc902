//! Which stream backend to use, and its settings: the `[stream]` table of the daemon's
//! config (and of `local --config`), or `local --stream URL`.
//!
//! Each backend owns its settings type (defaults, parsing, checks); this enum only picks
//! one by `backend = "..."`. Errors name the field (`stream: durability: ...`; the
//! config loader names the table, the settings the field in it).

use serde::{de::Error as _, Deserialize, Deserializer, Serialize};

use super::{
    embedded::{Durability, EmbeddedSettings},
    iggy_settings::IggySettings,
};

/// Which stream backend the daemon uses, with that backend's settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "backend", rename_all = "lowercase")]
pub enum StreamSettings {
    /// The durable local log (`backend = "embedded"`).
    #[serde(deserialize_with = "naming_the_field")]
    Embedded(EmbeddedSettings),
    /// A real Apache Iggy server (`backend = "iggy"`; a build with `--features iggy`).
    #[serde(deserialize_with = "naming_the_field")]
    Iggy(IggySettings),
}

/// Reads a backend's settings so that an error names the field it is about: serde
/// reads a tagged table as a whole, so the config loader can only say `stream`.
fn naming_the_field<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    serde_path_to_error::deserialize(d).map_err(|e| {
        let field = e.path().to_string();
        let error = e.into_inner();
        if field == "." {
            error
        } else {
            D::Error::custom(format_args!("{field}: {error}"))
        }
    })
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings::Embedded(EmbeddedSettings::default())
    }
}

/// Stream settings that cannot be used; names the field or the flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct SettingsError {
    /// The field or flag (`--stream`, `--durability`).
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl SettingsError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl StreamSettings {
    /// From a command-line value: `embedded`, or `iggy://[user:password@]host:port`.
    pub fn from_url(url: &str) -> Result<StreamSettings, SettingsError> {
        if url == "embedded" {
            return Ok(StreamSettings::default());
        }
        if let Some(rest) = url.strip_prefix("iggy://") {
            return IggySettings::from_url(rest).map(StreamSettings::Iggy);
        }
        Err(SettingsError::new(
            "--stream",
            format!("`{url}` is neither `embedded` nor `iggy://[user:password@]host:port`"),
        ))
    }

    /// From `local`'s flags: `--stream URL`, and `--durability` for the backends that
    /// have one (it is checked, and ignored by the others).
    pub fn from_flags(url: &str, durability: &str) -> Result<StreamSettings, SettingsError> {
        let durability = durability
            .parse::<Durability>()
            .map_err(|e| SettingsError::new("--durability", e.to_string()))?;
        let mut settings = Self::from_url(url)?;
        if let StreamSettings::Embedded(s) = &mut settings {
            s.durability = durability;
        }
        Ok(settings)
    }
}

/// Reads a partition count: a positive integer (serde `deserialize_with`).
pub(super) fn partitions<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    match u32::deserialize(d)? {
        0 => Err(D::Error::custom("must be at least 1")),
        n => Ok(n),
    }
}

/// The default partition count of new topics.
pub(super) fn one_partition() -> u32 {
    1
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn from_toml(text: &str) -> Result<StreamSettings, String> {
        #[derive(Deserialize)]
        struct File {
            stream: StreamSettings,
        }
        toml::from_str::<File>(text)
            .map(|f| f.stream)
            .map_err(|e| e.message().to_string())
    }

    #[test]
    fn stream_urls_parse() {
        assert_eq!(
            StreamSettings::from_url("embedded").unwrap(),
            StreamSettings::default()
        );
        let StreamSettings::Iggy(iggy) =
            StreamSettings::from_url("iggy://u:p@127.0.0.1:8090").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (
                iggy.address.as_str(),
                iggy.username.as_str(),
                iggy.password.expose()
            ),
            ("127.0.0.1:8090", "u", "p")
        );
        for bad in ["kafka://x:1", "iggy://", "iggy://u@h:1", "iggy://host"] {
            let err = StreamSettings::from_url(bad).unwrap_err().to_string();
            assert!(err.contains("--stream"), "{bad}: {err}");
        }
    }

    #[test]
    fn flags_set_the_durability_of_the_embedded_log_only() {
        let StreamSettings::Embedded(e) = StreamSettings::from_flags("embedded", "100ms").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            e.durability,
            Durability::Interval(Duration::from_millis(100))
        );
        assert!(matches!(
            StreamSettings::from_flags("iggy://h:1", "batch").unwrap(),
            StreamSettings::Iggy(_)
        ));
        let err = StreamSettings::from_flags("embedded", "never").unwrap_err();
        assert_eq!(err.field, "--durability", "{err}");
    }

    #[test]
    fn tables_keep_their_shape() {
        let embedded = from_toml(
            "[stream]\nbackend = \"embedded\"\ndurability = \"100ms\"\npartitions = 2\n\
             retention_bytes = 1000\nretention_age = \"7d\"\ndelete_consumed = true\n",
        )
        .unwrap();
        assert_eq!(
            embedded,
            StreamSettings::Embedded(EmbeddedSettings {
                durability: Durability::Interval(Duration::from_millis(100)),
                partitions: 2,
                retention_bytes: Some(1000),
                retention_age: Some(Duration::from_secs(7 * 86400)),
                delete_consumed: true,
            })
        );
        assert_eq!(
            from_toml("[stream]\nbackend = \"embedded\"\n").unwrap(),
            StreamSettings::default()
        );
        let StreamSettings::Iggy(iggy) =
            from_toml("[stream]\nbackend = \"iggy\"\naddress = \"127.0.0.1:8090\"\n").unwrap()
        else {
            panic!()
        };
        assert_eq!(iggy, IggySettings::new("127.0.0.1:8090"));
    }

    #[test]
    fn serialized_settings_read_back_the_same() {
        let settings = StreamSettings::Embedded(EmbeddedSettings {
            durability: Durability::Interval(Duration::from_millis(250)),
            retention_age: Some(Duration::from_secs(3600)),
            ..EmbeddedSettings::default()
        });
        #[derive(Serialize)]
        struct File<'a> {
            stream: &'a StreamSettings,
        }
        let text = toml::to_string(&File { stream: &settings }).unwrap();
        assert_eq!(from_toml(&text).unwrap(), settings, "{text}");
    }

    #[test]
    fn bad_fields_are_named() {
        let cases = [
            ("backend = \"kafka\"", "unknown variant `kafka`"),
            ("durability = \"batch\"", "missing field `backend`"),
            (
                "backend = \"embedded\"\ndurability = \"never\"",
                "durability: `never`",
            ),
            (
                "backend = \"embedded\"\ndurability = \"0s\"",
                "durability: `0s`",
            ),
            (
                "backend = \"embedded\"\npartitions = 0",
                "partitions: must be at least 1",
            ),
            (
                "backend = \"embedded\"\npartitions = \"x\"",
                "partitions: invalid type",
            ),
            (
                "backend = \"embedded\"\nretention_age = 7",
                "retention_age: ",
            ),
            (
                "backend = \"embedded\"\ncolour = 1",
                "unknown field `colour`",
            ),
            ("backend = \"iggy\"", "missing field `address`"),
            (
                "backend = \"iggy\"\naddress = \"h:1\"\npartitions = 0",
                "partitions: must",
            ),
            (
                "backend = \"iggy\"\naddress = \"h:1\"\ncreate_missing = 1",
                "create_missing: ",
            ),
            (
                "backend = \"iggy\"\naddress = \"h:1\"\ndurability = \"batch\"",
                "unknown field `durability`",
            ),
        ];
        for (table, field) in cases {
            let err = from_toml(&format!("[stream]\n{table}\n")).unwrap_err();
            assert!(err.contains(field), "expected `{field}` in `{err}`");
        }
    }
}
