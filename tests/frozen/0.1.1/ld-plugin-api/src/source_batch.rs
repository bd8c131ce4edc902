//! What a source hands back from one poll: one byte buffer plus an index, so a batch of
//! a thousand messages costs a handful of allocations, not a thousand.

use abi_stable::{
    std_types::{ROption, RVec},
    StableAbi,
};
use serde::Serialize;

use crate::{PluginError, Schema};

/// A span of bytes in a batch buffer.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u32,
    /// Number of bytes.
    pub len: u32,
}

impl ByteRange {
    fn of<'b>(&self, buffer: &'b [u8]) -> &'b [u8] {
        let start = self.start as usize;
        &buffer[start..start + self.len as usize]
    }
}

/// One header of a source message, as ranges into the batch buffer.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct SourceHeader {
    /// The key's bytes (UTF-8).
    pub key: ByteRange,
    /// The value's bytes.
    pub value: ByteRange,
}

/// The index entry of one source message.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct SourceMessage {
    /// Message id, high half; `0` and `0` let the host assign one.
    pub id_hi: u64,
    /// Message id, low half.
    pub id_lo: u64,
    /// Microseconds since the Unix epoch; `0` lets the host stamp it.
    pub timestamp_micros: u64,
    /// Payload encoding.
    pub schema: Schema,
    /// The payload in the batch buffer.
    pub payload: ByteRange,
    /// First header in the batch's header list.
    pub headers_start: u32,
    /// Number of headers.
    pub headers_len: u32,
}

/// A batch built by a [`crate::Source`]: messages appended into one buffer, and
/// optionally the source's new state, which the host saves only after the batch is
/// durably in the stream.
///
/// ```
/// use ld_plugin_api::{Schema, SourceBatch};
/// let mut batch = SourceBatch::with_capacity(2, 64);
/// batch.push_json(&serde_json::json!({"id": 1})).unwrap();
/// batch.push(Schema::Text, b"hello");
/// batch.set_state(&42u64).unwrap();
/// assert_eq!(batch.len(), 2);
/// ```
#[derive(Debug, Default)]
pub struct SourceBatch {
    buffer: Vec<u8>,
    messages: Vec<SourceMessage>,
    headers: Vec<SourceHeader>,
    state: Option<Vec<u8>>,
}

/// Optional parts of a source message: id, timestamp and headers.
///
/// ```
/// use ld_plugin_api::{MessageSpec, Schema, SourceBatch};
/// let mut batch = SourceBatch::new();
/// batch.push_with(
///     MessageSpec { id: 9, headers: &[("origin", b"test")], ..MessageSpec::default() },
///     Schema::Raw,
///     b"\x00\x01",
/// );
/// assert_eq!(batch.len(), 1);
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct MessageSpec<'h> {
    /// Message id; `0` lets the host assign one.
    pub id: u128,
    /// Microseconds since the Unix epoch; `0` lets the host stamp it.
    pub timestamp_micros: u64,
    /// Headers as (key, value).
    pub headers: &'h [(&'h str, &'h [u8])],
}

impl SourceBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty batch with room for `messages` messages of `bytes` payload bytes in all.
    pub fn with_capacity(messages: usize, bytes: usize) -> Self {
        Self {
            buffer: Vec::with_capacity(bytes),
            messages: Vec::with_capacity(messages),
            headers: Vec::new(),
            state: None,
        }
    }

    /// Number of messages.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether the batch has no message.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    fn append(&mut self, bytes: &[u8]) -> ByteRange {
        let start = self.buffer.len();
        self.buffer.extend_from_slice(bytes);
        ByteRange {
            start: to_u32(start),
            len: to_u32(bytes.len()),
        }
    }

    /// Appends a message with a host-assigned id and timestamp.
    pub fn push(&mut self, schema: Schema, payload: &[u8]) {
        let payload = self.append(payload);
        self.messages.push(SourceMessage {
            id_hi: 0,
            id_lo: 0,
            timestamp_micros: 0,
            schema,
            payload,
            headers_start: to_u32(self.headers.len()),
            headers_len: 0,
        });
    }

    /// Appends `value` serialized as JSON straight into the batch buffer.
    pub fn push_json<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), PluginError> {
        let start = self.buffer.len();
        if let Err(e) = serde_json::to_writer(&mut self.buffer, value) {
            self.buffer.truncate(start);
            return Err(PluginError::fatal(format!(
                "cannot encode message as JSON: {e}"
            )));
        }
        self.messages.push(SourceMessage {
            id_hi: 0,
            id_lo: 0,
            timestamp_micros: 0,
            schema: Schema::Json,
            payload: ByteRange {
                start: to_u32(start),
                len: to_u32(self.buffer.len() - start),
            },
            headers_start: to_u32(self.headers.len()),
            headers_len: 0,
        });
        Ok(())
    }

    /// Appends a message with an id, timestamp or headers of its own.
    pub fn push_with(&mut self, spec: MessageSpec<'_>, schema: Schema, payload: &[u8]) {
        let headers_start = to_u32(self.headers.len());
        for (key, value) in spec.headers {
            let key = self.append(key.as_bytes());
            let value = self.append(value);
            self.headers.push(SourceHeader { key, value });
        }
        let payload = self.append(payload);
        self.messages.push(SourceMessage {
            id_hi: (spec.id >> 64) as u64,
            id_lo: spec.id as u64,
            timestamp_micros: spec.timestamp_micros,
            schema,
            payload,
            headers_start,
            headers_len: to_u32(spec.headers.len()),
        });
    }

    /// Sets the state to save once this batch is durably in the stream; the next
    /// construction of the source after a restart receives it.
    pub fn set_state<T: Serialize + ?Sized>(&mut self, state: &T) -> Result<(), PluginError> {
        let bytes = serde_json::to_vec(state)
            .map_err(|e| PluginError::fatal(format!("cannot encode source state: {e}")))?;
        self.state = Some(bytes);
        Ok(())
    }

    /// Converts into the FFI form without copying any buffer.
    pub fn into_raw(self) -> RawSourceBatch {
        RawSourceBatch {
            buffer: RVec::from(self.buffer),
            messages: RVec::from(self.messages),
            headers: RVec::from(self.headers),
            state: self.state.map(RVec::from).into(),
        }
    }
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).expect("a source batch is limited to 4 GiB")
}

/// A [`SourceBatch`] as it crosses the boundary. The host reads it with
/// [`RawSourceBatch::iter`].
#[repr(C)]
#[derive(StableAbi, Debug)]
pub struct RawSourceBatch {
    buffer: RVec<u8>,
    messages: RVec<SourceMessage>,
    headers: RVec<SourceHeader>,
    state: ROption<RVec<u8>>,
}

/// One message of a [`RawSourceBatch`], borrowed.
#[derive(Debug, Clone, Copy)]
pub struct SourceMessageRef<'b> {
    batch: &'b RawSourceBatch,
    entry: &'b SourceMessage,
}

impl<'b> SourceMessageRef<'b> {
    /// The id the source gave, `0` when the host should assign one.
    pub fn id(&self) -> u128 {
        (u128::from(self.entry.id_hi) << 64) | u128::from(self.entry.id_lo)
    }

    /// The source's timestamp, `0` when the host should stamp it.
    pub fn timestamp_micros(&self) -> u64 {
        self.entry.timestamp_micros
    }

    /// Payload encoding.
    pub fn schema(&self) -> Schema {
        self.entry.schema
    }

    /// Payload bytes.
    pub fn payload(&self) -> &'b [u8] {
        self.entry.payload.of(&self.batch.buffer)
    }

    /// Headers as (key, value); keys that are not UTF-8 are skipped.
    pub fn headers(&self) -> impl Iterator<Item = (&'b str, &'b [u8])> + 'b {
        let start = self.entry.headers_start as usize;
        let end = start + self.entry.headers_len as usize;
        let buffer = &self.batch.buffer;
        self.batch.headers[start..end].iter().filter_map(move |h| {
            let key = std::str::from_utf8(h.key.of(buffer)).ok()?;
            Some((key, h.value.of(buffer)))
        })
    }
}

impl RawSourceBatch {
    /// Number of messages.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether the batch has no message.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Total payload and header bytes.
    pub fn byte_len(&self) -> usize {
        self.buffer.len()
    }

    /// The messages, in the order the source produced them.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = SourceMessageRef<'_>> + '_ {
        self.messages
            .iter()
            .map(move |entry| SourceMessageRef { batch: self, entry })
    }

    /// The new source state to save after this batch is durable, if the source set one.
    pub fn state(&self) -> Option<&[u8]> {
        self.state.as_ref().map(|s| s.as_slice()).into_option()
    }

    /// Takes the state out of the batch.
    pub fn take_state(&mut self) -> Option<Vec<u8>> {
        std::mem::replace(&mut self.state, ROption::RNone)
            .into_option()
            .map(RVec::into_vec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_batch_reads_back_what_was_pushed() {
        let mut batch = SourceBatch::new();
        batch.push_json(&serde_json::json!({"n": 1})).unwrap();
        batch.push_with(
            MessageSpec {
                id: u128::MAX - 1,
                timestamp_micros: 5,
                headers: &[("a", b"1"), ("b", b"22")],
            },
            Schema::Raw,
            b"xyz",
        );
        batch.push(Schema::Text, b"");
        batch.set_state(&"cursor-9").unwrap();
        let raw = batch.into_raw();
        let msgs: Vec<_> = raw.iter().collect();
        assert_eq!(msgs.len(), 3);
        assert_eq!(msgs[0].payload(), br#"{"n":1}"#);
        assert_eq!(msgs[0].schema(), Schema::Json);
        assert_eq!(msgs[0].id(), 0);
        assert_eq!(msgs[1].id(), u128::MAX - 1);
        assert_eq!(msgs[1].timestamp_micros(), 5);
        assert_eq!(msgs[1].payload(), b"xyz");
        let headers: Vec<_> = msgs[1].headers().collect();
        assert_eq!(headers, vec![("a", &b"1"[..]), ("b", &b"22"[..])]);
        assert_eq!(msgs[2].payload(), b"");
        assert_eq!(msgs[2].headers().count(), 0);
        assert_eq!(raw.state(), Some(&br#""cursor-9""#[..]));
    }
}
