//! The embedded stream backend: a durable local log in `sled`.
//!
//! Each appended batch is stored as one value (key: partition, base offset), so a batch
//! of a thousand messages is one write, not a thousand. Offsets within a stored batch
//! are consecutive. Consumer-group offsets live in their own tree of the same database,
//! and so do source checkpoints (see [`crate::state`]): sled recovers a prefix of the
//! writes after a crash, so a checkpoint saved after its batch is never recovered
//! without that batch.

use std::{
    collections::HashMap,
    str::FromStr,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use serde::{de::Error as _, Deserialize, Deserializer, Serialize, Serializer};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{
    codec,
    settings::{one_partition, partitions},
    Appended, Capabilities, Consumer, Maintenance, MessageBatch, OpenedStream, Polled, Producer,
    SeekTo, StreamBackend, StreamError, TopicRef,
};

/// When appended data and committed offsets reach the disk: `batch`, or an interval
/// such as `100ms`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// Flush (fsync) before an append or a commit returns: nothing acknowledged is lost,
    /// even when the machine fails.
    #[default]
    Batch,
    /// Flush at this interval in the background: faster; a process crash loses
    /// nothing that was written, a machine crash may lose the last interval.
    Interval(Duration),
}

/// A durability that is neither `batch` nor a positive interval.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is neither `batch` nor an interval like 100ms")]
pub struct DurabilityError(String);

/// The one parser of a durability (config files, environment, `--durability`).
impl FromStr for Durability {
    type Err = DurabilityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "batch" {
            return Ok(Durability::Batch);
        }
        match humantime::parse_duration(s) {
            // A zero interval would flush in a busy loop.
            Ok(every) if !every.is_zero() => Ok(Durability::Interval(every)),
            _ => Err(DurabilityError(s.to_string())),
        }
    }
}

impl std::fmt::Display for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Durability::Batch => f.write_str("batch"),
            Durability::Interval(every) => write!(f, "{}", humantime::format_duration(*every)),
        }
    }
}

impl Serialize for Durability {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Durability {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }
}

/// Settings of the embedded log (`[stream] backend = "embedded"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedSettings {
    /// See [`Durability`] (default `batch`).
    #[serde(default)]
    pub durability: Durability,
    /// Partitions of a topic created on first use (a topic keeps the count it was
    /// created with).
    #[serde(default = "one_partition", deserialize_with = "partitions")]
    pub partitions: u32,
    /// Most bytes kept per topic partition (oldest batches removed first).
    #[serde(default)]
    pub retention_bytes: Option<u64>,
    /// Oldest message age kept, e.g. `7d`.
    #[serde(default, with = "humantime_serde")]
    pub retention_age: Option<Duration>,
    /// Remove a batch as soon as every consumer group that reads its partition has
    /// committed past it (a group counts from its first consumer; one that starts
    /// reading later gets only what is left; a topic no group reads keeps everything).
    /// On by default: the log, and the memory sled holds for it, stay as small as the
    /// consumers' lag (sled's memory grows with what the log holds, whatever its cache
    /// settings). `false` keeps history for groups that start later, bounded only by
    /// the retention limits.
    #[serde(default = "yes")]
    pub delete_consumed: bool,
}

impl Default for EmbeddedSettings {
    fn default() -> Self {
        Self {
            durability: Durability::Batch,
            partitions: 1,
            retention_bytes: None,
            retention_age: None,
            delete_consumed: true,
        }
    }
}

fn yes() -> bool {
    true
}

impl EmbeddedSettings {
    /// Whether old batches are ever removed.
    pub fn has_retention(&self) -> bool {
        self.retention_bytes.is_some() || self.retention_age.is_some()
    }
}

/// How often the retention limits are enforced.
const RETENTION_INTERVAL: Duration = Duration::from_secs(30);

/// The embedded log as the engine uses it: in the node's database, with its retention
/// as maintenance when limits are set.
pub(super) fn open(
    settings: &EmbeddedSettings,
    db: &sled::Db,
) -> Result<OpenedStream, StreamError> {
    let log = EmbeddedLog::open(db.clone(), *settings)?;
    let maintenance = settings.has_retention().then(|| {
        let log = log.clone();
        Maintenance::new(move |stop| log.retention(stop))
    });
    Ok(OpenedStream {
        backend: Arc::new(log),
        capabilities: EmbeddedLog::CAPABILITIES,
        maintenance,
    })
}

fn backend_err(e: sled::Error) -> StreamError {
    match e {
        sled::Error::Io(io) => StreamError::Unavailable(format!("disk: {io}")),
        sled::Error::Corruption { .. } => StreamError::Corrupt(e.to_string()),
        other => StreamError::Backend(other.to_string()),
    }
}

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

struct Partition {
    /// Next offset to assign; the lock also orders appends of the partition.
    next_offset: tokio::sync::Mutex<u64>,
}

struct Topic {
    topic: TopicRef,
    tree: sled::Tree,
    partitions: Vec<Partition>,
    /// Bumped after every append, so waiting consumers wake at once.
    appended: watch::Sender<u64>,
    round_robin: std::sync::atomic::AtomicU32,
}

/// The embedded log. Cheap to clone.
#[derive(Clone)]
pub struct EmbeddedLog {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    offsets: sled::Tree,
    source_state: sled::Tree,
    settings: EmbeddedSettings,
    topics: Mutex<HashMap<TopicRef, Arc<Topic>>>,
}

fn batch_key(partition: u32, base_offset: u64) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..4].copy_from_slice(&partition.to_be_bytes());
    key[4..].copy_from_slice(&base_offset.to_be_bytes());
    key
}

fn offset_key(group: &str, topic: &TopicRef, partition: u32) -> Vec<u8> {
    let mut key = Vec::with_capacity(group.len() + topic.stream.len() + topic.topic.len() + 7);
    for part in [group, &topic.stream, &topic.topic] {
        key.extend_from_slice(part.as_bytes());
        key.push(0);
    }
    key.extend_from_slice(&partition.to_be_bytes());
    key
}

impl EmbeddedLog {
    /// What the log offers: a checkpoint and its batch are one sled transaction, and
    /// the log's flushes (per its durability) cover the whole database, checkpoints
    /// included.
    pub const CAPABILITIES: Capabilities = Capabilities {
        atomic_checkpoint: true,
        state_store_flushes: false,
    };

    /// Opens the log in `db` (shared with the daemon's other local state).
    pub fn open(db: sled::Db, settings: EmbeddedSettings) -> Result<Self, StreamError> {
        let offsets = db.open_tree("stream/offsets").map_err(backend_err)?;
        let source_state = db
            .open_tree(crate::state::SOURCE_STATE_TREE)
            .map_err(backend_err)?;
        let log = EmbeddedLog {
            inner: Arc::new(Inner {
                db,
                offsets,
                source_state,
                settings,
                topics: Mutex::new(HashMap::new()),
            }),
        };
        if let Durability::Interval(every) = settings.durability {
            let weak = Arc::downgrade(&log.inner);
            std::thread::Builder::new()
                .name("ld-log-flush".into())
                .spawn(move || loop {
                    std::thread::sleep(every);
                    let Some(inner) = weak.upgrade() else { return };
                    if let Err(e) = inner.db.flush() {
                        tracing::error!(error = %e, "embedded log: background flush failed");
                    }
                })
                .map_err(|e| StreamError::Backend(format!("cannot start flusher: {e}")))?;
        }
        Ok(log)
    }

    /// Opens (or creates) a standalone log database in `dir`.
    pub fn open_dir(
        dir: &std::path::Path,
        settings: EmbeddedSettings,
    ) -> Result<Self, StreamError> {
        let db = crate::state::sled_config(dir).open().map_err(backend_err)?;
        Self::open(db, settings)
    }

    /// The settings in force.
    pub fn settings(&self) -> &EmbeddedSettings {
        &self.inner.settings
    }

    async fn durable(&self) -> Result<(), StreamError> {
        if self.inner.settings.durability == Durability::Batch {
            self.inner.db.flush_async().await.map_err(backend_err)?;
        }
        Ok(())
    }

    fn topic(&self, topic: &TopicRef) -> Result<Arc<Topic>, StreamError> {
        let mut topics = self.inner.topics.lock().expect("topic map poisoned");
        if let Some(t) = topics.get(topic) {
            return Ok(t.clone());
        }
        let tree_name = format!("stream/log/{}/{}", topic.stream, topic.topic);
        let tree = self.inner.db.open_tree(tree_name).map_err(backend_err)?;
        // A topic keeps the partition count it was created with.
        let meta_key = b"\xffpartitions";
        let partitions = match tree.get(meta_key).map_err(backend_err)? {
            Some(v) => u32::from_be_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| StreamError::Corrupt(format!("{topic}: bad partition count")))?,
            ),
            None => {
                let n = self.inner.settings.partitions.max(1);
                tree.insert(meta_key, &n.to_be_bytes())
                    .map_err(backend_err)?;
                n
            }
        };
        let mut parts = Vec::with_capacity(partitions as usize);
        for p in 0..partitions {
            let next = match tree
                .range(batch_key(p, 0)..=batch_key(p, u64::MAX))
                .next_back()
            {
                Some(entry) => {
                    let (_, value) = entry.map_err(backend_err)?;
                    codec::last_offset(&value)? + 1
                }
                None => 0,
            };
            parts.push(Partition {
                next_offset: tokio::sync::Mutex::new(next),
            });
        }
        let t = Arc::new(Topic {
            topic: topic.clone(),
            tree,
            partitions: parts,
            appended: watch::channel(0).0,
            round_robin: Default::default(),
        });
        topics.insert(topic.clone(), t.clone());
        Ok(t)
    }

    /// Appends a batch (the raw store path the pipeline benchmark compares against).
    pub async fn append(
        &self,
        topic: &TopicRef,
        batch: &MessageBatch,
    ) -> Result<Appended, StreamError> {
        let t = self.topic(topic)?;
        let appended = append_to(&t, batch, None).await?;
        self.durable().await?;
        Ok(appended)
    }

    /// The oldest offset still stored in a partition (retention and `delete_consumed`
    /// remove from the front), or `None` when it holds nothing.
    pub fn oldest_offset(
        &self,
        topic: &TopicRef,
        partition: u32,
    ) -> Result<Option<u64>, StreamError> {
        let t = self.topic(topic)?;
        let first = t
            .tree
            .range(batch_key(partition, 0)..=batch_key(partition, u64::MAX))
            .next()
            .transpose()
            .map_err(backend_err)?;
        first.map(|(_, v)| codec::first_offset(&v)).transpose()
    }

    /// Removes the batches of `partition` that every group committed on it has
    /// committed past, except the newest (it holds the partition's next offset);
    /// returns how many were removed.
    fn delete_consumed(&self, topic: &Topic, partition: u32) -> Result<usize, StreamError> {
        // Offset keys are `group\0stream\0topic\0partition`: the key of group "" is
        // the end of every group's key of this partition.
        let suffix = offset_key("", &topic.topic, partition);
        let mut consumed: Option<u64> = None;
        for entry in self.inner.offsets.iter() {
            let (key, value) = entry.map_err(backend_err)?;
            if key.ends_with(&suffix) {
                let next = <[u8; 8]>::try_from(value.as_ref())
                    .map(u64::from_be_bytes)
                    .map_err(|_| {
                        StreamError::Corrupt("a committed offset is not 8 bytes".into())
                    })?;
                consumed = Some(consumed.map_or(next, |c| c.min(next)));
            }
        }
        let Some(consumed) = consumed else {
            return Ok(0);
        };
        let all = batch_key(partition, 0)..=batch_key(partition, u64::MAX);
        let Some((newest, _)) = topic
            .tree
            .range(all.clone())
            .next_back()
            .transpose()
            .map_err(backend_err)?
        else {
            return Ok(0);
        };
        let mut removed = 0;
        for entry in topic.tree.range(all) {
            let (key, value) = entry.map_err(backend_err)?;
            if key == newest || codec::last_offset(&value)? >= consumed {
                break;
            }
            topic.tree.remove(key).map_err(backend_err)?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Removes batches beyond the retention limits; returns how many were removed.
    pub fn enforce_retention(&self) -> Result<usize, StreamError> {
        let settings = &self.inner.settings;
        if !settings.has_retention() {
            return Ok(0);
        }
        let topics: Vec<Arc<Topic>> = self
            .inner
            .topics
            .lock()
            .expect("topic map poisoned")
            .values()
            .cloned()
            .collect();
        let oldest_kept_micros = settings
            .retention_age
            .map(|age| now_micros().saturating_sub(age.as_micros() as u64));
        let mut removed = 0;
        for t in topics {
            for p in 0..t.partitions.len() as u32 {
                let range = batch_key(p, 0)..=batch_key(p, u64::MAX);
                let mut sizes = Vec::new();
                let mut total: u64 = 0;
                for entry in t.tree.range(range.clone()) {
                    let (key, value) = entry.map_err(backend_err)?;
                    total += value.len() as u64;
                    sizes.push((key, value.len() as u64, codec::last_timestamp(&value)?));
                }
                // Always keep the newest batch: it holds the partition's next offset.
                let keep_last = sizes.len().saturating_sub(1);
                for (key, size, last_ts) in sizes.into_iter().take(keep_last) {
                    let too_big = settings.retention_bytes.is_some_and(|max| total > max);
                    let too_old = oldest_kept_micros.is_some_and(|oldest| last_ts < oldest);
                    if !(too_big || too_old) {
                        break;
                    }
                    t.tree.remove(key).map_err(backend_err)?;
                    total -= size;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// Enforces the retention limits every [`RETENTION_INTERVAL`] until `stop` is
    /// cancelled (the maintenance job of [`open`]).
    async fn retention(self, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(RETENTION_INTERVAL) => {}
            }
            let log = self.clone();
            match tokio::task::spawn_blocking(move || log.enforce_retention()).await {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => tracing::info!(batches = n, "retention removed old batches"),
                Ok(Err(e)) => tracing::warn!(error = %e, "retention failed"),
                Err(_) => {}
            }
        }
    }

    /// The committed next offset of `group` on a partition, if any.
    pub fn committed(
        &self,
        topic: &TopicRef,
        group: &str,
        partition: u32,
    ) -> Result<Option<u64>, StreamError> {
        let value = self
            .inner
            .offsets
            .get(offset_key(group, topic, partition))
            .map_err(backend_err)?;
        value
            .map(|v| {
                v.as_ref().try_into().map(u64::from_be_bytes).map_err(|_| {
                    StreamError::Corrupt(format!("bad committed offset for {group} on {topic}"))
                })
            })
            .transpose()
    }
}

/// Appends one batch; with a checkpoint, the batch and the checkpoint are one atomic
/// write, so a crash can never keep one without the other (a source then neither loses
/// nor repeats a batch).
async fn append_to(
    t: &Topic,
    batch: &MessageBatch,
    checkpoint: Option<(&sled::Tree, &str, &[u8])>,
) -> Result<Appended, StreamError> {
    if batch.is_empty() {
        return Err(StreamError::Backend("cannot append an empty batch".into()));
    }
    let partition = t
        .round_robin
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        % t.partitions.len() as u32;
    let mut next = t.partitions[partition as usize].next_offset.lock().await;
    let base = *next;
    let value = codec::encode(batch, base, now_micros());
    let key = batch_key(partition, base);
    match checkpoint {
        None => {
            t.tree.insert(key, value).map_err(backend_err)?;
        }
        Some((state_tree, instance, state)) => {
            use sled::Transactional;
            (&t.tree, state_tree)
                .transaction(|(log, states)| {
                    log.insert(&key, value.as_slice())?;
                    states.insert(instance.as_bytes(), state)?;
                    Ok(())
                })
                .map_err(|e: sled::transaction::TransactionError<()>| match e {
                    sled::transaction::TransactionError::Storage(e) => backend_err(e),
                    sled::transaction::TransactionError::Abort(()) => {
                        StreamError::Backend("append transaction aborted".into())
                    }
                })?;
        }
    }
    *next = base + batch.len() as u64;
    drop(next);
    t.appended.send_modify(|n| *n += 1);
    Ok(Appended {
        partition,
        first_offset: base,
        last_offset: base + batch.len() as u64 - 1,
    })
}

#[async_trait]
impl StreamBackend for EmbeddedLog {
    fn name(&self) -> &'static str {
        "embedded"
    }

    async fn producer(&self, topic: &TopicRef) -> Result<Box<dyn Producer>, StreamError> {
        Ok(Box::new(EmbeddedProducer {
            log: self.clone(),
            topic: self.topic(topic)?,
        }))
    }

    async fn consumer(
        &self,
        topic: &TopicRef,
        group: &str,
    ) -> Result<Box<dyn Consumer>, StreamError> {
        let t = self.topic(topic)?;
        let mut positions = Vec::with_capacity(t.partitions.len());
        for p in 0..t.partitions.len() as u32 {
            let committed = self.committed(topic, group, p)?;
            if committed.is_none() && self.inner.settings.delete_consumed {
                // A group counts from when it starts reading: what it has not read yet
                // is kept for it.
                self.inner
                    .offsets
                    .insert(offset_key(group, topic, p), &0u64.to_be_bytes())
                    .map_err(backend_err)?;
            }
            positions.push(committed.unwrap_or(0));
        }
        Ok(Box::new(EmbeddedConsumer {
            log: self.clone(),
            appended: t.appended.subscribe(),
            topic: t,
            group: group.to_string(),
            positions,
            next_partition: 0,
        }))
    }
}

struct EmbeddedProducer {
    log: EmbeddedLog,
    topic: Arc<Topic>,
}

#[async_trait]
impl Producer for EmbeddedProducer {
    async fn append(&mut self, batch: &MessageBatch) -> Result<Appended, StreamError> {
        let appended = append_to(&self.topic, batch, None).await?;
        self.log.durable().await?;
        Ok(appended)
    }

    async fn append_checkpointed(
        &mut self,
        batch: &MessageBatch,
        checkpoint: Option<(&str, &[u8])>,
    ) -> Result<(Appended, bool), StreamError> {
        let state_tree = &self.log.inner.source_state;
        let checkpoint = checkpoint.map(|(instance, state)| (state_tree, instance, state));
        let stored = checkpoint.is_some();
        let appended = append_to(&self.topic, batch, checkpoint).await?;
        self.log.durable().await?;
        Ok((appended, stored))
    }
}

struct EmbeddedConsumer {
    log: EmbeddedLog,
    topic: Arc<Topic>,
    appended: watch::Receiver<u64>,
    group: String,
    positions: Vec<u64>,
    next_partition: u32,
}

impl EmbeddedConsumer {
    /// The offset of the first message of partition `p` stamped at or after `micros`.
    fn first_at_or_after(&self, p: u32, micros: u64) -> Result<Option<u64>, StreamError> {
        for entry in self
            .topic
            .tree
            .range(batch_key(p, 0)..=batch_key(p, u64::MAX))
        {
            let (_, value) = entry.map_err(backend_err)?;
            let first = codec::first_offset(&value)?;
            let mut batch = MessageBatch::default();
            codec::decode_into(&value, first, u32::MAX, &mut batch)?;
            let found = batch
                .iter()
                .find(|m| m.entry().timestamp_micros >= micros)
                .map(|m| m.entry().offset);
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// Reads up to `max` messages of partition `p` from the read position.
    fn read(&mut self, p: u32, max: u32) -> Result<MessageBatch, StreamError> {
        let mut out = MessageBatch::default();
        let mut position = self.positions[p as usize];
        let tree = &self.topic.tree;
        while (out.len() as u32) < max {
            // The stored batch holding `position`, or the first one after it (retention
            // may have removed what the group had not read yet).
            let holding = tree
                .range(batch_key(p, 0)..=batch_key(p, position))
                .next_back()
                .transpose()
                .map_err(backend_err)?
                .filter(|(_, v)| codec::last_offset(v).is_ok_and(|last| last >= position));
            let found = match holding {
                Some(kv) => Some(kv),
                None => tree
                    .range(batch_key(p, position)..=batch_key(p, u64::MAX))
                    .next()
                    .transpose()
                    .map_err(backend_err)?,
            };
            let Some((_, value)) = found else { break };
            let first = codec::first_offset(&value)?;
            if first > position {
                tracing::warn!(
                    topic = %self.topic.topic, group = %self.group, partition = p,
                    skipped = first - position,
                    "messages removed by retention before this group read them"
                );
                position = first;
            }
            let taken = codec::decode_into(&value, position, max - out.len() as u32, &mut out)?;
            if taken == 0 {
                break;
            }
            position += taken as u64;
        }
        self.positions[p as usize] = position;
        Ok(out)
    }
}

#[async_trait]
impl Consumer for EmbeddedConsumer {
    async fn poll(&mut self, max: u32, wait: Duration) -> Result<Polled, StreamError> {
        let deadline = tokio::time::Instant::now() + wait;
        let partitions = self.topic.partitions.len() as u32;
        loop {
            // Mark the current append count seen before looking, so an append that
            // lands after the look wakes the wait below.
            self.appended.borrow_and_update();
            for i in 0..partitions {
                let p = (self.next_partition + i) % partitions;
                let batch = self.read(p, max)?;
                if !batch.is_empty() {
                    self.next_partition = (p + 1) % partitions;
                    // Not waited for: an append in progress holds the lock, and the
                    // lag can wait for the next poll.
                    let end_offset = self.topic.partitions[p as usize]
                        .next_offset
                        .try_lock()
                        .ok()
                        .map(|next| *next);
                    return Ok(Polled {
                        partition: p,
                        batch,
                        end_offset,
                    });
                }
            }
            if tokio::time::timeout_at(deadline, self.appended.changed())
                .await
                .is_err()
            {
                return Ok(Polled::default());
            }
        }
    }

    async fn seek(&mut self, to: SeekTo) -> Result<Vec<(u32, u64)>, StreamError> {
        let mut moved = Vec::new();
        for p in 0..self.topic.partitions.len() as u32 {
            let end = *self.topic.partitions[p as usize].next_offset.lock().await;
            let oldest = self.log.oldest_offset(&self.topic.topic, p)?.unwrap_or(end);
            let target = match to {
                SeekTo::Earliest => oldest,
                SeekTo::Latest => end,
                SeekTo::Offset(offset) => offset.min(end),
                SeekTo::Timestamp(micros) => self.first_at_or_after(p, micros)?.unwrap_or(end),
            };
            self.log
                .inner
                .offsets
                .insert(
                    offset_key(&self.group, &self.topic.topic, p),
                    &target.to_be_bytes(),
                )
                .map_err(backend_err)?;
            self.positions[p as usize] = target;
            moved.push((p, target));
        }
        self.log.durable().await?;
        Ok(moved)
    }

    async fn commit(&mut self, partition: u32, next_offset: u64) -> Result<(), StreamError> {
        self.log
            .inner
            .offsets
            .insert(
                offset_key(&self.group, &self.topic.topic, partition),
                &next_offset.to_be_bytes(),
            )
            .map_err(backend_err)?;
        if self.log.inner.settings.delete_consumed {
            self.log.delete_consumed(&self.topic, partition)?;
        }
        self.log.durable().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durability_is_batch_or_a_positive_interval() {
        assert_eq!("batch".parse(), Ok(Durability::Batch));
        assert_eq!(
            "100ms".parse(),
            Ok(Durability::Interval(Duration::from_millis(100)))
        );
        for bad in ["never", "", "0s", "-1s", "Batch"] {
            let err = bad.parse::<Durability>().unwrap_err().to_string();
            assert!(err.contains(&format!("`{bad}`")), "{bad}: {err}");
        }
        for d in [
            Durability::Batch,
            Durability::Interval(Duration::from_millis(1500)),
        ] {
            assert_eq!(d.to_string().parse(), Ok(d), "{d}");
        }
    }
}
