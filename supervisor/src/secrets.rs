//! Secret config values: which fields of a `plugin_config` are secret, masking them in
//! every answer, and restoring the stored value when a client sends the mask back.
//!
//! The supervisor stores configs whole (the nodes need the values) and shows each secret
//! value as [`MASK`] everywhere except in the instance list fetched with the node
//! permission (see [`crate::auth`]). A field is secret when
//!
//! - a node reported it for the connector (`PluginInfo::secret_fields`, JSON Pointers
//!   inside `plugin_config` taken from the plugin's schema, where the plugin marks secret
//!   fields with `"writeOnly": true` and `"x-ld-secret": true`); a `*` token matches every
//!   array item or object member; the union over every node that ever reported the plugin
//!   counts, so a secret stays masked when its node is gone; or
//! - its name looks secret (the fallback, applied always, also before any node reported
//!   the plugin): a key at any depth whose name, lowercased without `_`/`-`/`.`, contains
//!   `password`, `passwd`, `pwd`, `passphrase`, `secret`, `token`, `apikey`, `accesskey`,
//!   `credential` or `privatekey`. Every non-empty string under such a key is masked
//!   (numbers and booleans are not secrets). Besides, in every string the password of a URL's
//!   `user:password@` userinfo and the value of a `password=`/`pwd=` pair (libpq and ADO
//!   connection strings) are masked, and only that part.
//!
//! A config sent back with the mask where a value is stored (the whole value, or the
//! password part of a URL or `password=` pair) keeps the stored value, so a client can
//! edit other fields of a config it listed. The mask where nothing is stored is refused.

use std::collections::BTreeSet;
use std::ops::Range;

use serde_json::Value;

use crate::problem::ApiError;

/// What a secret value shows as.
pub const MASK: &str = "******";

/// Fragments of key names that mark a value secret (compared lowercased, without `_-.`).
const SECRET_NAMES: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "accesskey",
    "credential",
    "privatekey",
];

/// Most secret-field pointers one plugin may report.
pub const MAX_SECRET_FIELDS: usize = 256;
/// Longest secret-field pointer accepted.
pub const MAX_POINTER_LEN: usize = 1024;

/// True when a key named `name` holds a secret by the name fallback.
pub fn is_secret_name(name: &str) -> bool {
    let compact: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    SECRET_NAMES.iter().any(|n| compact.contains(n))
}

/// Checks a reported secret-field pointer: a non-empty JSON Pointer (`/a/b`).
pub fn check_pointer(pointer: &str) -> Result<(), String> {
    if !pointer.starts_with('/') || pointer.len() > MAX_POINTER_LEN {
        return Err(format!(
            "`{pointer}` is not a JSON Pointer into plugin_config (it must start with `/` and \
             be at most {MAX_POINTER_LEN} characters, e.g. `/password`)"
        ));
    }
    Ok(())
}

fn tokens(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect()
}

fn for_each_match(value: &mut Value, tokens: &[String], f: &mut impl FnMut(&mut Value)) {
    let Some((first, rest)) = tokens.split_first() else {
        f(value);
        return;
    };
    match value {
        Value::Object(map) if first == "*" => {
            for v in map.values_mut() {
                for_each_match(v, rest, f);
            }
        }
        Value::Object(map) => {
            if let Some(v) = map.get_mut(first) {
                for_each_match(v, rest, f);
            }
        }
        Value::Array(items) if first == "*" => {
            for v in items {
                for_each_match(v, rest, f);
            }
        }
        Value::Array(items) => {
            if let Some(v) = first.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                for_each_match(v, rest, f);
            }
        }
        _ => {}
    }
}

/// Masks the secrets of an instance config (`values`, with its `plugin_config`) in place.
/// `reported` are the secret-field pointers nodes reported for the connector.
pub fn mask_config(values: &mut Value, reported: &BTreeSet<String>) {
    let Some(plugin_config) = values.get_mut("plugin_config") else {
        return;
    };
    for pointer in reported {
        for_each_match(plugin_config, &tokens(pointer), &mut |v| {
            if !v.is_null() && v.as_str() != Some("") {
                *v = Value::String(MASK.to_string());
            }
        });
    }
    mask_by_name(plugin_config, false);
}

fn mask_by_name(value: &mut Value, under_secret_name: bool) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                mask_by_name(v, under_secret_name || is_secret_name(key));
            }
        }
        Value::Array(items) => {
            for v in items {
                mask_by_name(v, under_secret_name);
            }
        }
        Value::String(s) if under_secret_name && !s.is_empty() => *s = MASK.to_string(),
        Value::String(_) if under_secret_name => {}
        Value::String(s) => *s = mask_embedded(s),
        _ => {}
    }
}

/// `text` with every embedded secret (URL userinfo password, `password=` value) masked.
pub fn mask_embedded(text: &str) -> String {
    let ranges = embedded_secrets(text);
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for range in ranges {
        out.push_str(&text[at..range.start]);
        out.push_str(MASK);
        at = range.end;
    }
    out.push_str(&text[at..]);
    out
}

/// The byte ranges of the secrets embedded in a string, in order: the password of each
/// URL's `user:password@`, and the value of each `password=`/`pwd=` pair. Empty secrets
/// are not listed.
pub fn embedded_secrets(text: &str) -> Vec<Range<usize>> {
    let mut ranges = url_passwords(text);
    ranges.extend(pair_passwords(text));
    ranges.sort_by_key(|r| r.start);
    // A `password=` inside a URL's password is part of that password.
    let mut kept: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        if kept.last().is_none_or(|last| r.start >= last.end) {
            kept.push(r);
        }
    }
    kept
}

fn url_passwords(text: &str) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let mut from = 0;
    while let Some(found) = text[from..].find("://") {
        let start = from + found + 3;
        let end = text[start..]
            .find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace())
            .map_or(text.len(), |i| start + i);
        let authority = &text[start..end];
        if let Some(at) = authority.rfind('@') {
            if let Some(colon) = authority[..at].find(':') {
                if colon + 1 < at {
                    ranges.push(start + colon + 1..start + at);
                }
            }
        }
        from = end.max(start);
    }
    ranges
}

fn pair_passwords(text: &str) -> Vec<Range<usize>> {
    let lower = text.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let mut ranges = Vec::new();
    for name in ["password", "pwd"] {
        let mut from = 0;
        while let Some(found) = lower[from..].find(name) {
            let start = from + found;
            from = start + name.len();
            let boundary = start == 0
                || matches!(
                    bytes[start - 1],
                    b' ' | b'\t' | b'\n' | b';' | b'&' | b'?' | b','
                );
            let mut i = start + name.len();
            while i < bytes.len() && bytes[i] == b' ' {
                i += 1;
            }
            if !boundary || i >= bytes.len() || bytes[i] != b'=' {
                continue;
            }
            i += 1;
            while i < bytes.len() && bytes[i] == b' ' {
                i += 1;
            }
            let (value_start, value_end) = if bytes.get(i) == Some(&b'\'') {
                let mut j = i + 1;
                while j < bytes.len() && !(bytes[j] == b'\'' && bytes[j - 1] != b'\\') {
                    j += 1;
                }
                (i + 1, j)
            } else {
                let j = text[i..]
                    .find(|c: char| c.is_whitespace() || matches!(c, ';' | '&' | ','))
                    .map_or(text.len(), |k| i + k);
                (i, j)
            };
            if value_end > value_start {
                ranges.push(value_start..value_end);
            }
            from = value_end.max(from);
        }
    }
    ranges
}

/// Puts the stored values back where `incoming` (a config about to be stored) carries the
/// mask: a whole value equal to [`MASK`] takes the stored value at the same place, an
/// embedded secret equal to the mask takes the stored embedded secret. `field` prefixes the
/// field named in the error. Refused (400) when nothing is stored there.
pub fn restore(field: &str, incoming: &mut Value, stored: Option<&Value>) -> Result<(), ApiError> {
    let stored = stored.and_then(|s| s.get("plugin_config"));
    let Some(plugin_config) = incoming.get_mut("plugin_config") else {
        return Ok(());
    };
    let mut path = Vec::new();
    restore_at(plugin_config, stored, &mut path).map_err(|path| {
        let name = format!("{field}.plugin_config.{}", path.join("."));
        ApiError::BadRequest {
            code: "masked_secret",
            reason: format!(
                "{name} carries the mask `{MASK}` but no value is stored there to keep; \
                 send the real value"
            ),
            field: Some(name),
        }
    })
}

fn restore_at(
    value: &mut Value,
    stored: Option<&Value>,
    path: &mut Vec<String>,
) -> Result<(), Vec<String>> {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                path.push(key.clone());
                restore_at(v, stored.and_then(|s| s.get(key)), path)?;
                path.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                path.push(i.to_string());
                restore_at(v, stored.and_then(|s| s.get(i)), path)?;
                path.pop();
            }
        }
        Value::String(s) if s == MASK => match stored {
            Some(kept) if !kept.is_null() => *value = kept.clone(),
            _ => return Err(path.clone()),
        },
        Value::String(s) => {
            let masked: Vec<Range<usize>> = embedded_secrets(s)
                .into_iter()
                .filter(|r| &s[r.clone()] == MASK)
                .collect();
            if masked.is_empty() {
                return Ok(());
            }
            let kept_text = stored.and_then(Value::as_str).unwrap_or("");
            let kept: Vec<&str> = embedded_secrets(kept_text)
                .into_iter()
                .map(|r| &kept_text[r])
                .collect();
            let all: Vec<Range<usize>> = embedded_secrets(s);
            let mut out = String::with_capacity(s.len());
            let mut at = 0;
            for (i, range) in all.iter().enumerate() {
                if &s[range.clone()] != MASK {
                    continue;
                }
                let Some(secret) = kept.get(i) else {
                    return Err(path.clone());
                };
                out.push_str(&s[at..range.start]);
                out.push_str(secret);
                at = range.end;
            }
            out.push_str(&s[at..]);
            *s = out;
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(pointers: &[&str]) -> BTreeSet<String> {
        pointers.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn names() {
        for secret in [
            "password",
            "db_password",
            "Passwd",
            "client_secret",
            "secret_access_key",
            "access-key",
            "api_key",
            "apiKey",
            "auth_token",
            "credentials",
            "private_key",
        ] {
            assert!(is_secret_name(secret), "{secret}");
        }
        for plain in ["host", "user", "target_table", "batch_size", "url"] {
            assert!(!is_secret_name(plain), "{plain}");
        }
    }

    #[test]
    fn embedded() {
        assert_eq!(
            mask_embedded("postgres://bob:SuperSecret123@host:5432/db?sslmode=require"),
            "postgres://bob:******@host:5432/db?sslmode=require"
        );
        assert_eq!(
            mask_embedded("postgres://bob@host/db"),
            "postgres://bob@host/db"
        );
        assert_eq!(mask_embedded("http://host:9200/x"), "http://host:9200/x");
        assert_eq!(
            mask_embedded("host=db user=bob password=Hunter2 dbname=x"),
            "host=db user=bob password=****** dbname=x"
        );
        assert_eq!(
            mask_embedded("host=db password='a b c' x=1"),
            "host=db password='******' x=1"
        );
        assert_eq!(
            mask_embedded("Server=x;Pwd=abc;Db=y"),
            "Server=x;Pwd=******;Db=y"
        );
        assert_eq!(
            mask_embedded("http://a:p1@h1/x http://c:p2@h2"),
            "http://a:******@h1/x http://c:******@h2"
        );
        assert_eq!(mask_embedded("mypassword=1"), "mypassword=1");
    }

    #[test]
    fn masks_reported_and_named_fields() {
        let mut config = json!({
            "enabled": true,
            "plugin_config": {
                "connection_string": "postgres://bob:SuperSecret123@host/db",
                "target_table": "orders",
                "store": {"secret_access_key": "AKIAXX", "region": "eu", "sig": "abc"},
                "brokers": [{"auth": "k1"}, {"auth": "k2"}],
                "max_tokens": 10,
                "token": "",
            }
        });
        mask_config(
            &mut config,
            &set(&["/store/sig", "/brokers/*/auth", "/absent"]),
        );
        assert_eq!(
            config,
            json!({
                "enabled": true,
                "plugin_config": {
                    "connection_string": "postgres://bob:******@host/db",
                    "target_table": "orders",
                    "store": {"secret_access_key": MASK, "region": "eu", "sig": MASK},
                    "brokers": [{"auth": MASK}, {"auth": MASK}],
                    "max_tokens": 10,
                    "token": "",
                }
            })
        );
    }

    #[test]
    fn restore_keeps_stored_values() {
        let stored = json!({"plugin_config": {
            "password": "Hunter2",
            "url": "postgres://bob:SuperSecret123@host/db",
            "nested": {"token": "t0k"}
        }});
        let mut incoming = json!({"plugin_config": {
            "password": MASK,
            "url": "postgres://bob:******@otherhost/db",
            "nested": {"token": MASK},
            "table": "x"
        }});
        restore("config", &mut incoming, Some(&stored)).unwrap();
        assert_eq!(
            incoming,
            json!({"plugin_config": {
                "password": "Hunter2",
                "url": "postgres://bob:SuperSecret123@otherhost/db",
                "nested": {"token": "t0k"},
                "table": "x"
            }})
        );
        let mut fresh = json!({"plugin_config": {"a": {"password": MASK}}});
        match restore("config", &mut fresh, None) {
            Err(ApiError::BadRequest { field, code, .. }) => {
                assert_eq!(code, "masked_secret");
                assert_eq!(field.as_deref(), Some("config.plugin_config.a.password"));
            }
            other => panic!("{other:?}"),
        }
        let mut url_only = json!({"plugin_config": {"url": "postgres://bob:******@h/db"}});
        assert!(restore("config", &mut url_only, Some(&json!({"plugin_config": {}}))).is_err());
    }
}
