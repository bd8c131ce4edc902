//! Messages as a sink sees them: views borrowed from one host buffer, never copied.

use abi_stable::{
    std_types::{RSlice, RStr},
    StableAbi,
};

/// How a message's payload is encoded.
///
/// ```
/// use ld_plugin_api::Schema;
/// assert_eq!("json".parse::<Schema>().unwrap(), Schema::Json);
/// assert_eq!(Schema::Text.as_str(), "text");
/// ```
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Schema {
    /// A JSON document (UTF-8).
    #[default]
    Json = 0,
    /// Opaque bytes.
    Raw = 1,
    /// UTF-8 text.
    Text = 2,
}

impl Schema {
    /// The name used in configs: `json`, `raw` or `text`.
    ///
    /// ```
    /// assert_eq!(ld_plugin_api::Schema::Raw.as_str(), "raw");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Schema::Json => "json",
            Schema::Raw => "raw",
            Schema::Text => "text",
        }
    }
}

impl std::str::FromStr for Schema {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "json" => Ok(Schema::Json),
            "raw" | "bytes" => Ok(Schema::Raw),
            "text" => Ok(Schema::Text),
            other => Err(format!(
                "unknown schema `{other}` (expected json, raw or text)"
            )),
        }
    }
}

/// One message header: a UTF-8 key and a byte value, both borrowed.
///
/// ```
/// use ld_plugin_api::Header;
/// let h = Header::new("trace-id", b"abc");
/// assert_eq!(h.key(), "trace-id");
/// assert_eq!(h.value(), b"abc");
/// ```
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct Header<'a> {
    key: RStr<'a>,
    value: RSlice<'a, u8>,
}

impl<'a> Header<'a> {
    /// A header borrowing its key and value.
    pub fn new(key: &'a str, value: &'a [u8]) -> Self {
        Self {
            key: RStr::from(key),
            value: RSlice::from(value),
        }
    }

    /// The header's key.
    pub fn key(&self) -> &'a str {
        self.key.as_str()
    }

    /// The header's value.
    pub fn value(&self) -> &'a [u8] {
        self.value.as_slice()
    }
}

/// One message handed to a sink. Everything is borrowed from the host's batch buffer,
/// so reading a message costs no allocation.
///
/// ```
/// use ld_plugin_api::{Message, Schema};
/// let msg = Message::new(7, 42, 1_700_000_000_000_000, Schema::Json, &[], br#"{"a":1}"#);
/// assert_eq!(msg.id(), 7);
/// assert_eq!(msg.offset(), 42);
/// assert_eq!(msg.payload_str(), Some(r#"{"a":1}"#));
/// let v: serde_json::Value = msg.json().unwrap();
/// assert_eq!(v["a"], 1);
/// ```
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct Message<'a> {
    id_hi: u64,
    id_lo: u64,
    offset: u64,
    timestamp_micros: u64,
    schema: Schema,
    headers: RSlice<'a, Header<'a>>,
    payload: RSlice<'a, u8>,
}

impl<'a> Message<'a> {
    /// A message view; the host builds these, tests of plugins may too.
    pub fn new(
        id: u128,
        offset: u64,
        timestamp_micros: u64,
        schema: Schema,
        headers: &'a [Header<'a>],
        payload: &'a [u8],
    ) -> Self {
        Self {
            id_hi: (id >> 64) as u64,
            id_lo: id as u64,
            offset,
            timestamp_micros,
            schema,
            headers: RSlice::from(headers),
            payload: RSlice::from(payload),
        }
    }

    /// The message id (unique per topic when the producer sets one).
    pub fn id(&self) -> u128 {
        (u128::from(self.id_hi) << 64) | u128::from(self.id_lo)
    }

    /// The offset of the message in its partition.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// When the message was appended, in microseconds since the Unix epoch.
    pub fn timestamp_micros(&self) -> u64 {
        self.timestamp_micros
    }

    /// How the payload is encoded.
    pub fn schema(&self) -> Schema {
        self.schema
    }

    /// The message headers.
    pub fn headers(&self) -> &'a [Header<'a>] {
        self.headers.as_slice()
    }

    /// The value of the first header with this key.
    ///
    /// ```
    /// use ld_plugin_api::{Header, Message, Schema};
    /// let headers = [Header::new("k", b"v")];
    /// let msg = Message::new(1, 0, 0, Schema::Raw, &headers, b"x");
    /// assert_eq!(msg.header("k"), Some(&b"v"[..]));
    /// assert_eq!(msg.header("missing"), None);
    /// ```
    pub fn header(&self, key: &str) -> Option<&'a [u8]> {
        self.headers()
            .iter()
            .find(|h| h.key() == key)
            .map(|h| h.value())
    }

    /// The payload bytes.
    pub fn payload(&self) -> &'a [u8] {
        self.payload.as_slice()
    }

    /// The payload as UTF-8, when it is.
    pub fn payload_str(&self) -> Option<&'a str> {
        std::str::from_utf8(self.payload()).ok()
    }

    /// The payload parsed as JSON into `T`.
    pub fn json<T: serde::de::Deserialize<'a>>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(self.payload())
    }
}

/// A batch of messages of one stream/topic/partition, handed to [`crate::Sink::consume`].
///
/// ```
/// use ld_plugin_api::{Message, Schema, SinkBatch};
/// let msgs = [Message::new(1, 10, 0, Schema::Text, &[], b"hello")];
/// let batch = SinkBatch::new("orders", "completed", 0, &msgs);
/// assert_eq!(batch.len(), 1);
/// assert_eq!(batch.topic(), "completed");
/// assert_eq!(batch.messages()[0].payload(), b"hello");
/// ```
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct SinkBatch<'a> {
    stream: RStr<'a>,
    topic: RStr<'a>,
    partition: u32,
    messages: RSlice<'a, Message<'a>>,
}

impl<'a> SinkBatch<'a> {
    /// A batch view; built by the host (and by plugin tests).
    pub fn new(
        stream: &'a str,
        topic: &'a str,
        partition: u32,
        messages: &'a [Message<'a>],
    ) -> Self {
        Self {
            stream: RStr::from(stream),
            topic: RStr::from(topic),
            partition,
            messages: RSlice::from(messages),
        }
    }

    /// The stream the messages come from.
    pub fn stream(&self) -> &'a str {
        self.stream.as_str()
    }

    /// The topic the messages come from.
    pub fn topic(&self) -> &'a str {
        self.topic.as_str()
    }

    /// The partition the messages come from.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// The messages, in offset order.
    pub fn messages(&self) -> &'a [Message<'a>] {
        self.messages.as_slice()
    }

    /// How many messages.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether the batch has no message.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }
}
