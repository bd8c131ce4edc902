//! [`Secret`]: a config value that must never be shown again.

use schemars::{
    gen::SchemaGenerator,
    schema::{InstanceType, Schema, SchemaObject},
    JsonSchema,
};

/// The JSON Schema keyword that marks a secret field (beside `"writeOnly": true`).
pub const SECRET_MARKER: &str = "x-ld-secret";

/// A secret config value: a password, a token, a key, a connection string with
/// credentials in it.
///
/// Use it as the type of a config field and the field is marked secret in the plugin's
/// published JSON Schema (`"writeOnly": true` and `"x-ld-secret": true`). The control
/// plane then stores the value but never shows it again (answers carry a fixed mask),
/// and the daemon keeps it out of logs, statuses and its local API. Its `Debug` and
/// `Display` print `******`, so a config logged with `{:?}` leaks nothing; read the
/// value with [`Secret::expose`] where it is used, and keep it out of error messages.
///
/// Users may also write `${env:NAME}` or `${file:/path}` in any string of
/// `plugin_config`; the daemon resolves those before the plugin sees the config.
///
/// ```
/// use ld_plugin_api::Secret;
///
/// #[derive(serde::Deserialize, schemars::JsonSchema, Debug)]
/// struct Config {
///     username: String,
///     /// The user's password.
///     password: Secret,
/// }
///
/// let config: Config =
///     serde_json::from_str(r#"{"username": "bob", "password": "hunter2"}"#).unwrap();
/// assert_eq!(config.password.expose(), "hunter2");
/// assert!(!format!("{config:?}").contains("hunter2"));
///
/// let schema = serde_json::to_value(schemars::schema_for!(Config)).unwrap();
/// assert_eq!(schema["properties"]["password"]["writeOnly"], true);
/// assert_eq!(schema["properties"]["password"]["x-ld-secret"], true);
/// ```
#[derive(Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// A secret holding `value`.
    ///
    /// ```
    /// let s = ld_plugin_api::Secret::new("token-123");
    /// assert_eq!(s.expose(), "token-123");
    /// ```
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the one place that uses it (an auth header, a connect call).
    ///
    /// ```
    /// let s = ld_plugin_api::Secret::new("p");
    /// assert_eq!(s.expose(), "p");
    /// ```
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the value is empty.
    ///
    /// ```
    /// assert!(ld_plugin_api::Secret::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("******")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("******")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_string())
    }
}

impl JsonSchema for Secret {
    fn schema_name() -> String {
        "Secret".into()
    }

    // Inline, so the marker sits on the field itself and tools find it without
    // resolving references.
    fn is_referenceable() -> bool {
        false
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let mut schema = SchemaObject {
            instance_type: Some(InstanceType::String.into()),
            ..Default::default()
        };
        schema.metadata().write_only = true;
        schema
            .extensions
            .insert(SECRET_MARKER.into(), serde_json::Value::Bool(true));
        schema.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    #[allow(dead_code)]
    struct Nested {
        #[serde(default)]
        token: Option<Secret>,
    }

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    #[allow(dead_code)]
    struct Config {
        /// Documented secret.
        password: Secret,
        store: Nested,
    }

    #[test]
    fn optional_and_nested_secrets_keep_the_marker() {
        let schema = serde_json::to_value(schemars::schema_for!(Config)).unwrap();
        let password = &schema["properties"]["password"];
        assert_eq!(password[SECRET_MARKER], true, "{schema}");
        assert_eq!(password["description"], "Documented secret.");
        let nested = &schema["definitions"]["Nested"]["properties"]["token"];
        assert_eq!(nested[SECRET_MARKER], true, "{schema}");
        assert_eq!(nested["writeOnly"], true, "{schema}");
    }
}
