//! A batch of stored messages: one byte buffer plus an index, the same shape on every
//! backend, so that a sink's message views borrow it without a copy per message.

use ld_plugin_api::{Header, Message, Schema};

/// Where one message's bytes are in a [`MessageBatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Message id.
    pub id: u128,
    /// Offset in its partition.
    pub offset: u64,
    /// Microseconds since the Unix epoch.
    pub timestamp_micros: u64,
    /// Payload encoding.
    pub schema: Schema,
    /// Payload start in the buffer.
    pub payload_start: u32,
    /// Payload length.
    pub payload_len: u32,
    /// First header in the header index.
    pub headers_start: u32,
    /// Number of headers.
    pub headers_len: u32,
}

/// One header as ranges into the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderEntry {
    /// Key start.
    pub key_start: u32,
    /// Key length (UTF-8).
    pub key_len: u32,
    /// Value start.
    pub value_start: u32,
    /// Value length.
    pub value_len: u32,
}

/// Messages of one partition in offset order (or, before append, in produce order with
/// offsets not yet assigned).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageBatch {
    /// Payload and header bytes back to back.
    pub buffer: Vec<u8>,
    /// One entry per message.
    pub entries: Vec<Entry>,
    /// All headers; each entry names a range.
    pub headers: Vec<HeaderEntry>,
}

/// A borrowed message of a [`MessageBatch`].
#[derive(Debug, Clone, Copy)]
pub struct MessageRef<'a> {
    batch: &'a MessageBatch,
    entry: &'a Entry,
}

impl<'a> MessageRef<'a> {
    /// The index entry (id, offset, timestamp, schema).
    pub fn entry(&self) -> &'a Entry {
        self.entry
    }

    /// Payload bytes.
    pub fn payload(&self) -> &'a [u8] {
        let e = self.entry;
        &self.batch.buffer[e.payload_start as usize..(e.payload_start + e.payload_len) as usize]
    }

    /// Headers as (key, value).
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        let batch = self.batch;
        let e = self.entry;
        batch.headers[e.headers_start as usize..(e.headers_start + e.headers_len) as usize]
            .iter()
            .map(move |h| batch.header(h))
    }
}

fn u32_of(n: usize) -> u32 {
    u32::try_from(n).expect("a message batch is limited to 4 GiB")
}

impl MessageBatch {
    /// An empty batch with room for `messages` messages and `bytes` bytes.
    pub fn with_capacity(messages: usize, bytes: usize) -> Self {
        Self {
            buffer: Vec::with_capacity(bytes),
            entries: Vec::with_capacity(messages),
            headers: Vec::new(),
        }
    }

    /// Number of messages.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is no message.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Payload and header bytes.
    pub fn byte_len(&self) -> usize {
        self.buffer.len()
    }

    /// Offset of the first message.
    pub fn first_offset(&self) -> Option<u64> {
        self.entries.first().map(|e| e.offset)
    }

    /// Offset of the last message.
    pub fn last_offset(&self) -> Option<u64> {
        self.entries.last().map(|e| e.offset)
    }

    fn header(&self, h: &HeaderEntry) -> (&str, &[u8]) {
        let key = &self.buffer[h.key_start as usize..(h.key_start + h.key_len) as usize];
        let value = &self.buffer[h.value_start as usize..(h.value_start + h.value_len) as usize];
        (std::str::from_utf8(key).unwrap_or(""), value)
    }

    /// Appends a message.
    pub fn push<'h>(
        &mut self,
        id: u128,
        offset: u64,
        timestamp_micros: u64,
        schema: Schema,
        headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
        payload: &[u8],
    ) {
        let headers_start = u32_of(self.headers.len());
        for (key, value) in headers {
            let key_start = u32_of(self.buffer.len());
            self.buffer.extend_from_slice(key.as_bytes());
            let value_start = u32_of(self.buffer.len());
            self.buffer.extend_from_slice(value);
            self.headers.push(HeaderEntry {
                key_start,
                key_len: u32_of(key.len()),
                value_start,
                value_len: u32_of(value.len()),
            });
        }
        let payload_start = u32_of(self.buffer.len());
        self.buffer.extend_from_slice(payload);
        self.entries.push(Entry {
            id,
            offset,
            timestamp_micros,
            schema,
            payload_start,
            payload_len: u32_of(payload.len()),
            headers_start,
            headers_len: u32_of(self.headers.len()) - headers_start,
        });
    }

    /// The messages.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = MessageRef<'_>> + '_ {
        self.entries
            .iter()
            .map(move |entry| MessageRef { batch: self, entry })
    }

    /// Fills `headers` and `messages` with borrowed views for a sink plugin: no payload
    /// is copied. `headers` must outlive `messages`, hence two vectors the caller keeps.
    pub fn header_views<'a>(&'a self, headers: &mut Vec<Header<'a>>) {
        headers.clear();
        headers.extend(self.headers.iter().map(|h| {
            let (k, v) = self.header(h);
            Header::new(k, v)
        }));
    }

    /// See [`MessageBatch::header_views`]; `headers` is what it filled.
    pub fn message_views<'a>(&'a self, headers: &'a [Header<'a>], messages: &mut Vec<Message<'a>>) {
        messages.clear();
        messages.extend(self.entries.iter().map(|e| {
            let start = e.payload_start as usize;
            let h = e.headers_start as usize;
            Message::new(
                e.id,
                e.offset,
                e.timestamp_micros,
                e.schema,
                &headers[h..h + e.headers_len as usize],
                &self.buffer[start..start + e.payload_len as usize],
            )
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_borrow_what_was_pushed() {
        let mut batch = MessageBatch::default();
        batch.push(1, 10, 5, Schema::Json, [], b"{}");
        batch.push(
            2,
            11,
            6,
            Schema::Raw,
            [("k", &b"v"[..]), ("k2", &b""[..])],
            b"xy",
        );
        let mut headers = Vec::new();
        batch.header_views(&mut headers);
        let mut messages = Vec::new();
        batch.message_views(&headers, &mut messages);
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].payload(), b"{}");
        assert!(messages[0].headers().is_empty());
        assert_eq!(messages[1].id(), 2);
        assert_eq!(messages[1].offset(), 11);
        assert_eq!(messages[1].header("k"), Some(&b"v"[..]));
        assert_eq!(messages[1].headers().len(), 2);
        let refs: Vec<_> = batch.iter().map(|m| m.headers().count()).collect();
        assert_eq!(refs, vec![0, 2]);
    }
}
