//! On-disk layout of one stored batch of the embedded log (version 1, little endian):
//!
//! ```text
//! u8 version | u64 base offset | u32 count | u32 header count | u32 buffer length
//! | u64 last timestamp
//! | count x (u128 id, u64 timestamp, u8 schema, u32 payload start, u32 payload length,
//!            u32 first header, u32 header count)
//! | header count x (u32 key start, u32 key length, u32 value start, u32 value length)
//! | buffer
//! ```
//!
//! Offsets are consecutive from the base offset, so they are not stored per message.

use ld_plugin_api::Schema;

use super::{Entry, HeaderEntry, MessageBatch, StreamError};

const VERSION: u8 = 1;
const HEAD: usize = 1 + 8 + 4 + 4 + 4 + 8;
const ENTRY: usize = 16 + 8 + 1 + 4 * 4;
const HEADER: usize = 16;

fn schema_byte(s: Schema) -> u8 {
    match s {
        Schema::Json => 0,
        Schema::Raw => 1,
        Schema::Text => 2,
    }
}

fn schema_of(b: u8) -> Result<Schema, StreamError> {
    match b {
        0 => Ok(Schema::Json),
        1 => Ok(Schema::Raw),
        2 => Ok(Schema::Text),
        other => Err(StreamError::Corrupt(format!("unknown schema tag {other}"))),
    }
}

/// Encodes `batch` with offsets from `base_offset`; a zero timestamp becomes `now`.
pub fn encode(batch: &MessageBatch, base_offset: u64, now_micros: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        HEAD + batch.entries.len() * ENTRY + batch.headers.len() * HEADER + batch.buffer.len(),
    );
    let stamp = |ts: u64| if ts == 0 { now_micros } else { ts };
    out.push(VERSION);
    out.extend_from_slice(&base_offset.to_le_bytes());
    out.extend_from_slice(&(batch.entries.len() as u32).to_le_bytes());
    out.extend_from_slice(&(batch.headers.len() as u32).to_le_bytes());
    out.extend_from_slice(&(batch.buffer.len() as u32).to_le_bytes());
    let last_ts = batch
        .entries
        .last()
        .map_or(now_micros, |e| stamp(e.timestamp_micros));
    out.extend_from_slice(&last_ts.to_le_bytes());
    for e in &batch.entries {
        out.extend_from_slice(&e.id.to_le_bytes());
        out.extend_from_slice(&stamp(e.timestamp_micros).to_le_bytes());
        out.push(schema_byte(e.schema));
        out.extend_from_slice(&e.payload_start.to_le_bytes());
        out.extend_from_slice(&e.payload_len.to_le_bytes());
        out.extend_from_slice(&e.headers_start.to_le_bytes());
        out.extend_from_slice(&e.headers_len.to_le_bytes());
    }
    for h in &batch.headers {
        out.extend_from_slice(&h.key_start.to_le_bytes());
        out.extend_from_slice(&h.key_len.to_le_bytes());
        out.extend_from_slice(&h.value_start.to_le_bytes());
        out.extend_from_slice(&h.value_len.to_le_bytes());
    }
    out.extend_from_slice(&batch.buffer);
    out
}

struct Head {
    base: u64,
    count: u32,
    headers: u32,
    buffer_len: u32,
    last_ts: u64,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn head(b: &[u8]) -> Result<Head, StreamError> {
    if b.len() < HEAD || b[0] != VERSION {
        return Err(StreamError::Corrupt(format!(
            "stored batch of {} bytes has no version-{VERSION} header",
            b.len()
        )));
    }
    let h = Head {
        base: u64_at(b, 1),
        count: u32_at(b, 9),
        headers: u32_at(b, 13),
        buffer_len: u32_at(b, 17),
        last_ts: u64_at(b, 21),
    };
    let expected = HEAD as u64
        + u64::from(h.count) * ENTRY as u64
        + u64::from(h.headers) * HEADER as u64
        + u64::from(h.buffer_len);
    if expected != b.len() as u64 || h.count == 0 {
        return Err(StreamError::Corrupt(format!(
            "stored batch at offset {} is {} bytes, its header says {expected}",
            h.base,
            b.len()
        )));
    }
    Ok(h)
}

/// Offset of the first message of a stored batch.
pub fn first_offset(b: &[u8]) -> Result<u64, StreamError> {
    Ok(head(b)?.base)
}

/// Offset of the last message of a stored batch.
pub fn last_offset(b: &[u8]) -> Result<u64, StreamError> {
    let h = head(b)?;
    Ok(h.base + u64::from(h.count) - 1)
}

/// Timestamp of the last message of a stored batch.
pub fn last_timestamp(b: &[u8]) -> Result<u64, StreamError> {
    Ok(head(b)?.last_ts)
}

fn entry_at(b: &[u8], i: usize, base: u64) -> Result<Entry, StreamError> {
    let at = HEAD + i * ENTRY;
    Ok(Entry {
        id: u128::from_le_bytes(b[at..at + 16].try_into().expect("16 bytes")),
        offset: base + i as u64,
        timestamp_micros: u64_at(b, at + 16),
        schema: schema_of(b[at + 24])?,
        payload_start: u32_at(b, at + 25),
        payload_len: u32_at(b, at + 29),
        headers_start: u32_at(b, at + 33),
        headers_len: u32_at(b, at + 37),
    })
}

/// Appends to `out` up to `max` messages of the stored batch `b`, starting at offset
/// `from`; returns how many.
pub fn decode_into(
    b: &[u8],
    from: u64,
    max: u32,
    out: &mut MessageBatch,
) -> Result<usize, StreamError> {
    let h = head(b)?;
    if from < h.base || from >= h.base + u64::from(h.count) {
        return Ok(0);
    }
    let first = (from - h.base) as usize;
    let take = (h.count as usize - first).min(max as usize);
    let headers_at = HEAD + h.count as usize * ENTRY;
    let buffer_at = headers_at + h.headers as usize * HEADER;
    let buffer = &b[buffer_at..];
    let header_at = |i: usize| {
        let at = headers_at + i * HEADER;
        HeaderEntry {
            key_start: u32_at(b, at),
            key_len: u32_at(b, at + 4),
            value_start: u32_at(b, at + 8),
            value_len: u32_at(b, at + 12),
        }
    };
    let check = |start: u32, len: u32| {
        if u64::from(start) + u64::from(len) > u64::from(h.buffer_len) {
            Err(StreamError::Corrupt(format!(
                "stored batch at offset {}: range out of bounds",
                h.base
            )))
        } else {
            Ok(())
        }
    };
    if out.is_empty() && first == 0 && take == h.count as usize {
        // The whole stored batch: one copy of the buffer, indexes parsed in place.
        out.buffer.extend_from_slice(buffer);
        out.entries.reserve(take);
        for i in 0..take {
            let e = entry_at(b, i, h.base)?;
            check(e.payload_start, e.payload_len)?;
            if u64::from(e.headers_start) + u64::from(e.headers_len) > u64::from(h.headers) {
                return Err(StreamError::Corrupt(format!(
                    "stored batch at offset {}: header range out of bounds",
                    h.base
                )));
            }
            out.entries.push(e);
        }
        for i in 0..h.headers as usize {
            let hd = header_at(i);
            check(hd.key_start, hd.key_len)?;
            check(hd.value_start, hd.value_len)?;
            out.headers.push(hd);
        }
        return Ok(take);
    }
    let mut header_pairs: Vec<(&str, &[u8])> = Vec::new();
    for i in first..first + take {
        let e = entry_at(b, i, h.base)?;
        check(e.payload_start, e.payload_len)?;
        header_pairs.clear();
        for j in e.headers_start..e.headers_start + e.headers_len {
            if j >= h.headers {
                return Err(StreamError::Corrupt(format!(
                    "stored batch at offset {}: header range out of bounds",
                    h.base
                )));
            }
            let hd = header_at(j as usize);
            check(hd.key_start, hd.key_len)?;
            check(hd.value_start, hd.value_len)?;
            let key = &buffer[hd.key_start as usize..(hd.key_start + hd.key_len) as usize];
            let value = &buffer[hd.value_start as usize..(hd.value_start + hd.value_len) as usize];
            header_pairs.push((std::str::from_utf8(key).unwrap_or(""), value));
        }
        let payload = &buffer[e.payload_start as usize..(e.payload_start + e.payload_len) as usize];
        out.push(
            e.id,
            e.offset,
            e.timestamp_micros,
            e.schema,
            header_pairs.iter().copied(),
            payload,
        );
    }
    Ok(take)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> MessageBatch {
        let mut b = MessageBatch::default();
        b.push(7, 0, 0, Schema::Json, [], b"{\"a\":1}");
        b.push(8, 0, 99, Schema::Raw, [("h", &b"v"[..])], b"\x00\x01");
        b.push(9, 0, 0, Schema::Text, [], b"three");
        b
    }

    #[test]
    fn whole_batch_round_trips_with_offsets_and_stamps() {
        let bytes = encode(&sample(), 40, 1234);
        assert_eq!(first_offset(&bytes).unwrap(), 40);
        assert_eq!(last_offset(&bytes).unwrap(), 42);
        assert_eq!(last_timestamp(&bytes).unwrap(), 1234);
        let mut out = MessageBatch::default();
        assert_eq!(decode_into(&bytes, 40, 10, &mut out).unwrap(), 3);
        let msgs: Vec<_> = out.iter().collect();
        assert_eq!(msgs[0].entry().offset, 40);
        assert_eq!(msgs[0].entry().timestamp_micros, 1234);
        assert_eq!(msgs[1].entry().timestamp_micros, 99);
        assert_eq!(msgs[1].payload(), b"\x00\x01");
        assert_eq!(
            msgs[1].headers().collect::<Vec<_>>(),
            vec![("h", &b"v"[..])]
        );
        assert_eq!(msgs[2].payload(), b"three");
        assert_eq!(msgs[2].entry().id, 9);
    }

    #[test]
    fn partial_reads_start_at_the_offset_and_respect_max() {
        let bytes = encode(&sample(), 40, 1);
        let mut out = MessageBatch::default();
        assert_eq!(decode_into(&bytes, 41, 1, &mut out).unwrap(), 1);
        assert_eq!(out.entries[0].offset, 41);
        assert_eq!(out.iter().next().unwrap().headers().count(), 1);
        assert_eq!(decode_into(&bytes, 42, 5, &mut out).unwrap(), 1);
        assert_eq!(out.len(), 2);
        assert_eq!(out.iter().nth(1).unwrap().payload(), b"three");
        assert_eq!(decode_into(&bytes, 43, 5, &mut out).unwrap(), 0);
    }

    #[test]
    fn truncated_data_is_reported_not_read() {
        let bytes = encode(&sample(), 0, 1);
        let err = last_offset(&bytes[..bytes.len() - 1]).unwrap_err();
        assert!(matches!(err, StreamError::Corrupt(_)), "{err}");
        assert!(head(&[]).is_err());
    }
}
