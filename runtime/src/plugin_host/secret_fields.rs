//! Which `plugin_config` fields a plugin marked secret, read off its published JSON
//! Schema (`"x-ld-secret": true`, see `ld_plugin_api::Secret`), as JSON Pointers such as
//! `/password` or `/store/secret_access_key`. The node reports them with its plugins, so
//! the control plane knows what to mask, and uses them to keep values out of reasons.

use ld_plugin_api::ffi::SECRET_MARKER;
use serde_json::Value;

/// The JSON Pointers of the secret fields the schema declares, sorted.
pub fn secret_fields(schema: &Value) -> Vec<String> {
    let mut found = Vec::new();
    walk(schema, schema, String::new(), &mut found, 0);
    found.sort();
    found.dedup();
    found
}

/// Deep enough for any real config; a cycle through `$ref` stops here.
const MAX_DEPTH: usize = 16;

fn walk(root: &Value, schema: &Value, path: String, found: &mut Vec<String>, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    if schema.get(SECRET_MARKER) == Some(&Value::Bool(true)) && !path.is_empty() {
        found.push(path.clone());
    }
    if let Some(target) = schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix('#'))
        .and_then(|pointer| root.pointer(pointer))
    {
        walk(root, target, path.clone(), found, depth + 1);
    }
    for combinator in ["allOf", "anyOf", "oneOf"] {
        for branch in schema
            .get(combinator)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            walk(root, branch, path.clone(), found, depth + 1);
        }
    }
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, property) in properties {
            // JSON Pointer escaping (RFC 6901).
            let name = name.replace('~', "~0").replace('/', "~1");
            walk(root, property, format!("{path}/{name}"), found, depth + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use ld_plugin_api::Secret;

    use super::*;

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    #[allow(dead_code)]
    struct Store {
        region: String,
        secret_access_key: Option<Secret>,
    }

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    #[allow(dead_code)]
    enum Auth {
        Basic { username: String, password: Secret },
        ApiKey { api_key: Secret },
    }

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    #[allow(dead_code)]
    struct Config {
        url: String,
        /// Documented.
        password: Option<Secret>,
        store: Option<Store>,
        auth: Auth,
    }

    #[test]
    fn finds_secrets_through_options_refs_and_enums() {
        let schema = serde_json::to_value(schemars::schema_for!(Config)).unwrap();
        assert_eq!(
            secret_fields(&schema),
            vec![
                "/auth/ApiKey/api_key".to_string(),
                "/auth/Basic/password".to_string(),
                "/password".to_string(),
                "/store/secret_access_key".to_string(),
            ],
            "{schema}"
        );
    }

    #[test]
    fn a_schema_without_markers_has_no_secrets() {
        let schema = serde_json::json!({"type": "object", "properties": {"a": {"type": "string"}}});
        assert!(secret_fields(&schema).is_empty());
    }
}
