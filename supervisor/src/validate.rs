//! Input checks beyond JSON types: key syntax and the shape of an instance config.
//!
//! The supervisor cannot run a plugin's own config check, so it checks what every config
//! shares (docs/architecture.md, "Instance config") and leaves `plugin_config` to the
//! plugin, whose rejection the nodes report as `failed`.

use serde_json::Value;

use crate::problem::ApiError;

/// Longest key (instance key, node id) accepted.
pub const MAX_KEY_LEN: usize = 128;
/// Longest instance name accepted.
pub const MAX_NAME_LEN: usize = 256;

/// A key made of ASCII letters, digits, `-`, `_` and `.`, 1 to 128 characters.
pub fn key_like(field: &str, value: &str) -> Result<(), ApiError> {
    let ok = !value.is_empty()
        && value.len() <= MAX_KEY_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            field,
            format!(
                "{field} must be 1 to {MAX_KEY_LEN} characters of letters, digits, `-`, `_` \
                 or `.`, got `{value}`"
            ),
        ))
    }
}

/// A human-readable name: not blank, at most 256 characters.
pub fn name(field: &str, value: &str) -> Result<(), ApiError> {
    if value.trim().is_empty() || value.chars().count() > MAX_NAME_LEN {
        return Err(ApiError::invalid_field(
            field,
            format!("{field} must be 1 to {MAX_NAME_LEN} characters"),
        ));
    }
    Ok(())
}

/// The shared shape of an instance config: an object whose `enabled` is a boolean,
/// `streams` an array of objects, `plugin_config` an object and `transforms` an array or
/// an object (Iggy's map form), each when present.
pub fn config(field: &str, value: &Value) -> Result<(), ApiError> {
    let Some(object) = value.as_object() else {
        return Err(ApiError::invalid_field(
            field,
            format!("{field} must be a JSON object"),
        ));
    };
    let wrong = |name: &str, what: &str| {
        ApiError::invalid_field(
            format!("{field}.{name}"),
            format!("{field}.{name} must be {what}"),
        )
    };
    if let Some(v) = object.get("enabled") {
        if !v.is_boolean() {
            return Err(wrong("enabled", "true or false"));
        }
    }
    if let Some(v) = object.get("streams") {
        let all_objects = v
            .as_array()
            .is_some_and(|streams| streams.iter().all(Value::is_object));
        if !all_objects {
            return Err(wrong("streams", "an array of objects"));
        }
    }
    if let Some(v) = object.get("plugin_config") {
        if !v.is_object() {
            return Err(wrong("plugin_config", "an object"));
        }
    }
    if let Some(v) = object.get("transforms") {
        if !(v.is_array() || v.is_object()) {
            return Err(wrong("transforms", "an array or an object"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys() {
        assert!(key_like("k", "orders-pg-sink").is_ok());
        assert!(key_like("k", "node.1_a").is_ok());
        assert!(key_like("k", "").is_err());
        assert!(key_like("k", "has space").is_err());
        assert!(key_like("k", &"a".repeat(129)).is_err());
    }

    #[test]
    fn configs() {
        assert!(config(
            "config",
            &json!({"enabled": true, "streams": [{}], "plugin_config": {}, "transforms": {}})
        )
        .is_ok());
        assert!(config("config", &json!({})).is_ok());
        for bad in [
            json!([]),
            json!({"enabled": "yes"}),
            json!({"streams": {}}),
            json!({"plugin_config": 1}),
            json!({"transforms": "x"}),
        ] {
            assert!(config("config", &bad).is_err(), "{bad}");
        }
        match config("config", &json!({"enabled": 1})) {
            Err(ApiError::BadRequest { field, .. }) => {
                assert_eq!(field.as_deref(), Some("config.enabled"))
            }
            other => panic!("{other:?}"),
        }
    }
}
