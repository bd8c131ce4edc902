//! Keeping secret values out of everything the daemon writes: logs, status reasons and
//! its local API.
//!
//! When an instance starts, the values of its secret fields (the ones its plugin marks
//! in its schema) and of its `${env:..}`/`${file:..}` references are registered here.
//! Every status reason passes through [`redact`], and the daemon's log writer
//! ([`RedactingStderr`]) replaces them in every line, so even a plugin that puts its
//! password into an error message or a log line does not leak it.

use std::{
    io::Write,
    sync::{OnceLock, RwLock},
};

use serde_json::Value;

use crate::config::secret_refs;

/// What a secret is replaced with.
pub const MASK: &str = "******";

/// Values shorter than this are not redacted: masking every `a` or `1` in a log line
/// would hide more than it protects.
const MIN_LEN: usize = 4;

fn registry() -> &'static RwLock<Vec<String>> {
    static SECRETS: OnceLock<RwLock<Vec<String>>> = OnceLock::new();
    SECRETS.get_or_init(Default::default)
}

/// Registers the secret values of one instance's `plugin_config`: the strings at its
/// secret fields (JSON Pointers), the passwords inside connection strings there, and the
/// resolved value of every reference.
pub fn register_config(plugin_config: &Value, secret_fields: &[String]) {
    let mut values = Vec::new();
    for pointer in secret_fields {
        if let Some(Value::String(s)) = plugin_config.pointer(pointer) {
            // A reference is not the secret: its resolved value is (an unresolvable one
            // has none, and its reason must be able to name it).
            if let Ok(Value::String(resolved)) = secret_refs::resolve(&Value::String(s.clone())) {
                values.extend(embedded_passwords(&resolved));
                values.push(resolved);
            }
        }
    }
    collect_reference_values(plugin_config, &mut values);
    register(values);
}

/// Registers secret values.
pub fn register(values: impl IntoIterator<Item = String>) {
    let mut secrets = registry().write().expect("secret registry poisoned");
    for value in values {
        if value.len() >= MIN_LEN && !secrets.contains(&value) {
            secrets.push(value);
        }
    }
    // Longest first, so a connection string is masked whole before its password.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// `text` with every registered secret replaced by [`MASK`].
pub fn redact(text: &str) -> String {
    let secrets = registry().read().expect("secret registry poisoned");
    let mut out = text.to_string();
    for secret in secrets.iter() {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), MASK);
        }
    }
    out
}

/// The password parts of a connection string: `scheme://user:PASSWORD@host` and libpq's
/// `password=PASSWORD`.
fn embedded_passwords(s: &str) -> Vec<String> {
    let mut found = Vec::new();
    if let Some((_, rest)) = s.split_once("://") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            if let Some((_, password)) = userinfo.split_once(':') {
                found.push(password.to_string());
            }
        }
    }
    for part in s.split_whitespace() {
        if let Some(password) = part.strip_prefix("password=") {
            found.push(password.trim_matches('\'').to_string());
        }
    }
    found
}

fn collect_reference_values(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => {
            // Each reference on its own: its value is the secret, not the text around it.
            for reference in secret_refs::references(s) {
                let reference = Value::String(reference.to_string());
                if let Ok(Value::String(resolved)) = secret_refs::resolve(&reference) {
                    out.push(resolved);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_reference_values(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_reference_values(v, out)),
        _ => {}
    }
}

/// The daemon's log writer: standard error, with registered secrets masked.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedactingStderr;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactingStderr {
    type Writer = RedactingLine;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingLine(Vec::new())
    }
}

/// One formatted log event, written to standard error (redacted) when dropped.
pub struct RedactingLine(Vec<u8>);

impl Write for RedactingLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for RedactingLine {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        let _ = std::io::stderr().write_all(redact(&text).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn secret_fields_their_passwords_and_references_are_masked() {
        std::env::set_var("LD_TEST_REDACT_TOKEN", "tok-77aa1");
        register_config(
            &json!({
                "connection_string": "postgres://bob:Pa55-redact-1@db:5432/x",
                "dsn": "host=db password=Pa55-redact-2 user=bob",
                "token": "prefix-${env:LD_TEST_REDACT_TOKEN}-suffix",
                "plain": "visible-value",
            }),
            &["/connection_string".into(), "/dsn".into()],
        );
        let text = "failed: password authentication failed for bob (Pa55-redact-1); \
                    dsn host=db password=Pa55-redact-2 user=bob; token tok-77aa1; visible-value";
        let out = redact(text);
        assert!(!out.contains("Pa55-redact-1"), "{out}");
        assert!(!out.contains("Pa55-redact-2"), "{out}");
        assert!(!out.contains("tok-77aa1"), "{out}");
        assert!(out.contains("visible-value"), "{out}");
        assert!(out.contains(MASK), "{out}");
    }

    #[test]
    fn short_values_are_not_masked() {
        register(["ab".to_string()]);
        assert_eq!(redact("a cab"), "a cab");
    }
}
