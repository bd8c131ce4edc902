//! Secret references in `plugin_config`: `${env:NAME}` and `${file:/path}` inside any
//! string, resolved on the node when an instance starts, so the value itself never
//! travels through the control plane and is never sent back (docs/architecture.md,
//! "Instance config"). A reference may be the whole string or a part of it
//! (`postgres://app:${env:PG_PASSWORD}@db/orders`). A file's trailing line break is
//! dropped, so a file written by `echo` holds just the value.

use serde_json::Value;

/// A reference that could not be resolved. Names the field and the reference, never a
/// value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plugin_config{field}: cannot resolve `{reference}`: {why}")]
pub struct SecretRefError {
    /// Where in `plugin_config` (`.password`, `.nodes[1]`).
    pub field: String,
    /// The reference as written, e.g. `${env:PG_PASSWORD}`.
    pub reference: String,
    /// Why, e.g. "the environment variable is not set".
    pub why: String,
}

/// Returns `config` with every reference resolved.
pub fn resolve(config: &Value) -> Result<Value, SecretRefError> {
    let mut resolved = config.clone();
    resolve_in(&mut resolved, &mut String::new())?;
    Ok(resolved)
}

/// Whether `config` holds any reference (so a caller can skip the copy).
pub fn has_references(config: &Value) -> bool {
    match config {
        Value::String(s) => s.contains("${env:") || s.contains("${file:"),
        Value::Array(items) => items.iter().any(has_references),
        Value::Object(map) => map.values().any(has_references),
        _ => false,
    }
}

fn resolve_in(value: &mut Value, path: &mut String) -> Result<(), SecretRefError> {
    match value {
        Value::String(s) => {
            if let Some(replaced) = resolve_string(s, path)? {
                *s = replaced;
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                resolve_in(item, path)?;
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                let len = path.len();
                path.push('.');
                path.push_str(key);
                resolve_in(item, path)?;
                path.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

/// The string with its references replaced, or `None` when it has none.
fn resolve_string(s: &str, field: &str) -> Result<Option<String>, SecretRefError> {
    if !s.contains("${env:") && !s.contains("${file:") {
        return Ok(None);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = find_reference(rest) {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let Some(end) = tail.find('}') else {
            return Err(SecretRefError {
                field: field.to_string(),
                reference: tail.chars().take(64).collect(),
                why: "the reference has no closing `}`".into(),
            });
        };
        let reference = &tail[..=end];
        out.push_str(&lookup(reference).map_err(|why| SecretRefError {
            field: field.to_string(),
            reference: reference.to_string(),
            why,
        })?);
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    Ok(Some(out))
}

/// The references written in `s`, in order (`${env:A}`, `${file:/b}`).
pub fn references(s: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = s;
    while let Some(start) = find_reference(rest) {
        let tail = &rest[start..];
        let Some(end) = tail.find('}') else { break };
        found.push(&tail[..=end]);
        rest = &tail[end + 1..];
    }
    found
}

fn find_reference(s: &str) -> Option<usize> {
    match (s.find("${env:"), s.find("${file:")) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn lookup(reference: &str) -> Result<String, String> {
    let inner = &reference[2..reference.len() - 1];
    if let Some(name) = inner.strip_prefix("env:") {
        if name.is_empty() {
            return Err("no variable name".into());
        }
        return std::env::var(name).map_err(|e| match e {
            std::env::VarError::NotPresent => "the environment variable is not set".into(),
            std::env::VarError::NotUnicode(_) => "the environment variable is not UTF-8".into(),
        });
    }
    let path = inner.strip_prefix("file:").expect("env: or file:");
    if !path.starts_with('/') {
        return Err("the path must be absolute".into());
    }
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "the file does not exist".to_string(),
        std::io::ErrorKind::PermissionDenied => "the file is not readable by the daemon".into(),
        std::io::ErrorKind::InvalidData => "the file is not UTF-8 text".into(),
        _ => format!("the file cannot be read ({})", e.kind()),
    })?;
    Ok(text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text)
        .to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn env_and_file_references_are_resolved_anywhere_in_a_string() {
        std::env::set_var("LD_TEST_SECRET_REF_A", "s3cr3t");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "tok-en\n").unwrap();
        let config = json!({
            "password": "${env:LD_TEST_SECRET_REF_A}",
            "url": "postgres://app:${env:LD_TEST_SECRET_REF_A}@db/x",
            "nested": {"token": format!("${{file:{}}}", file.display())},
            "list": ["plain", "${env:LD_TEST_SECRET_REF_A}"],
            "other": 5,
        });
        assert!(has_references(&config));
        let resolved = resolve(&config).unwrap();
        assert_eq!(
            resolved,
            json!({
                "password": "s3cr3t",
                "url": "postgres://app:s3cr3t@db/x",
                "nested": {"token": "tok-en"},
                "list": ["plain", "s3cr3t"],
                "other": 5,
            })
        );
    }

    #[test]
    fn a_missing_reference_names_the_field_and_reference_not_a_value() {
        let err = resolve(&json!({"a": {"pw": "x${env:LD_TEST_SECRET_REF_MISSING}"}})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "plugin_config.a.pw: cannot resolve `${env:LD_TEST_SECRET_REF_MISSING}`: \
             the environment variable is not set"
        );
        let err = resolve(&json!({"k": ["${file:/nonexistent/ld-secret}"]})).unwrap_err();
        assert_eq!(err.field, ".k[0]");
        assert!(err.why.contains("does not exist"), "{err}");
        let err = resolve(&json!({"k": "${file:relative}"})).unwrap_err();
        assert!(err.why.contains("absolute"), "{err}");
        let err = resolve(&json!({"k": "${env:OPEN"})).unwrap_err();
        assert!(err.why.contains("closing"), "{err}");
    }

    #[test]
    fn strings_without_references_are_untouched() {
        let config = json!({"a": "$HOME and ${other} stay", "b": [1, true, null]});
        assert!(!has_references(&config));
        assert_eq!(resolve(&config).unwrap(), config);
    }
}
