//! Index names with placeholders, filled per message, and payload field paths.
//!
//! Syntax of `index`: literal text with placeholders in braces:
//!
//! - `{yyyy.MM.dd}`: the message timestamp (UTC) with the tokens `yyyy` (year), `yy`
//!   (two-digit year), `MM`, `dd`, `HH`, `mm`, `ss`; any other character that is not a
//!   letter is kept (`{yyyy-MM}`, `{yyyy.MM.dd-HH}`);
//! - `{field:NAME}`: the value of a payload field (a string or a number; `NAME` may be a
//!   dotted path into nested objects, `customer.region`);
//! - `{stream}`, `{topic}`, `{partition}`: where the message comes from.
//!
//! Filled-in values are lowercased (index names must be lowercase); a value that makes an
//! invalid index name is a document error.

use std::fmt::Write as _;

use serde_json::Value;

/// A payload field, possibly nested (`a.b.c`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    text: String,
    parts: Vec<String>,
}

impl FieldPath {
    /// Parses `name` or `a.b.c`.
    pub fn parse(text: &str) -> Result<FieldPath, String> {
        let text = text.trim();
        if text.is_empty() || text.split('.').any(str::is_empty) {
            return Err(format!(
                "`{text}` is not a field name (expected `name` or a dotted path `a.b`)"
            ));
        }
        Ok(FieldPath {
            text: text.to_string(),
            parts: text.split('.').map(str::to_string).collect(),
        })
    }

    /// The path as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The field's value in `doc`: a top-level key spelled exactly like the path first
    /// (`"a.b"`), else the nested path.
    pub fn lookup<'v>(&self, doc: &'v Value) -> Option<&'v Value> {
        if let Some(v) = doc.get(&self.text) {
            return Some(v);
        }
        let mut current = doc;
        for part in &self.parts {
            current = current.get(part)?;
        }
        Some(current)
    }

    /// The field's value as text (a string, a number or a boolean).
    pub fn text_in(&self, doc: Option<&Value>) -> Result<String, String> {
        match doc.and_then(|d| self.lookup(d)) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            Some(Value::Bool(b)) => Ok(b.to_string()),
            Some(Value::Null) | None => Err(format!("the payload has no field `{}`", self.text)),
            Some(_) => Err(format!(
                "payload field `{}` is not a string or a number",
                self.text
            )),
        }
    }
}

/// One piece of a date placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DatePiece {
    Year4,
    Year2,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    Char(char),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Date(Vec<DatePiece>),
    Field(FieldPath),
    Stream,
    Topic,
    Partition,
}

/// Where a message's document goes, with what a pattern may need.
pub struct Origin<'a> {
    /// Stream name.
    pub stream: &'a str,
    /// Topic name.
    pub topic: &'a str,
    /// Partition.
    pub partition: u32,
    /// Message timestamp, microseconds since the Unix epoch.
    pub timestamp_micros: u64,
}

/// The parsed `index` setting.
#[derive(Debug, Clone)]
pub struct IndexPattern {
    text: String,
    parts: Vec<Part>,
}

impl IndexPattern {
    /// Parses and checks a name or a pattern.
    pub fn parse(text: &str) -> Result<IndexPattern, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            match rest.find('{') {
                None => {
                    parts.push(Part::Literal(rest.to_string()));
                    break;
                }
                Some(open) => {
                    if open > 0 {
                        parts.push(Part::Literal(rest[..open].to_string()));
                    }
                    let Some(close) = rest[open..].find('}') else {
                        return Err(format!("`{text}`: a `{{` is not closed"));
                    };
                    let inner = &rest[open + 1..open + close];
                    parts.push(parse_placeholder(inner).map_err(|r| format!("`{text}`: {r}"))?);
                    rest = &rest[open + close + 1..];
                }
            }
        }
        for part in &parts {
            if let Part::Literal(l) = part {
                if l.contains('}') {
                    return Err(format!("`{text}`: a `}}` without its `{{`"));
                }
                if let Some(bad) = l.chars().find(|c| !index_char_ok(*c)) {
                    return Err(format!(
                        "`{text}` is not a valid index name: `{bad}` is not allowed (lowercase letters, digits, `-`, `_`, `.`, `+`)"
                    ));
                }
            }
        }
        match parts.first() {
            None => return Err("is empty (expected an index name such as \"orders\")".into()),
            Some(Part::Literal(l)) if l.starts_with(['-', '_', '+']) => {
                return Err(format!(
                    "`{text}` is not a valid index name: it may not start with `-`, `_` or `+`"
                ))
            }
            _ => {}
        }
        if let [Part::Literal(l)] = parts.as_slice() {
            check_index_name(l).map_err(|r| format!("`{text}` {r}"))?;
        }
        Ok(IndexPattern {
            text: text.to_string(),
            parts,
        })
    }

    /// The setting as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The index name when it has no placeholder.
    pub fn fixed(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [Part::Literal(l)] => Some(l),
            _ => None,
        }
    }

    /// Whether a payload field is read.
    pub fn reads_fields(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Field(_)))
    }

    /// The index name for one message; `doc` is the parsed payload, when it was parsed.
    pub fn render(&self, origin: &Origin<'_>, doc: Option<&Value>) -> Result<String, String> {
        if let Some(fixed) = self.fixed() {
            return Ok(fixed.to_string());
        }
        let mut out = String::with_capacity(self.text.len() + 8);
        for part in &self.parts {
            match part {
                Part::Literal(l) => out.push_str(l),
                Part::Date(pieces) => format_date(&mut out, pieces, origin.timestamp_micros),
                Part::Field(path) => {
                    let value = path.text_in(doc).map_err(|r| format!("index: {r}"))?;
                    out.push_str(&value.to_lowercase());
                }
                Part::Stream => out.push_str(&origin.stream.to_lowercase()),
                Part::Topic => out.push_str(&origin.topic.to_lowercase()),
                Part::Partition => {
                    let _ = write!(out, "{}", origin.partition);
                }
            }
        }
        check_index_name(&out).map_err(|r| format!("index name `{out}` {r}"))?;
        Ok(out)
    }
}

fn parse_placeholder(inner: &str) -> Result<Part, String> {
    match inner {
        "stream" => return Ok(Part::Stream),
        "topic" => return Ok(Part::Topic),
        "partition" => return Ok(Part::Partition),
        _ => {}
    }
    if let Some(name) = inner.strip_prefix("field:") {
        return FieldPath::parse(name).map(Part::Field);
    }
    let mut pieces = Vec::new();
    let chars: Vec<char> = inner.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let run = chars[i..].iter().take_while(|&&x| x == c).count();
        let piece = match (c, run) {
            ('y', 4) => DatePiece::Year4,
            ('y', 2) => DatePiece::Year2,
            ('M', 2) => DatePiece::Month,
            ('d', 2) => DatePiece::Day,
            ('H', 2) => DatePiece::Hour,
            ('m', 2) => DatePiece::Minute,
            ('s', 2) => DatePiece::Second,
            (c, _) if c.is_alphanumeric() => {
                return Err(format!(
                    "`{{{inner}}}` is not a placeholder: use a date of yyyy, yy, MM, dd, HH, mm, ss (e.g. {{yyyy.MM.dd}}), {{field:NAME}}, {{stream}}, {{topic}} or {{partition}}"
                ))
            }
            (c, _) => {
                if !index_char_ok(c) {
                    return Err(format!("`{c}` is not allowed in an index name"));
                }
                pieces.push(DatePiece::Char(c));
                i += 1;
                continue;
            }
        };
        pieces.push(piece);
        i += run;
    }
    if pieces.is_empty() {
        return Err("`{}` is empty".to_string());
    }
    Ok(Part::Date(pieces))
}

/// Characters allowed in the literal parts of an index name.
fn index_char_ok(c: char) -> bool {
    c.is_ascii_lowercase()
        || c.is_ascii_digit()
        || matches!(c, '-' | '_' | '.' | '+')
        || (!c.is_ascii() && !c.is_uppercase())
}

/// The server's rules for an index name.
pub fn check_index_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".to_string());
    }
    if name == "." || name == ".." {
        return Err("is not allowed".to_string());
    }
    if name.starts_with(['-', '_', '+']) {
        return Err("may not start with `-`, `_` or `+`".to_string());
    }
    if name.len() > 255 {
        return Err("is longer than 255 bytes".to_string());
    }
    if let Some(bad) = name.chars().find(|c| {
        matches!(
            c,
            '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ' ' | ',' | '#' | ':'
        ) || c.is_uppercase()
            || c.is_control()
    }) {
        return Err(format!("may not contain `{bad}`"));
    }
    Ok(())
}

fn format_date(out: &mut String, pieces: &[DatePiece], micros: u64) {
    let secs = micros / 1_000_000;
    let days = (secs / 86_400) as i64;
    let in_day = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    for piece in pieces {
        let _ = match piece {
            DatePiece::Year4 => write!(out, "{y:04}"),
            DatePiece::Year2 => write!(out, "{:02}", y.rem_euclid(100)),
            DatePiece::Month => write!(out, "{m:02}"),
            DatePiece::Day => write!(out, "{d:02}"),
            DatePiece::Hour => write!(out, "{:02}", in_day / 3600),
            DatePiece::Minute => write!(out, "{:02}", in_day % 3600 / 60),
            DatePiece::Second => write!(out, "{:02}", in_day % 60),
            DatePiece::Char(c) => {
                out.push(*c);
                Ok(())
            }
        };
    }
}

/// (year, month, day) of a day number since 1970-01-01 (proleptic Gregorian; H. Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn origin(ts: u64) -> Origin<'static> {
        Origin {
            stream: "Shop",
            topic: "orders",
            partition: 3,
            timestamp_micros: ts,
        }
    }

    // 2024-02-29T23:59:58.5Z
    const LEAP: u64 = 1_709_251_198_500_000;

    #[test]
    fn fixed_names() {
        let p = IndexPattern::parse("orders-v1").unwrap();
        assert_eq!(p.fixed(), Some("orders-v1"));
        assert_eq!(p.render(&origin(0), None).unwrap(), "orders-v1");
        for bad in [
            "Orders", "a b", "a/b", "_x", "-x", "a,b", "a:b", "", "a}b", "a{yyyy",
        ] {
            assert!(IndexPattern::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn dates_from_the_message_timestamp() {
        let p = IndexPattern::parse("logs-{yyyy.MM.dd}").unwrap();
        assert_eq!(p.fixed(), None);
        assert!(!p.reads_fields());
        assert_eq!(p.render(&origin(LEAP), None).unwrap(), "logs-2024.02.29");
        assert_eq!(p.render(&origin(0), None).unwrap(), "logs-1970.01.01");
        let p = IndexPattern::parse("m-{yy}{MM}-{HH.mm.ss}").unwrap();
        assert_eq!(p.render(&origin(LEAP), None).unwrap(), "m-2402-23.59.58");
        // 2000-03-01 and 2100-03-01 (century rules).
        let p = IndexPattern::parse("{yyyy-MM-dd}").unwrap();
        assert_eq!(
            p.render(&origin(951_868_800_000_000), None).unwrap(),
            "2000-03-01"
        );
        assert_eq!(
            p.render(&origin(4_107_542_400_000_000), None).unwrap(),
            "2100-03-01"
        );
        for bad in [
            "logs-{YYYY}",
            "logs-{yyy}",
            "logs-{dd MM}",
            "logs-{}",
            "x-{field:}",
        ] {
            assert!(IndexPattern::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn fields_and_origin() {
        let p = IndexPattern::parse("t-{field:tenant}-{topic}-{partition}").unwrap();
        assert!(p.reads_fields());
        let doc = json!({"tenant": "ACME"});
        assert_eq!(p.render(&origin(0), Some(&doc)).unwrap(), "t-acme-orders-3");
        let p = IndexPattern::parse("{stream}-{field:customer.region}").unwrap();
        let doc = json!({"customer": {"region": 7}});
        assert_eq!(p.render(&origin(0), Some(&doc)).unwrap(), "shop-7");
        let err = p.render(&origin(0), Some(&json!({"x": 1}))).unwrap_err();
        assert!(err.contains("customer.region"), "{err}");
        let err = p
            .render(&origin(0), Some(&json!({"customer": {"region": "a b"}})))
            .unwrap_err();
        assert!(err.contains("may not contain"), "{err}");
        let err = p
            .render(&origin(0), Some(&json!({"customer": {"region": [1]}})))
            .unwrap_err();
        assert!(err.contains("not a string"), "{err}");
    }

    #[test]
    fn field_paths() {
        let doc = json!({"a.b": 1, "a": {"b": 2, "c": {"d": "x"}}});
        assert_eq!(
            FieldPath::parse("a.b").unwrap().lookup(&doc),
            Some(&json!(1))
        );
        assert_eq!(
            FieldPath::parse("a.c.d")
                .unwrap()
                .text_in(Some(&doc))
                .unwrap(),
            "x"
        );
        assert!(FieldPath::parse("a..b").is_err());
        assert!(FieldPath::parse("").is_err());
    }
}
