//! Reading the text that PostgreSQL's `test_decoding` output plugin writes for each row
//! change, e.g.
//!
//! ```text
//! table public.orders: INSERT: id[integer]:1 note[text]:'it''s' paid[boolean]:true
//! table public.orders: UPDATE: old-key: id[integer]:1 new-tuple: id[integer]:2 note[text]:null
//! table public.orders: DELETE: id[integer]:2
//! ```
//!
//! into a JSON change event.

use serde_json::{Map, Value};

/// One row change.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// `schema.table`, without quotes.
    pub table: String,
    /// `insert`, `update`, `delete` or `truncate`.
    pub operation: String,
    /// The new row (insert, update).
    pub new: Option<Map<String, Value>>,
    /// The old key (delete; update when the key changed or with `REPLICA IDENTITY
    /// FULL`, then the whole old row).
    pub old_key: Option<Map<String, Value>>,
}

impl Change {
    /// The change event as published: `{"table","operation","new","old_key","xid","lsn"}`.
    pub fn to_event(&self, xid: Option<i64>, lsn: &str) -> Value {
        serde_json::json!({
            "table": self.table,
            "operation": self.operation,
            "new": self.new,
            "old_key": self.old_key,
            "xid": xid,
            "lsn": lsn,
        })
    }
}

/// Splits off an identifier, maybe double-quoted, ending before `stop`. Returns the
/// identifier without quotes and the rest starting at `stop`.
fn identifier(text: &str, stop: char) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = text.char_indices().peekable();
    let mut quoted = false;
    while let Some((i, c)) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek().map(|(_, n)| *n) == Some('"') {
                    out.push('"');
                    chars.next();
                } else {
                    quoted = false;
                }
            } else {
                out.push(c);
            }
        } else if c == '"' {
            quoted = true;
        } else if c == stop {
            return Some((out, &text[i..]));
        } else {
            out.push(c);
        }
    }
    None
}

/// Parses a `schema.table` name as printed (parts quoted when needed).
fn table_name(text: &str) -> Option<(String, &str)> {
    // The name ends at the first ':' outside quotes.
    let (name, rest) = identifier(text, ':')?;
    Some((name, rest))
}

fn json_value(ty: &str, raw: &str, quoted: bool) -> Value {
    if !quoted && raw == "null" {
        return Value::Null;
    }
    let base = ty.split('(').next().unwrap_or(ty).trim();
    match base {
        "smallint" | "integer" | "bigint" | "oid" => raw
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(raw.to_string())),
        "real" | "double precision" | "numeric" => {
            if let Ok(n) = raw.parse::<i64>() {
                Value::from(n)
            } else {
                raw.parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .unwrap_or_else(|| Value::String(raw.to_string()))
            }
        }
        "boolean" => match raw {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(raw.to_string()),
        },
        "json" | "jsonb" => {
            serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()))
        }
        _ => Value::String(raw.to_string()),
    }
}

/// Parses `name[type]:value name[type]:value ...` until the end or a section keyword.
fn tuple(mut text: &str) -> Option<(Map<String, Value>, &str)> {
    let mut map = Map::new();
    loop {
        text = text.trim_start();
        if text.is_empty() || text.starts_with("new-tuple:") {
            return Some((map, text));
        }
        let (name, rest) = identifier(text, '[')?;
        let rest = &rest[1..];
        let close = rest.find("]:")?;
        let ty = &rest[..close];
        let rest = &rest[close + 2..];
        let (value, rest) = if let Some(body) = rest.strip_prefix('\'') {
            let mut value = String::new();
            let mut chars = body.char_indices().peekable();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                if c == '\'' {
                    if chars.peek().map(|(_, n)| *n) == Some('\'') {
                        value.push('\'');
                        chars.next();
                    } else {
                        end = Some(i + 1);
                        break;
                    }
                } else {
                    value.push(c);
                }
            }
            (json_value(ty, &value, true), &body[end?..])
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            let raw = &rest[..end];
            if raw == "unchanged-toast-datum" {
                // A large value the update did not touch: not in the WAL, so unknown.
                text = &rest[end..];
                continue;
            }
            (json_value(ty, raw, false), &rest[end..])
        };
        map.insert(name, value);
        text = rest;
    }
}

/// Parses one `data` line of `test_decoding` that describes a row change; `None` for
/// `BEGIN`/`COMMIT` lines and anything not understood.
pub fn parse_change(data: &str) -> Option<Change> {
    let rest = data.strip_prefix("table ")?;
    let (table, rest) = table_name(rest)?;
    let rest = rest.strip_prefix(": ")?;
    let colon = rest.find(':')?;
    let operation = rest[..colon].to_ascii_lowercase();
    let body = rest[colon + 1..].trim_start();
    let no_data = body.starts_with("(no-tuple-data)");
    let (new, old_key) = match operation.as_str() {
        "insert" if !no_data => (Some(tuple(body)?.0), None),
        "delete" if !no_data => (None, Some(tuple(body)?.0)),
        "update" => {
            if let Some(after_old) = body.strip_prefix("old-key:") {
                let (old, rest) = tuple(after_old)?;
                let new_part = rest.strip_prefix("new-tuple:")?;
                (Some(tuple(new_part)?.0), Some(old))
            } else if no_data {
                (None, None)
            } else {
                (Some(tuple(body)?.0), None)
            }
        }
        "truncate" | "insert" | "delete" => (None, None),
        _ => return None,
    };
    Some(Change {
        table,
        operation,
        new,
        old_key,
    })
}

/// Parses an LSN `16/B374D848` into its 64-bit value.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// Formats a 64-bit LSN as PostgreSQL does.
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn insert_with_types_and_quotes() {
        let c = parse_change(
            "table public.orders: INSERT: id[integer]:1 note[text]:'it''s a [x]:y' \
             paid[boolean]:true amount[numeric]:12.50 tags[text[]]:'{a,b}' doc[jsonb]:'{\"k\": 1}' \
             gone[text]:null",
        )
        .unwrap();
        assert_eq!(c.table, "public.orders");
        assert_eq!(c.operation, "insert");
        assert_eq!(
            Value::Object(c.new.unwrap()),
            json!({"id": 1, "note": "it's a [x]:y", "paid": true, "amount": 12.5,
                   "tags": "{a,b}", "doc": {"k": 1}, "gone": null})
        );
        assert!(c.old_key.is_none());
    }

    #[test]
    fn update_with_old_key_and_delete_and_quoted_names() {
        let c = parse_change(
            "table public.\"My Orders\": UPDATE: old-key: id[integer]:1 new-tuple: id[integer]:2 \"Note\"[character varying]:'b'",
        )
        .unwrap();
        assert_eq!(c.table, "public.My Orders");
        assert_eq!(Value::Object(c.old_key.unwrap()), json!({"id": 1}));
        assert_eq!(Value::Object(c.new.unwrap()), json!({"id": 2, "Note": "b"}));

        let c = parse_change("table public.orders: DELETE: id[integer]:2").unwrap();
        assert_eq!(c.operation, "delete");
        assert_eq!(Value::Object(c.old_key.unwrap()), json!({"id": 2}));
        assert!(c.new.is_none());

        let c = parse_change("table public.t: DELETE: (no-tuple-data)").unwrap();
        assert!(c.old_key.is_none());
        assert!(parse_change("BEGIN 740").is_none());
        assert!(parse_change("COMMIT 740").is_none());
    }

    #[test]
    fn unchanged_toast_values_are_left_out() {
        let c = parse_change(
            "table public.t: UPDATE: id[integer]:3 big[text]:unchanged-toast-datum n[integer]:4",
        )
        .unwrap();
        assert_eq!(Value::Object(c.new.unwrap()), json!({"id": 3, "n": 4}));
    }

    #[test]
    fn lsns() {
        assert_eq!(parse_lsn("16/B374D848"), Some(0x16_B374_D848));
        assert_eq!(format_lsn(0x16_B374_D848), "16/B374D848");
        assert_eq!(parse_lsn("x"), None);
    }
}
