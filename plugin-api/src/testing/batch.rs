//! Owned messages and batches for tests: what a test hands a sink, and what a source
//! produced.

use serde::{de::DeserializeOwned, Serialize};

use crate::{Header, Message, Schema, SinkBatch};

/// Timestamp of the first test message (2026-01-01T00:00:00Z), one microsecond more per
/// offset, so tests see stable, distinct times.
const FIRST_TIMESTAMP_MICROS: u64 = 1_767_225_600_000_000;

/// One message, owned: handed to a sink in a [`TestBatch`], or produced by a source
/// (see [`crate::testing::SourceHarness`]).
///
/// ```
/// use ld_plugin_api::testing::TestBatch;
/// let batch = TestBatch::json([serde_json::json!({"n": 1})]);
/// let m = &batch.messages[0];
/// assert_eq!((m.offset, m.id), (0, 1));
/// assert_eq!(m.json::<serde_json::Value>().unwrap()["n"], 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestMessage {
    /// The message id.
    pub id: u128,
    /// Its offset in its partition (for a source's message: its position in the
    /// stream, counted by the harness as a stream would).
    pub offset: u64,
    /// Microseconds since the Unix epoch.
    pub timestamp_micros: u64,
    /// Payload encoding.
    pub schema: Schema,
    /// Headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The payload.
    pub payload: Vec<u8>,
}

impl TestMessage {
    /// The payload parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.payload)
    }

    /// The payload as text, if it is UTF-8.
    pub fn payload_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.payload).ok()
    }

    /// The value of the first header named `key`.
    pub fn header(&self, key: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }
}

/// A batch to hand to a sink under test, as the host would read it from a stream:
/// messages of one partition at ascending offsets. Built from JSON values, text or
/// bytes; by default on stream `test-stream`, topic `test-topic`, partition 0, at
/// offsets from 0 with message ids `offset + 1`.
///
/// ```
/// use ld_plugin_api::testing::TestBatch;
/// use serde_json::json;
///
/// let batch = TestBatch::json([json!({"n": 1}), json!({"n": 2})])
///     .on("orders", "created", 3)
///     .starting_at(100)
///     .with_header("origin", b"test");
/// assert_eq!(batch.len(), 2);
/// assert_eq!(batch.messages[1].offset, 101);
/// assert_eq!(batch.messages[1].header("origin"), Some(&b"test"[..]));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestBatch {
    /// The stream the messages come from.
    pub stream: String,
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The messages, at ascending offsets.
    pub messages: Vec<TestMessage>,
}

impl TestBatch {
    /// A batch of JSON messages, one per value.
    ///
    /// # Panics
    /// When a value cannot be serialized (a map with non-string keys).
    pub fn json<T: Serialize>(values: impl IntoIterator<Item = T>) -> Self {
        Self::of(
            Schema::Json,
            values
                .into_iter()
                .map(|v| serde_json::to_vec(&v).expect("a JSON test message")),
        )
    }

    /// A batch of text messages.
    pub fn text<S: AsRef<str>>(texts: impl IntoIterator<Item = S>) -> Self {
        Self::of(
            Schema::Text,
            texts.into_iter().map(|t| t.as_ref().as_bytes().to_vec()),
        )
    }

    /// A batch of raw byte messages.
    pub fn bytes<B: AsRef<[u8]>>(payloads: impl IntoIterator<Item = B>) -> Self {
        Self::of(
            Schema::Raw,
            payloads.into_iter().map(|b| b.as_ref().to_vec()),
        )
    }

    fn of(schema: Schema, payloads: impl Iterator<Item = Vec<u8>>) -> Self {
        let mut batch = TestBatch {
            stream: "test-stream".into(),
            topic: "test-topic".into(),
            partition: 0,
            messages: payloads
                .map(|payload| TestMessage {
                    id: 0,
                    offset: 0,
                    timestamp_micros: 0,
                    schema,
                    headers: Vec::new(),
                    payload,
                })
                .collect(),
        };
        batch = batch.starting_at(0);
        batch
    }

    /// The same messages from another stream, topic and partition.
    pub fn on(mut self, stream: &str, topic: &str, partition: u32) -> Self {
        self.stream = stream.into();
        self.topic = topic.into();
        self.partition = partition;
        self
    }

    /// The same messages at offsets from `offset` on, with ids `offset + 1` on.
    pub fn starting_at(mut self, offset: u64) -> Self {
        for (i, m) in self.messages.iter_mut().enumerate() {
            m.offset = offset + i as u64;
            m.id = u128::from(m.offset) + 1;
            m.timestamp_micros = FIRST_TIMESTAMP_MICROS + m.offset;
        }
        self
    }

    /// Adds a header to every message.
    pub fn with_header(mut self, key: &str, value: &[u8]) -> Self {
        for m in &mut self.messages {
            m.headers.push((key.to_string(), value.to_vec()));
        }
        self
    }

    /// How many messages.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether the batch has no message.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// The offset after the last message (what the host commits once the batch is
    /// durable).
    pub fn next_offset(&self) -> Option<u64> {
        self.messages.last().map(|m| m.offset + 1)
    }

    /// The headers of each message as the views a sink receives.
    pub(crate) fn header_views(&self) -> Vec<Vec<Header<'_>>> {
        self.messages
            .iter()
            .map(|m| m.headers.iter().map(|(k, v)| Header::new(k, v)).collect())
            .collect()
    }

    /// The messages as the views a sink receives, with `headers` from
    /// [`Self::header_views`].
    pub(crate) fn message_views<'a>(&'a self, headers: &'a [Vec<Header<'a>>]) -> Vec<Message<'a>> {
        self.messages
            .iter()
            .zip(headers)
            .map(|(m, h)| Message::new(m.id, m.offset, m.timestamp_micros, m.schema, h, &m.payload))
            .collect()
    }

    /// The batch as the borrowed view a sink receives, over `messages` from
    /// [`Self::message_views`].
    pub(crate) fn view<'a>(&'a self, messages: &'a [Message<'a>]) -> SinkBatch<'a> {
        SinkBatch::new(&self.stream, &self.topic, self.partition, messages)
    }
}
