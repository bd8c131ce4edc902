//! The `iggy` stream backend: a real Apache Iggy server through the official client
//! (`iggy` 0.11.0-edge.4, the client of the 0.9.0-edge servers), over TCP.
//!
//! # Mapping
//!
//! - A [`TopicRef`] is an Iggy stream and topic, both addressed by name. With
//!   [`IggyConfig::create_missing`] a missing stream or topic is created (topics with
//!   [`IggyConfig::partitions`] partitions); without it, [`StreamError::NoSuchTopic`].
//! - Every producer and every consumer has its own connection (a consumer is one member
//!   of its Iggy consumer group; the server splits the partitions among members).
//! - **Partitioning**: a producer writes each batch, in one `send_messages` call, to one
//!   partition chosen round-robin per batch among the topic's partitions (explicit
//!   partition ids, so the partition of a batch is always known).
//! - **Offsets on append**: taken from the server's commit confirmation
//!   (`base_offset`, the last one being `base_offset + n - 1`). A server that sends no
//!   confirmation is handled by reading the partition's current offset right after the
//!   send: exact with one producer per partition, approximate under concurrent producers
//!   (logged at debug level).
//! - **Messages**: payload bytes are sent as they are; the message id is carried (the
//!   server replaces id 0 with a random id); the entry's timestamp (now when 0) is the
//!   Iggy origin timestamp, and reads return the origin timestamp (the server's append
//!   time when a foreign producer left it 0). A batch whose timestamps span more than
//!   Iggy's per-send limit (u32 microseconds, about 71 minutes) goes out in several sends
//!   to the same partition. The schema travels per topic, in the instance configs: a
//!   message of the schema its source declared, with no headers of its own, carries no
//!   schema; any other message has the user header `ld-schema` (u8: 0 json, 1 raw,
//!   2 text). Iggy refuses an empty payload,
//!   so an empty payload is sent as one zero byte plus the header `ld-empty-payload`.
//!   Other headers become Iggy user headers (raw values; keys 1..=255 bytes, values at
//!   most 255 bytes, else the append fails). Iggy headers are a map: a repeated key keeps
//!   its last value, and headers are read back sorted by key. An empty value is stored
//!   as a `bool` header (Iggy forbids empty values) and read back as empty.
//!   Messages without an `ld-schema` header (from a source that declared its schema, or
//!   from another producer) read as the sink's configured schema ([`Schema::Raw`] when
//!   none is given), with raw/string headers as their bytes and typed headers as text.
//! - **Reading**: a consumer joins (creating it when allowed) the consumer group, asks
//!   the server which partitions it owns, and starts each one after the group's stored
//!   offset (Iggy stores the last processed offset), or at 0 when none is stored. It polls
//!   with explicit offsets from its own in-memory position and never auto-commits; a
//!   `poll` with nothing to read retries every [`IggyConfig::poll_interval`] until
//!   `wait` ran out (the server has no push). It re-reads its assignment every
//!   [`IggyConfig::assignment_refresh`] while polling, and at once after a fenced poll
//!   or a reconnect (re-joining when the server forgot it); a newly owned partition
//!   starts again at the committed offset, a lost one is dropped. A dropped consumer
//!   leaves the group (in a spawned task) so its partitions move without delay.
//!   A server keeps group members from before its restart, whose connections never come
//!   back, and leaves their partitions assigned to them: a consumer that joins (or
//!   re-joins after a reconnect) a group with more members than connected clients
//!   account for re-creates the group with its stored offsets (see
//!   `IggyConsumer::drop_stale_members`).
//! - **Topic settings**: [`StreamBackend::prepare_topic`] creates a missing topic with
//!   the durability the instance asks for (`messages_required_to_save = 1` for
//!   `write`, plus `enforce_fsync` for `fsync`).
//! - **Commit**: `commit(p, next)` stores `next - 1` for the group (nothing to store
//!   when `next` is 0).
//! - **Errors**: connection failures are [`StreamError::Unavailable`], the rest
//!   [`StreamError::Backend`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use iggy::prelude::{
    AutoLogin, Client, Consumer as IggyGroupConsumer, ConsumerGroupClient, ConsumerOffsetClient,
    Credentials, HeaderKey, HeaderKind, HeaderValue, Identifier, IggyClient, IggyDuration,
    IggyError, IggyMessage, MessageClient, Partitioning, PolledMessages, PollingStrategy,
    StreamClient, SystemClient, TopicClient, TopicCreateOptions, TopicDetails,
};
use iggy_binary_protocol::codes::SYNC_CONSUMER_GROUP_CODE;
use iggy_binary_protocol::requests::consumer_groups::SyncConsumerGroupRequest;
use iggy_binary_protocol::responses::consumer_groups::SyncConsumerGroupResponse;
use iggy_binary_protocol::{WireDecode, WireEncode};
use iggy_common::wire_conversions::identifier_to_wire;
use ld_plugin_api::Schema;
use tracing::{debug, info, warn};

use super::{
    iggy_settings::IggySettings, Appended, Capabilities, Consumer, MessageBatch, OpenedStream,
    Polled, Producer, SeekTo, StreamBackend, StreamError, TopicDurability, TopicRef,
};

/// User header carrying the payload schema (u8).
pub const SCHEMA_HEADER: &str = "ld-schema";
/// User header marking a message whose payload is empty (sent as one zero byte).
pub const EMPTY_PAYLOAD_HEADER: &str = "ld-empty-payload";

/// Where and how to reach the Iggy server.
#[derive(Debug, Clone)]
pub struct IggyConfig {
    /// TCP address, `host:port`.
    pub address: String,
    /// User to log in as.
    pub username: String,
    /// Its password.
    pub password: String,
    /// Create streams and topics (and consumer groups) that do not exist yet.
    pub create_missing: bool,
    /// Partitions of the topics this backend creates.
    pub partitions: u32,
    /// Pause between two polls that found nothing, while `poll` waits.
    pub poll_interval: Duration,
    /// How often a consumer asks the server again which partitions it owns (to pick up
    /// partitions of members that left, or of new partitions).
    pub assignment_refresh: Duration,
    /// How often the client retries to (re)connect before a call fails as
    /// [`StreamError::Unavailable`].
    pub reconnect_retries: u32,
    /// Pause between two connection attempts.
    pub reconnect_interval: Duration,
    /// How many of the task's batches a consumer fetches from the server in one poll
    /// when the topic has that many waiting; it hands them out one batch at a time.
    pub fetch_batches: u32,
}

impl Default for IggyConfig {
    fn default() -> Self {
        Self {
            address: "127.0.0.1:8090".into(),
            username: "iggy".into(),
            password: "iggy".into(),
            create_missing: true,
            partitions: 1,
            poll_interval: Duration::from_millis(20),
            assignment_refresh: Duration::from_secs(1),
            reconnect_retries: 3,
            reconnect_interval: Duration::from_millis(500),
            fetch_batches: 4,
        }
    }
}

impl From<&IggySettings> for IggyConfig {
    /// The settings of a config file, with the default timings.
    fn from(settings: &IggySettings) -> Self {
        Self {
            address: settings.address.clone(),
            username: settings.username.clone(),
            password: settings.password.expose().to_string(),
            create_missing: settings.create_missing,
            partitions: settings.partitions,
            ..Self::default()
        }
    }
}

/// The Iggy backend as the engine uses it. Nothing to maintain: the server keeps its
/// own retention.
pub(super) fn open(settings: &IggySettings) -> OpenedStream {
    OpenedStream {
        backend: Arc::new(IggyBackend::new(IggyConfig::from(settings))),
        capabilities: IggyBackend::CAPABILITIES,
        maintenance: None,
    }
}

/// The Iggy stream backend. Cheap to create: connections are opened per producer and
/// per consumer.
#[derive(Debug, Clone)]
pub struct IggyBackend {
    config: Arc<IggyConfig>,
}

impl IggyBackend {
    /// What the backend offers: the batch is on the server and the checkpoint in the
    /// node's database, so they cannot be one write, and nothing of the backend flushes
    /// that database.
    pub const CAPABILITIES: Capabilities = Capabilities {
        atomic_checkpoint: false,
        state_store_flushes: true,
    };

    /// A backend for `config`. Connects lazily.
    pub fn new(config: IggyConfig) -> Self {
        Self {
            config: Arc::new(config),
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &IggyConfig {
        &self.config
    }

    /// A new connection, logged in.
    async fn connect(&self) -> Result<Arc<IggyClient>, StreamError> {
        let c = &self.config;
        let client = IggyClient::builder()
            .with_tcp()
            .with_server_address(c.address.clone())
            .with_auto_sign_in(AutoLogin::Enabled(Credentials::UsernamePassword(
                c.username.clone(),
                secrecy::SecretString::from(c.password.clone()),
            )))
            .with_reconnection_max_retries(Some(c.reconnect_retries))
            .with_reconnection_interval(IggyDuration::from(c.reconnect_interval))
            .build()
            .map_err(|e| map_err("building the iggy client", e))?;
        client
            .connect()
            .await
            .map_err(|e| map_err(&format!("connecting to iggy at {}", c.address), e))?;
        debug!(address = %c.address, "connected to iggy");
        Ok(Arc::new(client))
    }

    /// Makes sure the stream and topic exist (creating them when allowed).
    async fn ensure_topic(
        &self,
        client: &IggyClient,
        topic: &TopicRef,
        ids: &Ids,
        durability: TopicDurability,
    ) -> Result<TopicDetails, StreamError> {
        let create = self.config.create_missing;
        let stream = match client.get_stream(&ids.stream).await {
            Ok(s) => s,
            Err(e) if is_not_found(&e) => None,
            Err(e) => return Err(map_err("reading the stream", e)),
        };
        if stream.is_none() {
            if !create {
                return Err(StreamError::NoSuchTopic(topic.clone()));
            }
            match client.create_stream(&topic.stream).await {
                Ok(_) => info!(stream = %topic.stream, "created iggy stream"),
                Err(e) if is_already_exists(&e) => {}
                Err(e) => return Err(map_err("creating the stream", e)),
            }
        }
        match client.get_topic(&ids.stream, &ids.topic).await {
            Ok(Some(details)) => return Ok(details),
            Ok(None) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(map_err("reading the topic", e)),
        }
        if !create {
            return Err(StreamError::NoSuchTopic(topic.clone()));
        }
        let options = TopicCreateOptions {
            partitions_count: Some(self.config.partitions.max(1)),
            ..topic_options(durability)
        };
        match client
            .create_topic(&ids.stream, &topic.topic, &options)
            .await
        {
            Ok(details) => {
                info!(topic = %topic, partitions = details.partitions_count, ?durability, "created iggy topic");
                if !details.partitions.is_empty() {
                    return Ok(details);
                }
            }
            Err(e) if is_already_exists(&e) => {}
            Err(e) => return Err(map_err("creating the topic", e)),
        }
        topic_details(client, ids, topic).await
    }
}

/// The options of a topic created with `durability`.
fn topic_options(durability: TopicDurability) -> TopicCreateOptions {
    match durability {
        TopicDurability::Default => TopicCreateOptions::default(),
        TopicDurability::Write => TopicCreateOptions {
            messages_required_to_save: Some(1),
            ..Default::default()
        },
        TopicDurability::Fsync => TopicCreateOptions {
            messages_required_to_save: Some(1),
            enforce_fsync: Some(true),
            ..Default::default()
        },
    }
}

/// Name identifiers of a topic.
#[derive(Debug, Clone)]
struct Ids {
    stream: Identifier,
    topic: Identifier,
}

impl Ids {
    fn of(topic: &TopicRef) -> Result<Self, StreamError> {
        Ok(Self {
            stream: named(&topic.stream)?,
            topic: named(&topic.topic)?,
        })
    }
}

/// A topic's details; [`StreamError::NoSuchTopic`] when it is gone.
async fn topic_details(
    client: &IggyClient,
    ids: &Ids,
    topic: &TopicRef,
) -> Result<TopicDetails, StreamError> {
    client
        .get_topic(&ids.stream, &ids.topic)
        .await
        .map_err(|e| map_err("reading the topic", e))?
        .ok_or_else(|| StreamError::NoSuchTopic(topic.clone()))
}

fn named(name: &str) -> Result<Identifier, StreamError> {
    Identifier::named(name)
        .map_err(|e| StreamError::Backend(format!("invalid iggy name {name:?}: {e}")))
}

/// Partition ids of a topic, sorted.
fn partition_ids(details: &TopicDetails) -> Vec<u32> {
    let mut ids: Vec<u32> = details.partitions.iter().map(|p| p.id).collect();
    if ids.is_empty() {
        // The server did not list them: Iggy numbers partitions from 0.
        ids = (0..details.partitions_count).collect();
    }
    ids.sort_unstable();
    ids
}

#[async_trait]
impl StreamBackend for IggyBackend {
    fn name(&self) -> &'static str {
        "iggy"
    }

    async fn prepare_topic(
        &self,
        topic: &TopicRef,
        durability: TopicDurability,
    ) -> Result<(), StreamError> {
        let ids = Ids::of(topic)?;
        let client = self.connect().await?;
        let prepared = self.ensure_topic(&client, topic, &ids, durability).await;
        let _ = client.disconnect().await;
        prepared.map(|_| ())
    }

    async fn producer(&self, topic: &TopicRef) -> Result<Box<dyn Producer>, StreamError> {
        let ids = Ids::of(topic)?;
        let client = self.connect().await?;
        let details = self
            .ensure_topic(&client, topic, &ids, TopicDurability::Default)
            .await?;
        let partitions = partition_ids(&details);
        if partitions.is_empty() {
            return Err(StreamError::Backend(format!(
                "iggy topic {topic} has no partition"
            )));
        }
        Ok(Box::new(IggyProducer {
            client,
            topic: topic.clone(),
            ids,
            partitions,
            next: 0,
            declared: None,
        }))
    }

    async fn consumer(
        &self,
        topic: &TopicRef,
        group: &str,
    ) -> Result<Box<dyn Consumer>, StreamError> {
        let ids = Ids::of(topic)?;
        let group_id = named(group)?;
        let client = self.connect().await?;
        self.ensure_topic(&client, topic, &ids, TopicDurability::Default)
            .await?;
        match client
            .get_consumer_group(&ids.stream, &ids.topic, &group_id)
            .await
        {
            Ok(Some(_)) => {}
            Ok(None) => create_group(&client, topic, &ids, group).await?,
            Err(e) if is_not_found(&e) => create_group(&client, topic, &ids, group).await?,
            Err(e) => return Err(map_err("reading the consumer group", e)),
        }
        let mut consumer = IggyConsumer {
            client,
            topic: topic.clone(),
            ids,
            group: IggyGroupConsumer::group(group_id),
            assigned: Vec::new(),
            cursor: 0,
            positions: HashMap::new(),
            poll_interval: self.config.poll_interval,
            assignment_refresh: self.config.assignment_refresh,
            last_sync: Instant::now(),
            assumed: Schema::Raw,
            fetch_batches: self.config.fetch_batches.max(1),
            fetched: None,
        };
        consumer.join().await?;
        consumer.drop_stale_members().await?;
        consumer.sync().await?;
        info!(topic = %topic, group, partitions = ?consumer.assigned, "joined iggy consumer group");
        Ok(Box::new(consumer))
    }
}

async fn create_group(
    client: &IggyClient,
    topic: &TopicRef,
    ids: &Ids,
    group: &str,
) -> Result<(), StreamError> {
    match client
        .create_consumer_group(&ids.stream, &ids.topic, group)
        .await
    {
        Ok(_) => {
            info!(topic = %topic, group, "created iggy consumer group");
            Ok(())
        }
        Err(e) if is_already_exists(&e) => Ok(()),
        Err(e) => Err(map_err("creating the consumer group", e)),
    }
}

/// Appends to one topic through its own connection.
struct IggyProducer {
    client: Arc<IggyClient>,
    topic: TopicRef,
    ids: Ids,
    partitions: Vec<u32>,
    next: usize,
    /// The topic's schema as the source declares it: not repeated in every message.
    declared: Option<Schema>,
}

#[async_trait]
impl Producer for IggyProducer {
    fn declare_schema(&mut self, schema: Schema) {
        self.declared = Some(schema);
    }

    async fn append(&mut self, batch: &MessageBatch) -> Result<Appended, StreamError> {
        if batch.is_empty() {
            return Err(StreamError::Backend("cannot append an empty batch".into()));
        }
        let partition = self.partitions[self.next % self.partitions.len()];
        self.next = self.next.wrapping_add(1);
        let mut messages = to_iggy_messages(batch, self.declared)?;
        let mut first_offset = None;
        let mut last_offset = 0;
        // One send per batch, unless its timestamps span more than Iggy allows in one.
        for chunk in timestamp_chunks(&messages) {
            let (first, last) = self.send(partition, &mut messages[chunk]).await?;
            first_offset.get_or_insert(first);
            last_offset = last;
        }
        Ok(Appended {
            partition,
            first_offset: first_offset.unwrap_or(0),
            last_offset,
        })
    }
}

impl IggyProducer {
    /// Sends `messages` to `partition` in one call; their first and last offsets.
    async fn send(
        &self,
        partition: u32,
        messages: &mut [IggyMessage],
    ) -> Result<(u64, u64), StreamError> {
        let count = messages.len() as u64;
        let response = self
            .client
            .send_messages(
                &self.ids.stream,
                &self.ids.topic,
                &Partitioning::partition_id(partition),
                messages,
            )
            .await
            .map_err(|e| map_err("sending messages", e))?;
        if let Some(c) = response
            .confirmations
            .iter()
            .find(|c| c.partition_id == partition)
        {
            return Ok((c.base_offset, c.base_offset + count - 1));
        }
        // No confirmation: the partition's current offset is the last message written
        // (exact unless another producer wrote to this partition meanwhile).
        let details = topic_details(&self.client, &self.ids, &self.topic).await?;
        let last = details
            .partitions
            .iter()
            .find(|p| p.id == partition)
            .map(|p| p.current_offset)
            .ok_or_else(|| {
                StreamError::Backend(format!("partition {partition} of {} is gone", self.topic))
            })?;
        debug!(topic = %self.topic, partition, last, "no send confirmation; offsets from the partition");
        Ok(((last + 1).saturating_sub(count), last))
    }
}

/// Iggy stores origin timestamps as u32 deltas from the smallest one of a send.
const MAX_TIMESTAMP_SPAN_MICROS: u64 = u32::MAX as u64;

/// Consecutive runs of `messages` whose origin timestamps span at most
/// [`MAX_TIMESTAMP_SPAN_MICROS`] (one run, the whole batch, in practice).
fn timestamp_chunks(messages: &[IggyMessage]) -> Vec<std::ops::Range<usize>> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let (mut min, mut max) = (u64::MAX, 0);
    for (i, m) in messages.iter().enumerate() {
        let t = m.header.origin_timestamp;
        let (lo, hi) = (min.min(t), max.max(t));
        if hi - lo > MAX_TIMESTAMP_SPAN_MICROS {
            chunks.push(start..i);
            start = i;
            (min, max) = (t, t);
        } else {
            (min, max) = (lo, hi);
        }
    }
    chunks.push(start..messages.len());
    chunks
}

fn schema_code(schema: Schema) -> u8 {
    match schema {
        Schema::Json => 0,
        Schema::Raw => 1,
        Schema::Text => 2,
    }
}

fn schema_of(code: u8) -> Schema {
    match code {
        0 => Schema::Json,
        2 => Schema::Text,
        _ => Schema::Raw,
    }
}

fn header_key(key: &str) -> Result<HeaderKey, StreamError> {
    HeaderKey::try_from(key).map_err(|_| {
        StreamError::Backend(format!(
            "iggy header key {key:?} must be 1 to 255 bytes long"
        ))
    })
}

/// The batch as Iggy messages (see the module docs for the mapping). A message of the
/// `declared` schema with no headers of its own carries no schema header: the sink's
/// configured schema says what it is.
fn to_iggy_messages(
    batch: &MessageBatch,
    declared: Option<Schema>,
) -> Result<Vec<IggyMessage>, StreamError> {
    let schema_key = header_key(SCHEMA_HEADER)?;
    let empty_key = header_key(EMPTY_PAYLOAD_HEADER)?;
    let mut messages = Vec::with_capacity(batch.len());
    for m in batch.iter() {
        let e = m.entry();
        let mut headers = BTreeMap::new();
        for (key, value) in m.headers() {
            let k = header_key(key)?;
            let v = if value.is_empty() {
                HeaderValue::from(false)
            } else {
                HeaderValue::try_from(value).map_err(|_| {
                    StreamError::Backend(format!(
                        "iggy header {key:?} has a {} byte value; iggy allows at most 255",
                        value.len()
                    ))
                })?
            };
            if headers.insert(k, v).is_some() {
                warn!(key, "repeated header key: iggy keeps the last value");
            }
        }
        // Headers of ours (an empty value stored as a bool) are only recognised next to
        // the schema header, so a message with headers or an empty payload keeps it.
        if Some(e.schema) != declared || !headers.is_empty() || m.payload().is_empty() {
            headers.insert(schema_key.clone(), HeaderValue::from(schema_code(e.schema)));
        }
        let payload = if m.payload().is_empty() {
            headers.insert(empty_key.clone(), HeaderValue::from(true));
            Bytes::from_static(&[0])
        } else {
            Bytes::copy_from_slice(m.payload())
        };
        let mut message = IggyMessage::builder()
            .id(e.id)
            .payload(payload)
            .maybe_user_headers((!headers.is_empty()).then_some(headers))
            .build()
            .map_err(|err| map_err("building a message", err))?;
        if e.timestamp_micros != 0 {
            message.header.origin_timestamp = e.timestamp_micros;
        }
        messages.push(message);
    }
    Ok(messages)
}

/// Appends polled messages to `batch`; returns the next offset.
fn push_polled(
    batch: &mut MessageBatch,
    messages: &[IggyMessage],
    assumed: Schema,
) -> Result<Option<u64>, StreamError> {
    let mut next = None;
    let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
    for message in messages {
        let h = &message.header;
        headers.clear();
        let mut schema = None;
        let mut empty_payload = false;
        let map = message
            .user_headers_map()
            .map_err(|e| StreamError::Corrupt(format!("iggy user headers: {e}")))?;
        if let Some(map) = &map {
            let ours = map.keys().any(|k| k.as_bytes() == SCHEMA_HEADER.as_bytes());
            for (k, v) in map {
                let key = String::from_utf8_lossy(k.as_bytes());
                match key.as_ref() {
                    SCHEMA_HEADER => schema = v.as_uint8().ok().map(schema_of),
                    EMPTY_PAYLOAD_HEADER => empty_payload = v.as_bool().unwrap_or(false),
                    _ => {
                        let value = match v.kind() {
                            HeaderKind::Raw | HeaderKind::String => v.as_bytes().to_vec(),
                            HeaderKind::Bool if ours => Vec::new(),
                            _ => v.to_string_value().into_bytes(),
                        };
                        headers.push((key.into_owned(), value));
                    }
                }
            }
        }
        let payload: &[u8] = if empty_payload { &[] } else { &message.payload };
        // The producer's timestamp (as the embedded log keeps it); the server's append
        // time when a foreign producer left it 0.
        let timestamp = if h.origin_timestamp != 0 {
            h.origin_timestamp
        } else {
            h.timestamp
        };
        batch.push(
            h.id,
            h.offset,
            timestamp,
            schema.unwrap_or(assumed),
            headers.iter().map(|(k, v)| (k.as_str(), v.as_slice())),
            payload,
        );
        next = Some(h.offset + 1);
    }
    Ok(next)
}

/// One member of an Iggy consumer group, with its own connection.
struct IggyConsumer {
    client: Arc<IggyClient>,
    topic: TopicRef,
    ids: Ids,
    group: IggyGroupConsumer,
    /// Partitions the server assigned to this member.
    assigned: Vec<u32>,
    /// Next partition to try first.
    cursor: usize,
    /// Next offset to read, per assigned partition (ahead of the committed one).
    positions: HashMap<u32, u64>,
    poll_interval: Duration,
    assignment_refresh: Duration,
    last_sync: Instant,
    /// The schema of messages without a schema header.
    assumed: Schema,
    /// See [`IggyConfig::fetch_batches`].
    fetch_batches: u32,
    /// Messages fetched but not handed out yet.
    fetched: Option<Fetched>,
}

/// Messages of one partition fetched ahead of what the task asked for.
struct Fetched {
    partition: u32,
    polled: PolledMessages,
    /// Index of the next message to hand out.
    next: usize,
}

impl IggyConsumer {
    async fn join(&self) -> Result<(), StreamError> {
        match self
            .client
            .join_consumer_group(&self.ids.stream, &self.ids.topic, &self.group.id)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_already_exists(&e) => Ok(()),
            Err(e) => Err(map_err("joining the consumer group", e)),
        }
    }

    /// Asks the server which partitions this member owns; re-joins when it is no
    /// longer a member (after a reconnect the server sees a new client).
    async fn sync(&mut self) -> Result<(), StreamError> {
        self.last_sync = Instant::now();
        for attempt in 0..2 {
            let request = SyncConsumerGroupRequest {
                stream_id: wire_id(&self.ids.stream)?,
                topic_id: wire_id(&self.ids.topic)?,
                group_id: wire_id(&self.group.id)?,
            };
            let response = self
                .client
                .send_binary_request(SYNC_CONSUMER_GROUP_CODE, request.to_bytes())
                .await
                .map_err(|e| map_err("syncing the consumer group", e))?;
            if response.is_empty() {
                // Not a member.
                if attempt == 0 {
                    debug!(topic = %self.topic, "not a group member (any more): joining");
                    self.join().await?;
                    // A reconnect: the server may have restarted, keeping members
                    // from before that will never come back.
                    self.drop_stale_members().await?;
                    continue;
                }
                self.set_assignment(Vec::new());
                return Ok(());
            }
            let (assignment, _) = SyncConsumerGroupResponse::decode(&response).map_err(|e| {
                StreamError::Backend(format!("undecodable consumer group assignment: {e}"))
            })?;
            self.set_assignment(assignment.partitions);
            return Ok(());
        }
        Ok(())
    }

    /// Works around a server that keeps consumer-group members from before its restart:
    /// their connections are gone and never come back, yet the server keeps their
    /// partitions assigned to them (and evicts only members with a connection), so the
    /// live members would wait forever. When the group has more members than the
    /// connected clients account for, the group is deleted and created again with the
    /// same stored offsets: the offsets are read first, and this member, the only one
    /// right after the re-creation and so the owner of every partition, stores them
    /// again before reading. The other live members re-join on their next call. At
    /// least once is kept: an offset stored meanwhile by another member is at most
    /// re-read, never skipped.
    async fn drop_stale_members(&mut self) -> Result<(), StreamError> {
        let Some(stale) = self.stale_members().await? else {
            return Ok(());
        };
        let client = Arc::clone(&self.client);
        let (stream, topic, group) = (&self.ids.stream, &self.ids.topic, &self.group.id);
        let details = topic_details(&client, &self.ids, &self.topic).await?;
        let mut offsets = Vec::new();
        for partition in partition_ids(&details) {
            let stored = client
                .get_consumer_offset(&self.group, stream, topic, Some(partition))
                .await
                .map_err(|e| map_err("reading the committed offset", e))?;
            if let Some(info) = stored {
                offsets.push((partition, info.stored_offset));
            }
        }
        warn!(topic = %self.topic, group = %group, stale, ?offsets,
              "the iggy server kept consumer-group members from before its restart; \
               re-creating the group with its stored offsets");
        match client.delete_consumer_group(stream, topic, group).await {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(map_err("deleting the consumer group", e)),
        }
        let name = self.group_name();
        create_group(&client, &self.topic, &self.ids, &name).await?;
        self.join().await?;
        for (partition, offset) in offsets {
            if let Err(e) = client
                .store_consumer_offset(&self.group, stream, topic, Some(partition), offset)
                .await
            {
                // Another member took the partition first: it reads from the start
                // of what it owns, so nothing is skipped.
                warn!(topic = %self.topic, partition, error = %e, "could not restore an offset");
            }
        }
        self.positions.clear();
        self.fetched = None;
        Ok(())
    }

    /// How many members of the group no connected client accounts for; `None` when
    /// there are none (or the server does not say which clients are members).
    async fn stale_members(&self) -> Result<Option<u32>, StreamError> {
        let client = &self.client;
        let (stream, topic, group) = (&self.ids.stream, &self.ids.topic, &self.group.id);
        let read = |what: &'static str| move |e| map_err(what, e);
        let Some(details) = client
            .get_consumer_group(stream, topic, group)
            .await
            .map_err(read("reading the consumer group"))?
        else {
            return Ok(None);
        };
        let stream_id = client
            .get_stream(stream)
            .await
            .map_err(read("reading the stream"))?
            .map(|s| s.id);
        let topic_id = client
            .get_topic(stream, topic)
            .await
            .map_err(read("reading the topic"))?
            .map(|t| t.id);
        let (Some(stream_id), Some(topic_id)) = (stream_id, topic_id) else {
            return Ok(None);
        };
        let is_ours = |g: &iggy_common::ConsumerGroupInfo| {
            g.stream_id == stream_id && g.topic_id == topic_id && g.group_id == details.id
        };
        // This client has just joined: if it does not find itself, the server names
        // groups differently and no count can be trusted.
        let me = client.get_me().await.map_err(read("reading this client"))?;
        if !me.consumer_groups.iter().any(is_ours) {
            debug!(topic = %self.topic, "cannot match group members to clients");
            return Ok(None);
        }
        let mut live = 0u32;
        for c in client
            .get_clients()
            .await
            .map_err(read("listing the clients"))?
        {
            if c.consumer_groups_count == 0 {
                continue;
            }
            if let Some(info) = client
                .get_client(c.client_id)
                .await
                .map_err(read("reading a client"))?
            {
                live += info.consumer_groups.iter().filter(|g| is_ours(g)).count() as u32;
            }
        }
        let stale = details.members_count.saturating_sub(live);
        Ok((stale > 0).then_some(stale))
    }

    /// The group's name, as given when the consumer was made.
    fn group_name(&self) -> String {
        match &self.group.id.kind {
            iggy::prelude::IdKind::String => self.group.id.get_string_value().unwrap_or_default(),
            _ => self.group.id.to_string(),
        }
    }

    fn set_assignment(&mut self, mut partitions: Vec<u32>) {
        partitions.sort_unstable();
        if partitions != self.assigned {
            debug!(topic = %self.topic, from = ?self.assigned, to = ?partitions, "assignment changed");
        }
        // A partition owned again later restarts at the committed offset.
        self.positions.retain(|p, _| partitions.contains(p));
        if self
            .fetched
            .as_ref()
            .is_some_and(|f| !partitions.contains(&f.partition))
        {
            self.fetched = None;
        }
        self.assigned = partitions;
    }

    /// The read position of `partition`: the committed offset + 1 the first time.
    async fn position(&mut self, partition: u32) -> Result<u64, StreamError> {
        if let Some(&p) = self.positions.get(&partition) {
            return Ok(p);
        }
        let stored = self
            .client
            .get_consumer_offset(
                &self.group,
                &self.ids.stream,
                &self.ids.topic,
                Some(partition),
            )
            .await
            .map_err(|e| map_err("reading the committed offset", e))?;
        let start = stored.map_or(0, |info| info.stored_offset + 1);
        debug!(topic = %self.topic, partition, start, "starting partition");
        self.positions.insert(partition, start);
        Ok(start)
    }

    /// Up to `count` messages of `partition` from `strategy`, without committing.
    async fn poll_partition(
        &self,
        partition: u32,
        strategy: PollingStrategy,
        count: u32,
    ) -> Result<PolledMessages, IggyError> {
        self.client
            .poll_messages(
                &self.ids.stream,
                &self.ids.topic,
                Some(partition),
                &self.group,
                &strategy,
                count,
                false,
            )
            .await
    }

    /// Stores `last` as the group's last processed offset of `partition`.
    async fn store_offset(&self, partition: u32, last: u64) -> Result<(), IggyError> {
        self.client
            .store_consumer_offset(
                &self.group,
                &self.ids.stream,
                &self.ids.topic,
                Some(partition),
                last,
            )
            .await
    }

    /// Up to `max` messages fetched earlier, as a batch.
    fn take_fetched(&mut self, max: u32) -> Result<Option<Polled>, StreamError> {
        let Some(fetched) = &mut self.fetched else {
            return Ok(None);
        };
        let end = (fetched.next + max as usize).min(fetched.polled.messages.len());
        let messages = &fetched.polled.messages[fetched.next..end];
        let mut batch = MessageBatch::with_capacity(messages.len(), messages_bytes(messages));
        push_polled(&mut batch, messages, self.assumed)?;
        let partition = fetched.partition;
        // The server's current offset is the partition's last message.
        let end_offset = Some(fetched.polled.current_offset + 1);
        fetched.next = end;
        if end == fetched.polled.messages.len() {
            self.fetched = None;
        }
        Ok(Some(Polled {
            partition,
            batch,
            end_offset,
        }))
    }

    /// One pass over the assigned partitions; `None` when none had messages. A poll
    /// asks the server for `fetch_batches` batches at once and keeps what it does not
    /// hand out yet.
    async fn poll_once(&mut self, max: u32) -> Result<Option<Polled>, StreamError> {
        if let Some(polled) = self.take_fetched(max)? {
            return Ok(Some(polled));
        }
        let n = self.assigned.len();
        for i in 0..n {
            let partition = self.assigned[(self.cursor + i) % n];
            let from = self.position(partition).await?;
            let result = self
                .poll_partition(
                    partition,
                    PollingStrategy::offset(from),
                    max.saturating_mul(self.fetch_batches),
                )
                .await;
            let polled = match result {
                Ok(polled) => polled,
                Err(e) if is_membership_lost(&e) => {
                    debug!(topic = %self.topic, error = %e, "re-syncing the group assignment");
                    self.sync().await?;
                    return Ok(None);
                }
                Err(e) => return Err(map_err("polling messages", e)),
            };
            if polled.messages.is_empty() {
                if polled.partition_id == iggy_common::RESYNC_REQUIRED_PARTITION_SENTINEL {
                    // The partition went to another member (rebalance).
                    self.sync().await?;
                    return Ok(None);
                }
                continue;
            }
            // Anything before `from` (a server may answer from the start of a batch)
            // is not handed out.
            let skip = polled
                .messages
                .iter()
                .take_while(|m| m.header.offset < from)
                .count();
            let Some(last) = polled.messages.last().map(|m| m.header.offset) else {
                continue;
            };
            if skip == polled.messages.len() {
                continue;
            }
            self.positions.insert(partition, last + 1);
            self.cursor = (self.cursor + i + 1) % n;
            self.fetched = Some(Fetched {
                partition,
                polled,
                next: skip,
            });
            return self.take_fetched(max);
        }
        Ok(None)
    }
}

fn messages_bytes(messages: &[IggyMessage]) -> usize {
    messages
        .iter()
        .map(|m| m.payload.len() + m.user_headers.as_ref().map_or(0, |h| h.len()))
        .sum()
}

fn wire_id(id: &Identifier) -> Result<iggy_binary_protocol::WireIdentifier, StreamError> {
    identifier_to_wire(id).map_err(|e| map_err("encoding an identifier", e))
}

#[async_trait]
impl Consumer for IggyConsumer {
    fn assume_schema(&mut self, schema: Schema) {
        self.assumed = schema;
    }

    async fn poll(&mut self, max: u32, wait: Duration) -> Result<Polled, StreamError> {
        let deadline = Instant::now() + wait;
        let max = max.max(1);
        loop {
            if self.assigned.is_empty() || self.last_sync.elapsed() >= self.assignment_refresh {
                self.sync().await?;
            }
            if let Some(polled) = self.poll_once(max).await? {
                return Ok(polled);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Polled {
                    partition: self.assigned.first().copied().unwrap_or(0),
                    batch: MessageBatch::default(),
                    end_offset: None,
                });
            }
            tokio::time::sleep(self.poll_interval.min(deadline - now)).await;
        }
    }

    async fn seek(&mut self, to: SeekTo) -> Result<Vec<(u32, u64)>, StreamError> {
        // Meant for a stopped sink: this consumer is then the group's only member and
        // owns every partition, which storing an offset requires.
        self.sync().await?;
        let details = topic_details(&self.client, &self.ids, &self.topic).await?;
        let mut moved = Vec::new();
        for partition in self.assigned.clone() {
            let end = details
                .partitions
                .iter()
                .find(|p| p.id == partition)
                .map_or(0, |p| {
                    if p.messages_count == 0 {
                        0
                    } else {
                        p.current_offset + 1
                    }
                });
            let target = match to {
                SeekTo::Earliest => 0,
                SeekTo::Latest => end,
                SeekTo::Offset(offset) => offset.min(end),
                SeekTo::Timestamp(micros) => self
                    .poll_partition(partition, PollingStrategy::timestamp(micros.into()), 1)
                    .await
                    .map_err(|e| map_err("finding a message by time", e))?
                    .messages
                    .first()
                    .map_or(end, |m| m.header.offset),
            };
            // Iggy stores the last processed offset: none means "from the start".
            let stored = match target.checked_sub(1) {
                None => self
                    .client
                    .delete_consumer_offset(
                        &self.group,
                        &self.ids.stream,
                        &self.ids.topic,
                        Some(partition),
                    )
                    .await
                    .or_else(|e| match e {
                        IggyError::ConsumerOffsetNotFound(_) => Ok(()),
                        e if is_not_found(&e) => Ok(()),
                        e => Err(e),
                    }),
                Some(last) => self.store_offset(partition, last).await,
            };
            stored.map_err(|e| map_err("moving the group's offset", e))?;
            self.positions.insert(partition, target);
            moved.push((partition, target));
        }
        self.fetched = None;
        Ok(moved)
    }

    async fn commit(&mut self, partition: u32, next_offset: u64) -> Result<(), StreamError> {
        let Some(last) = next_offset.checked_sub(1) else {
            return Ok(());
        };
        for attempt in 0..2 {
            match self.store_offset(partition, last).await {
                Ok(()) => return Ok(()),
                Err(e) if attempt == 0 && is_membership_lost(&e) => {
                    debug!(topic = %self.topic, error = %e, "re-joining before the commit");
                    self.sync().await?;
                }
                Err(e) => return Err(map_err("storing the consumer offset", e)),
            }
        }
        Ok(())
    }
}

impl Drop for IggyConsumer {
    /// Leaves the group at once (rather than when the server notices the closed
    /// connection), so that the partitions go to the other members without delay.
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let client = Arc::clone(&self.client);
        let ids = self.ids.clone();
        let group = self.group.id.clone();
        runtime.spawn(async move {
            if let Err(e) = client
                .leave_consumer_group(&ids.stream, &ids.topic, &group)
                .await
            {
                debug!(error = %e, "leaving the iggy consumer group");
            }
            let _ = client.disconnect().await;
        });
    }
}

fn is_not_found(e: &IggyError) -> bool {
    matches!(
        e,
        IggyError::ResourceNotFound(_)
            | IggyError::StreamIdNotFound(_)
            | IggyError::StreamNameNotFound(_)
            | IggyError::TopicIdNotFound(..)
            | IggyError::TopicNameNotFound(..)
            | IggyError::ConsumerGroupIdNotFound(..)
            | IggyError::ConsumerGroupNameNotFound(..)
    )
}

fn is_already_exists(e: &IggyError) -> bool {
    matches!(
        e,
        IggyError::StreamNameAlreadyExists(_)
            | IggyError::TopicNameAlreadyExists(..)
            | IggyError::ConsumerGroupNameAlreadyExists(..)
    )
}

fn is_membership_lost(e: &IggyError) -> bool {
    matches!(
        e,
        IggyError::ConsumerGroupMemberNotFound(..) | IggyError::ConsumerGroupPartitionNotOwned(..)
    )
}

fn is_connection_error(e: &IggyError) -> bool {
    matches!(
        e,
        IggyError::Disconnected
            | IggyError::CannotEstablishConnection
            | IggyError::StaleClient
            | IggyError::TcpError
            | IggyError::QuicError
            | IggyError::NotConnected
            | IggyError::ConnectionClosed
            | IggyError::IoError(_)
            | IggyError::TaskTimeout
            | IggyError::TransientNotCommitted
            | IggyError::TransientNotAccepted
            | IggyError::CannotSendMessagesDueToClientDisconnection
            | IggyError::WebSocketConnectionError
    )
}

/// Connection failures are transient ([`StreamError::Unavailable`]), the rest not.
fn map_err(what: &str, e: IggyError) -> StreamError {
    if is_connection_error(&e) {
        StreamError::Unavailable(format!("iggy: {what}: {e}"))
    } else {
        StreamError::Backend(format!("iggy: {what}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ts: &[u64]) -> Vec<IggyMessage> {
        ts.iter()
            .map(|&t| {
                let mut m = IggyMessage::builder()
                    .payload(Bytes::from_static(b"x"))
                    .build()
                    .unwrap();
                m.header.origin_timestamp = t;
                m
            })
            .collect()
    }

    #[test]
    fn timestamps_split_sends_only_beyond_the_span_limit() {
        let max = MAX_TIMESTAMP_SPAN_MICROS;
        assert_eq!(timestamp_chunks(&at(&[5, 1, max + 1])), vec![0..3]);
        assert_eq!(timestamp_chunks(&at(&[5, max + 6, 6])), vec![0..1, 1..3]);
        assert_eq!(
            timestamp_chunks(&at(&[0, max * 3, 1, 2])),
            vec![0..1, 1..2, 2..4]
        );
    }

    #[test]
    fn messages_carry_schema_headers_and_empty_payloads() {
        let mut batch = MessageBatch::default();
        batch.push(
            3,
            0,
            42,
            Schema::Text,
            [("k", &b"v"[..]), ("e", &b""[..])],
            b"",
        );
        let messages = to_iggy_messages(&batch, Some(Schema::Text)).unwrap();
        assert_eq!(messages[0].header.id, 3);
        assert_eq!(messages[0].header.origin_timestamp, 42);
        assert_eq!(&messages[0].payload[..], &[0]);
        let polled = PolledMessages {
            partition_id: 0,
            current_offset: 0,
            count: 1,
            messages,
        };
        let mut back = MessageBatch::default();
        assert_eq!(
            push_polled(&mut back, &polled.messages, Schema::Raw).unwrap(),
            Some(1)
        );
        let m = back.iter().next().unwrap();
        assert_eq!(m.entry().schema, Schema::Text);
        assert_eq!(m.entry().timestamp_micros, 42);
        assert_eq!(m.payload(), b"");
        assert_eq!(
            m.headers().collect::<Vec<_>>(),
            vec![("e", &b""[..]), ("k", &b"v"[..])]
        );
        let too_long = [0u8; 256];
        let mut batch = MessageBatch::default();
        batch.push(1, 0, 0, Schema::Raw, [("k", &too_long[..])], b"x");
        assert!(matches!(
            to_iggy_messages(&batch, None),
            Err(StreamError::Backend(_))
        ));
    }

    #[test]
    fn a_message_of_the_declared_schema_carries_no_header() {
        let mut batch = MessageBatch::default();
        batch.push(1, 0, 0, Schema::Json, [], br#"{"a":1}"#);
        batch.push(2, 0, 0, Schema::Text, [], b"text");
        let messages = to_iggy_messages(&batch, Some(Schema::Json)).unwrap();
        assert!(
            messages[0].user_headers.is_none(),
            "json: declared, no header"
        );
        assert!(messages[1].user_headers.is_some(), "text: says so itself");
        // Undeclared (an old producer): every message says its schema.
        let undeclared = to_iggy_messages(&batch, None).unwrap();
        assert!(undeclared.iter().all(|m| m.user_headers.is_some()));
        // Read back: the headerless one takes the sink's schema, the other its own.
        let polled = PolledMessages {
            partition_id: 0,
            current_offset: 1,
            count: 2,
            messages,
        };
        let mut back = MessageBatch::default();
        push_polled(&mut back, &polled.messages, Schema::Json).unwrap();
        let schemas: Vec<Schema> = back.iter().map(|m| m.entry().schema).collect();
        assert_eq!(schemas, vec![Schema::Json, Schema::Text]);
    }
}
