//! Binary COPY rows, built straight into one buffer per batch.
//!
//! The format (PostgreSQL docs, "COPY", binary format): an 11-byte signature, a 32-bit
//! flags field and a 32-bit header-extension length; then per row a 16-bit field count
//! and, per field, a 32-bit length followed by the value in the type's binary send
//! format; then a 16-bit `-1` trailer. All integers are big-endian.
//!
//! Building the buffer by hand measured the same as tokio-postgres'
//! `BinaryCopyInWriter` within noise (the server's work dominates; see
//! `tests/benches/postgres_sink.rs`); it is kept because it needs no `ToSql` wrapper
//! types for `jsonb`/`uuid` and sends one message per batch.

use bytes::{BufMut, BytesMut};
use ld_plugin_api::SinkBatch;

use crate::table::PayloadEncoding;

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

fn put_field(buf: &mut BytesMut, bytes: &[u8]) {
    buf.put_i32(bytes.len() as i32);
    buf.put_slice(bytes);
}

/// Encodes every message of `batch` as one binary COPY stream into `buf` (cleared first).
pub fn encode_batch(
    buf: &mut BytesMut,
    batch: &SinkBatch<'_>,
    include_metadata: bool,
    encoding: PayloadEncoding,
) {
    buf.clear();
    let payload_bytes: usize = batch.messages().iter().map(|m| m.payload().len()).sum();
    let per_row = if include_metadata {
        2 + 4 * 7 + batch.stream().len() + batch.topic().len() + 4 + 8 + 16 + 8 + 1
    } else {
        2 + 4 + 1
    };
    buf.reserve(19 + 2 + payload_bytes + per_row * batch.len());
    buf.put_slice(SIGNATURE);
    buf.put_i32(0); // flags
    buf.put_i32(0); // header extension length
    let fields: i16 = if include_metadata { 7 } else { 1 };
    for message in batch.messages() {
        buf.put_i16(fields);
        if include_metadata {
            put_field(buf, batch.stream().as_bytes());
            put_field(buf, batch.topic().as_bytes());
            buf.put_i32(4);
            buf.put_i32(batch.partition() as i32);
            buf.put_i32(8);
            buf.put_i64(message.offset() as i64);
            buf.put_i32(16);
            buf.put_u128(message.id());
            buf.put_i32(8);
            buf.put_i64(message.timestamp_micros() as i64 - PG_EPOCH_OFFSET_MICROS);
        }
        let payload = message.payload();
        match encoding {
            PayloadEncoding::Jsonb => {
                buf.put_i32(payload.len() as i32 + 1);
                buf.put_u8(1); // jsonb binary format version
                buf.put_slice(payload);
            }
            PayloadEncoding::Plain => put_field(buf, payload),
        }
    }
    buf.put_i16(-1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ld_plugin_api::{Message, Schema};

    #[test]
    fn layout_of_one_row_with_metadata() {
        let msgs = [Message::new(
            0x0102,
            7,
            946_684_800_000_001,
            Schema::Json,
            &[],
            b"{}",
        )];
        let batch = SinkBatch::new("s", "t", 3, &msgs);
        let mut buf = BytesMut::new();
        encode_batch(&mut buf, &batch, true, PayloadEncoding::Jsonb);
        let mut expected = Vec::new();
        expected.extend_from_slice(SIGNATURE);
        expected.extend_from_slice(&[0; 8]);
        expected.extend_from_slice(&7i16.to_be_bytes());
        expected.extend_from_slice(&[0, 0, 0, 1, b's', 0, 0, 0, 1, b't']);
        expected.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 3]);
        expected.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 7]);
        expected.extend_from_slice(&16i32.to_be_bytes());
        expected.extend_from_slice(&0x0102u128.to_be_bytes());
        expected.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1]);
        expected.extend_from_slice(&[0, 0, 0, 3, 1, b'{', b'}']);
        expected.extend_from_slice(&(-1i16).to_be_bytes());
        assert_eq!(&buf[..], &expected[..]);
    }
}
