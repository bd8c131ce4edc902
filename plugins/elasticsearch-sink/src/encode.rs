//! A batch of messages as `_bulk` NDJSON: one action line and one source line per
//! document, all in one buffer, each document's bytes remembered so any subset can be
//! sent (split to fit the bulk limits, or retried).
//!
//! Payloads:
//! - a JSON object is the document, byte for byte (line breaks between tokens, which
//!   NDJSON forbids, become spaces);
//! - anything else, with `non_object_payloads = wrap`: valid JSON (an array, a string,
//!   a number) becomes `{"payload": <value>}`, other UTF-8 text `{"payload": "<text>"}`,
//!   other bytes `{"payload_base64": "<base64>"}`; with `reject` it is a document error.

use std::{collections::HashMap, fmt::Write as _, ops::Range};

use ld_plugin_api::{Message, SinkBatch};
use serde_json::Value;

use crate::{
    config::{base64, DocumentId, NonObjectPayloads, Settings},
    pattern::Origin,
};

/// One encoded document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doc {
    /// Its message's position in the batch.
    pub msg: usize,
    /// Its action and source lines in [`Encoded::buf`].
    pub range: Range<usize>,
    /// Its index, a position in [`Encoded::indices`].
    pub index: u32,
    /// Its `_id`, kept when two messages of a batch may share one (so a retried
    /// document is followed again by the later ones with its id).
    pub id: Option<String>,
}

/// A batch as NDJSON, reused from batch to batch.
#[derive(Debug, Default)]
pub struct Encoded {
    /// Every document's two lines, back to back.
    pub buf: Vec<u8>,
    /// The documents, in message order.
    pub docs: Vec<Doc>,
    /// The distinct index names of the batch.
    pub indices: Vec<String>,
    /// Messages that cannot become a document: (position in the batch, why).
    pub rejected: Vec<(usize, String)>,
    index_numbers: HashMap<String, u32>,
}

impl Encoded {
    /// Encodes `batch` (replacing what was there).
    pub fn encode(&mut self, settings: &Settings, batch: &SinkBatch<'_>) {
        self.buf.clear();
        self.docs.clear();
        self.indices.clear();
        self.rejected.clear();
        self.index_numbers.clear();
        let keep_ids = matches!(
            settings.document_id,
            DocumentId::MessageId | DocumentId::Field(_)
        );
        let reads_fields = settings.reads_fields();
        for (pos, msg) in batch.messages().iter().enumerate() {
            let start = self.buf.len();
            match encode_one(&mut self.buf, settings, batch, msg, reads_fields) {
                Ok((index, id)) => {
                    let number = match self.index_numbers.get(&index) {
                        Some(n) => *n,
                        None => {
                            let n = self.indices.len() as u32;
                            self.indices.push(index.clone());
                            self.index_numbers.insert(index, n);
                            n
                        }
                    };
                    self.docs.push(Doc {
                        msg: pos,
                        range: start..self.buf.len(),
                        index: number,
                        id: if keep_ids { id } else { None },
                    });
                }
                Err(reason) => {
                    self.buf.truncate(start);
                    self.rejected.push((pos, reason));
                }
            }
        }
    }

    /// The request body for these documents (positions in [`Encoded::docs`]).
    pub fn body(&self, docs: &[usize]) -> Vec<u8> {
        let len = docs.iter().map(|&d| self.docs[d].range.len()).sum();
        let mut body = Vec::with_capacity(len);
        // Consecutive documents are adjacent in the buffer: copy runs at once.
        let mut i = 0;
        while i < docs.len() {
            let start = self.docs[docs[i]].range.start;
            let mut end = self.docs[docs[i]].range.end;
            let mut j = i + 1;
            while j < docs.len() && self.docs[docs[j]].range.start == end {
                end = self.docs[docs[j]].range.end;
                j += 1;
            }
            body.extend_from_slice(&self.buf[start..end]);
            i = j;
        }
        body
    }

    /// Adds to `retry` every document that comes after a retried document with the
    /// same index and id: re-sending only the earlier one would let it overwrite the
    /// later version. Returns `retry` sorted.
    pub fn with_followers(&self, mut retry: Vec<usize>) -> Vec<usize> {
        let mut first: HashMap<(u32, &str), usize> = HashMap::new();
        for &d in &retry {
            if let Some(id) = &self.docs[d].id {
                let e = first.entry((self.docs[d].index, id.as_str())).or_insert(d);
                *e = (*e).min(d);
            }
        }
        if !first.is_empty() {
            for (d, doc) in self.docs.iter().enumerate() {
                if let Some(id) = &doc.id {
                    if first.get(&(doc.index, id.as_str())).is_some_and(|&f| d > f) {
                        retry.push(d);
                    }
                }
            }
        }
        retry.sort_unstable();
        retry.dedup();
        retry
    }
}

/// Groups consecutive documents of these sizes into requests of at most `max_docs`
/// documents and `max_bytes` bytes (a single larger document goes alone).
pub fn split(sizes: &[usize], max_docs: usize, max_bytes: usize) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, &size) in sizes.iter().enumerate() {
        let docs = i - start;
        if docs > 0 && (docs >= max_docs || bytes + size > max_bytes) {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

/// The default document id: stream, topic, partition and offset. `/` and `%` in names
/// are escaped so that two different origins never give the same id.
pub fn offset_id(stream: &str, topic: &str, partition: u32, offset: u64) -> String {
    let mut id = String::with_capacity(stream.len() + topic.len() + 24);
    escape_into(&mut id, stream);
    id.push('/');
    escape_into(&mut id, topic);
    let _ = write!(id, "/{partition}/{offset}");
    if id.len() > 512 {
        // The servers' limit on `_id`: long names are hashed instead.
        let mut short = String::with_capacity(64);
        let _ = write!(
            short,
            "~{:016x}{:016x}/{partition}/{offset}",
            fnv1a(stream.as_bytes(), 0xcbf2_9ce4_8422_2325),
            fnv1a(topic.as_bytes(), 0x8422_2325_cbf2_9ce4)
        );
        return short;
    }
    id
}

fn escape_into(out: &mut String, name: &str) {
    for c in name.chars() {
        match c {
            '%' => out.push_str("%25"),
            '/' => out.push_str("%2F"),
            c => out.push(c),
        }
    }
}

fn fnv1a(data: &[u8], seed: u64) -> u64 {
    data.iter().fold(seed, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A 128-bit message id as a UUID string.
pub fn uuid(id: u128) -> String {
    let hex = format!("{id:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// What the payload is.
enum Payload {
    /// A JSON object: sent as it is.
    Object(Option<Value>),
    /// Anything else, wrapped.
    Wrapped(Value),
}

fn classify(
    msg: &Message<'_>,
    parse: bool,
    non_object: NonObjectPayloads,
) -> Result<Payload, String> {
    let bytes = msg.payload();
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'{') {
        if parse {
            if let Ok(v @ Value::Object(_)) = serde_json::from_slice::<Value>(bytes) {
                return Ok(Payload::Object(Some(v)));
            }
        } else if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() {
            return Ok(Payload::Object(None));
        }
    }
    if non_object == NonObjectPayloads::Reject {
        return Err("the payload is not a JSON object (non_object_payloads = reject)".to_string());
    }
    let wrapped = match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => serde_json::json!({ "payload": v }),
        Err(_) => match std::str::from_utf8(bytes) {
            Ok(text) => serde_json::json!({ "payload": text }),
            Err(_) => serde_json::json!({ "payload_base64": base64(bytes) }),
        },
    };
    Ok(Payload::Wrapped(wrapped))
}

/// Writes one message's action and source lines; returns its index and id.
fn encode_one(
    buf: &mut Vec<u8>,
    settings: &Settings,
    batch: &SinkBatch<'_>,
    msg: &Message<'_>,
    reads_fields: bool,
) -> Result<(String, Option<String>), String> {
    let payload = classify(msg, reads_fields, settings.non_object)?;
    let doc = match &payload {
        Payload::Object(v) => v.as_ref(),
        Payload::Wrapped(v) => Some(v),
    };
    let origin = Origin {
        stream: batch.stream(),
        topic: batch.topic(),
        partition: batch.partition(),
        timestamp_micros: msg.timestamp_micros(),
    };
    let index = settings.index.render(&origin, doc)?;
    let id = match &settings.document_id {
        DocumentId::Offset => Some(offset_id(
            batch.stream(),
            batch.topic(),
            batch.partition(),
            msg.offset(),
        )),
        DocumentId::MessageId => {
            if msg.id() == 0 {
                return Err("the message has no id (document_id = message_id)".to_string());
            }
            Some(uuid(msg.id()))
        }
        DocumentId::Field(path) => {
            let id = path.text_in(doc).map_err(|r| format!("document_id: {r}"))?;
            if id.is_empty() || id.len() > 512 {
                return Err(format!(
                    "document_id: payload field `{}` is empty or longer than 512 bytes",
                    path.text()
                ));
            }
            Some(id)
        }
        DocumentId::None => None,
    };
    let routing = match &settings.routing {
        Some(path) => Some(path.text_in(doc).map_err(|r| format!("routing: {r}"))?),
        None => None,
    };

    // {"index":{"_index":"...","_id":"...","routing":"..."}}
    buf.extend_from_slice(b"{\"");
    buf.extend_from_slice(settings.op_type.as_str().as_bytes());
    buf.extend_from_slice(b"\":{\"_index\":");
    write_json_string(buf, &index);
    if let Some(id) = &id {
        buf.extend_from_slice(b",\"_id\":");
        write_json_string(buf, id);
    }
    if let Some(routing) = &routing {
        buf.extend_from_slice(b",\"routing\":");
        write_json_string(buf, routing);
    }
    buf.extend_from_slice(b"}}\n");
    match payload {
        Payload::Object(_) => {
            let start = buf.len();
            buf.extend_from_slice(msg.payload());
            // Whitespace between tokens may hold line breaks; inside strings they are
            // escaped (the payload was checked to be valid JSON), so this keeps the
            // document the same.
            for b in &mut buf[start..] {
                if *b == b'\n' || *b == b'\r' {
                    *b = b' ';
                }
            }
        }
        Payload::Wrapped(v) => {
            serde_json::to_writer(&mut *buf, &v).expect("a Value serialises");
        }
    }
    buf.push(b'\n');
    Ok((index, id))
}

fn write_json_string(buf: &mut Vec<u8>, text: &str) {
    serde_json::to_writer(&mut *buf, text).expect("a string serialises");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ElasticsearchSinkConfig, Settings};
    use ld_plugin_api::Schema;

    fn settings(json: serde_json::Value) -> Settings {
        let config: ElasticsearchSinkConfig = serde_json::from_value(json).unwrap();
        Settings::from_config(config).unwrap()
    }

    fn lines(enc: &Encoded) -> Vec<Value> {
        enc.buf
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    }

    const T: u64 = 1_709_251_198_500_000; // 2024-02-29T23:59:58.5Z

    #[test]
    fn ndjson_with_offset_ids() {
        let s = settings(serde_json::json!({"url": "http://h", "index": "orders"}));
        let payloads: [&[u8]; 2] = [br#"{"n":1}"#, b"{\n  \"n\": 2,\n  \"s\": \"a\\nb\"\r\n}"];
        let msgs: Vec<Message<'_>> = payloads
            .iter()
            .enumerate()
            .map(|(i, p)| Message::new(7, 40 + i as u64, T, Schema::Json, &[], p))
            .collect();
        let batch = SinkBatch::new("shop", "orders", 2, &msgs);
        let mut enc = Encoded::default();
        enc.encode(&s, &batch);
        assert!(enc.rejected.is_empty());
        let text = std::str::from_utf8(&enc.buf).unwrap();
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(text.starts_with(
            "{\"index\":{\"_index\":\"orders\",\"_id\":\"shop/orders/2/40\"}}\n{\"n\":1}\n"
        ));
        let l = lines(&enc);
        assert_eq!(l[2]["index"]["_id"], "shop/orders/2/41");
        assert_eq!(
            l[3]["s"], "a\nb",
            "escaped newlines inside strings are kept"
        );
        assert_eq!(enc.docs.len(), 2);
        assert_eq!(enc.docs[1].range.end, enc.buf.len());
        assert_eq!(enc.indices, vec!["orders".to_string()]);
        assert_eq!(enc.docs[0].id, None, "offset ids are unique: not kept");
        // Any subset makes a valid body.
        let body = enc.body(&[1]);
        assert_eq!(&body[..], &enc.buf[enc.docs[1].range.clone()]);
        assert_eq!(enc.body(&[0, 1]), enc.buf);
    }

    #[test]
    fn ids_routing_op_type_and_index_patterns() {
        let s = settings(
            serde_json::json!({"url": "http://h", "index": "t-{field:tenant}-{yyyy.MM}",
            "document_id": "{field:order.id}", "routing": "tenant", "op_type": "create"}),
        );
        let p: [&[u8]; 3] = [
            br#"{"tenant":"A","order":{"id":17}}"#,
            br#"{"tenant":"b","order":{"id":"x\"y"}}"#,
            br#"{"tenant":"b"}"#,
        ];
        let msgs: Vec<Message<'_>> = p
            .iter()
            .enumerate()
            .map(|(i, p)| Message::new(1, i as u64, T, Schema::Json, &[], p))
            .collect();
        let mut enc = Encoded::default();
        enc.encode(&s, &SinkBatch::new("s", "t", 0, &msgs));
        let l = lines(&enc);
        assert_eq!(
            l[0],
            serde_json::json!({"create": {"_index": "t-a-2024.02", "_id": "17", "routing": "A"}})
        );
        assert_eq!(l[2]["create"]["_id"], "x\"y");
        assert_eq!(l[2]["create"]["_index"], "t-b-2024.02");
        assert_eq!(enc.indices.len(), 2);
        assert_eq!(enc.rejected.len(), 1);
        assert_eq!(enc.rejected[0].0, 2);
        assert!(enc.rejected[0].1.contains("order.id"), "{:?}", enc.rejected);
        assert_eq!(enc.docs[1].id.as_deref(), Some("x\"y"));

        let s = settings(
            serde_json::json!({"url": "http://h", "index": "i", "document_id": "message_id"}),
        );
        let msgs = [
            Message::new(
                0x0123_4567_89ab_cdef_0011_2233_4455_6677,
                0,
                T,
                Schema::Json,
                &[],
                b"{}",
            ),
            Message::new(0, 1, T, Schema::Json, &[], b"{}"),
        ];
        enc.encode(&s, &SinkBatch::new("s", "t", 0, &msgs));
        assert_eq!(
            lines(&enc)[0]["index"]["_id"],
            "01234567-89ab-cdef-0011-223344556677"
        );
        assert_eq!(enc.rejected.len(), 1, "id 0 is no id");

        let s =
            settings(serde_json::json!({"url": "http://h", "index": "i", "document_id": "none"}));
        enc.encode(&s, &SinkBatch::new("s", "t", 0, &msgs));
        assert_eq!(
            lines(&enc)[0],
            serde_json::json!({"index": {"_index": "i"}})
        );
    }

    #[test]
    fn non_object_payloads_are_wrapped_or_rejected() {
        let s = settings(serde_json::json!({"url": "http://h", "index": "i"}));
        let p: [&[u8]; 5] = [
            b"[1,2]",
            b"42",
            b"plain text\nline 2",
            &[0xff, 0x00, 0x01],
            b"{broken",
        ];
        let msgs: Vec<Message<'_>> = p
            .iter()
            .enumerate()
            .map(|(i, p)| Message::new(1, i as u64, T, Schema::Raw, &[], p))
            .collect();
        let mut enc = Encoded::default();
        enc.encode(&s, &SinkBatch::new("s", "t", 0, &msgs));
        let l = lines(&enc);
        assert_eq!(l[1], serde_json::json!({"payload": [1, 2]}));
        assert_eq!(l[3], serde_json::json!({"payload": 42}));
        assert_eq!(l[5], serde_json::json!({"payload": "plain text\nline 2"}));
        assert_eq!(l[7], serde_json::json!({"payload_base64": "/wAB"}));
        assert_eq!(l[9], serde_json::json!({"payload": "{broken"}));

        let s = settings(
            serde_json::json!({"url": "http://h", "index": "i", "non_object_payloads": "reject"}),
        );
        enc.encode(&s, &SinkBatch::new("s", "t", 0, &msgs));
        assert_eq!(enc.docs.len(), 0);
        assert_eq!(enc.rejected.len(), 5);
        assert!(enc.buf.is_empty());
    }

    #[test]
    fn splitting_by_docs_and_bytes() {
        assert_eq!(split(&[10; 5], 2, 1000), vec![0..2, 2..4, 4..5]);
        assert_eq!(split(&[10; 5], 100, 25), vec![0..2, 2..4, 4..5]);
        assert_eq!(split(&[10; 4], 100, 20), vec![0..2, 2..4]);
        // A document bigger than the limit goes alone.
        assert_eq!(split(&[5, 50, 5, 5], 100, 20), vec![0..1, 1..2, 2..4]);
        assert_eq!(split(&[], 10, 10), Vec::<Range<usize>>::new());
        assert_eq!(split(&[1; 3], 1, 1000), vec![0..1, 1..2, 2..3]);
        // Every document lands in exactly one group, in order.
        let sizes: Vec<usize> = (0..1000).map(|i| 100 + i % 37).collect();
        let groups = split(&sizes, 64, 4096);
        assert_eq!(groups.first().unwrap().start, 0);
        assert_eq!(groups.last().unwrap().end, 1000);
        for w in groups.windows(2) {
            assert_eq!(w[0].end, w[1].start);
        }
        for g in &groups {
            assert!(g.len() <= 64 && sizes[g.clone()].iter().sum::<usize>() <= 4096);
        }
    }

    #[test]
    fn offset_ids_are_unique_and_bounded() {
        assert_eq!(offset_id("shop", "orders", 0, 5), "shop/orders/0/5");
        assert_ne!(offset_id("a/b", "c", 0, 1), offset_id("a", "b/c", 0, 1));
        assert_eq!(offset_id("a/b", "c%", 0, 1), "a%2Fb/c%25/0/1");
        let long = "s".repeat(600);
        let id = offset_id(&long, "t", 1, 2);
        assert!(id.len() <= 512 && id.ends_with("/1/2"), "{id}");
        assert_ne!(id, offset_id(&"s".repeat(601), "t", 1, 2));
    }

    #[test]
    fn a_retried_document_takes_its_later_namesakes_along() {
        let s = settings(
            serde_json::json!({"url": "http://h", "index": "i", "document_id": "{field:k}"}),
        );
        let p: [&[u8]; 4] = [
            br#"{"k":1}"#,
            br#"{"k":2}"#,
            br#"{"k":1,"v":2}"#,
            br#"{"k":3}"#,
        ];
        let msgs: Vec<Message<'_>> = p
            .iter()
            .enumerate()
            .map(|(i, p)| Message::new(1, i as u64, T, Schema::Json, &[], p))
            .collect();
        let mut enc = Encoded::default();
        enc.encode(&s, &SinkBatch::new("s", "t", 0, &msgs));
        assert_eq!(enc.with_followers(vec![0]), vec![0, 2]);
        assert_eq!(enc.with_followers(vec![3, 1]), vec![1, 3]);
        assert_eq!(enc.with_followers(vec![2]), vec![2]);
    }
}
