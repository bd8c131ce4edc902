//! The sink task: read a batch, transform it, hand it to the plugin, and commit its
//! offset only once the plugin says the batch is durable (`flush`: at once for most
//! sinks, later for sinks that hold batches). The next batch is read while the plugin
//! writes the current one.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use ld_plugin_api::SinkBatch;
use tokio_util::sync::CancellationToken;

use super::{
    dead_letter::{DeadLetters, Origin, SetAside},
    deadline, open_plugin, with_retries, CallPolicy, InstanceMetrics, TaskError, STREAM_RETRY,
};
use crate::{
    config::{ErrorPolicy, SinkStream},
    plugin_host::SinkHandle,
    stream::{Consumer, Polled, StreamBackend, StreamError, TopicRef},
    transform::{self, Transform},
};

/// Everything a sink task needs.
pub struct SinkTask {
    /// Instance key (default consumer group: `ld-<key>`).
    pub instance_key: String,
    /// Streams and topics to read.
    pub streams: Vec<SinkStream>,
    /// Transforms, in order.
    pub transforms: Vec<Transform>,
    /// What happens to a message a transform cannot process.
    pub errors: ErrorPolicy,
    /// The plugin instance, not yet opened.
    pub plugin: SinkHandle,
    /// Where to read from.
    pub backend: Arc<dyn StreamBackend>,
    /// Deadlines and retries.
    pub policy: CallPolicy,
    /// Counters.
    pub metrics: Arc<InstanceMetrics>,
}

/// Longest a lone reader waits for data before polling again.
const IDLE_WAIT: Duration = Duration::from_secs(1);

struct Reader {
    topic: TopicRef,
    consumer: Box<dyn Consumer>,
    batch_length: u32,
    poll_interval: Duration,
}

/// Runs the sink until `shutdown` fires (then finishes the batch in hand, commits it
/// and closes the plugin) or a failure it cannot retry.
pub async fn run_sink(task: SinkTask, shutdown: CancellationToken) -> Result<(), TaskError> {
    let SinkTask {
        instance_key,
        streams,
        transforms,
        errors,
        mut plugin,
        backend,
        policy,
        metrics,
    } = task;
    if !open_plugin(&mut plugin, &policy, &metrics, &shutdown).await? {
        return Ok(());
    }
    let mut stage = Stage {
        dead_letters: DeadLetters::open(&*backend, &errors, &instance_key).await?,
        transforms,
    };

    let mut readers = Vec::new();
    for s in &streams {
        let group = s
            .consumer_group
            .clone()
            .unwrap_or_else(|| format!("ld-{instance_key}"));
        for topic in &s.topics {
            let topic = TopicRef::new(&s.stream, topic);
            backend.prepare_topic(&topic, s.durability).await?;
            let mut consumer = backend.consumer(&topic, &group).await?;
            consumer.assume_schema(s.schema);
            readers.push(Reader {
                topic,
                consumer,
                batch_length: s.batch_length,
                poll_interval: s.poll_interval,
            });
        }
    }
    if readers.is_empty() {
        return Err(TaskError::Config("a sink needs at least one topic".into()));
    }

    let mut ledger = Ledger::default();
    let mut result = consume_loop(
        &mut readers,
        &mut stage,
        &mut plugin,
        &mut ledger,
        &policy,
        &metrics,
        &shutdown,
    )
    .await;
    if result.is_ok() && ledger.holds_uncommitted() {
        // Stopping: the plugin writes out what it holds, then those offsets commit.
        result = ledger
            .settle(
                &mut readers,
                &mut plugin,
                true,
                &policy,
                &metrics,
                &shutdown,
            )
            .await;
    }
    let closed = tokio::time::timeout(policy.call_timeout, plugin.close()).await;
    match closed {
        Ok(Err(error)) => tracing::warn!(%error, "close failed"),
        Err(_) => tracing::warn!("close did not finish in time"),
        Ok(Ok(())) => {}
    }
    result
}

/// Polls the readers in turn; waits (up to each one's poll interval) only when the last
/// round found nothing anywhere.
async fn poll_any(
    readers: &mut [Reader],
    next: &mut usize,
    idle: bool,
) -> Result<Option<(usize, Polled)>, StreamError> {
    let n = readers.len();
    for i in 0..n {
        let idx = (*next + i) % n;
        let r = &mut readers[idx];
        // With one reader, wait on it: backends return as soon as data arrives (the
        // embedded log is woken by the append), so a long wait costs no latency and
        // keeps an idle sink from waking hundreds of times a second. With several,
        // only wait after an idle round, and no longer than the poll interval.
        let wait = if n == 1 {
            r.poll_interval.max(IDLE_WAIT)
        } else if idle {
            r.poll_interval
        } else {
            Duration::ZERO
        };
        let polled = r.consumer.poll(r.batch_length, wait).await?;
        if !polled.batch.is_empty() {
            *next = (idx + 1) % n;
            return Ok(Some((idx, polled)));
        }
    }
    Ok(None)
}

/// Batches handed to the plugin whose offsets are not committed yet, in order.
///
/// Batches the plugin accepted are numbered from 1 (`consumed`); the plugin's `flush`
/// says up to which number they are durable, and only those offsets are committed. A
/// batch that transforms emptied entirely takes the number of the batch before it, so
/// it commits together with that one.
#[derive(Default)]
struct Ledger {
    consumed: u64,
    durable: u64,
    uncommitted: VecDeque<Uncommitted>,
}

struct Uncommitted {
    seq: u64,
    reader: usize,
    partition: u32,
    next_offset: u64,
}

impl Ledger {
    /// Records a batch that went through: `handed` when the plugin consumed it.
    fn record(&mut self, reader: usize, partition: u32, next_offset: u64, handed: bool) {
        if handed {
            self.consumed += 1;
        }
        self.uncommitted.push_back(Uncommitted {
            seq: self.consumed,
            reader,
            partition,
            next_offset,
        });
    }

    fn holds_uncommitted(&self) -> bool {
        !self.uncommitted.is_empty()
    }

    /// Asks the plugin what is durable (unless everything consumed already is) and
    /// commits the offsets of those batches: the last offset per reader and partition.
    async fn settle(
        &mut self,
        readers: &mut [Reader],
        plugin: &mut SinkHandle,
        closing: bool,
        policy: &CallPolicy,
        metrics: &InstanceMetrics,
        shutdown: &CancellationToken,
    ) -> Result<(), TaskError> {
        if !self
            .flush(plugin, closing, policy, metrics, shutdown)
            .await?
        {
            return Ok(());
        }
        for due in self.take_due() {
            due.commit(readers, metrics, shutdown).await?;
        }
        Ok(())
    }

    /// Asks the plugin what is durable, unless everything consumed already is; false
    /// when shutdown came while waiting to retry.
    async fn flush(
        &mut self,
        plugin: &mut SinkHandle,
        closing: bool,
        policy: &CallPolicy,
        metrics: &InstanceMetrics,
        shutdown: &CancellationToken,
    ) -> Result<bool, TaskError> {
        if self.durable < self.consumed {
            let consumed = self.consumed;
            let flushed = with_retries!(
                "flush",
                &policy.retry,
                metrics,
                shutdown,
                deadline("flush", policy, plugin.flush(consumed, closing))
            )?;
            let Some(durable) = flushed else {
                return Ok(false);
            };
            // A plugin cannot make more durable than it was given.
            self.durable = durable.clamp(self.durable, self.consumed);
        }
        Ok(true)
    }

    /// The offsets now due for a commit (the batches the plugin made durable): the last
    /// offset per reader and partition.
    fn take_due(&mut self) -> Vec<Due> {
        let mut due: Vec<Due> = Vec::new();
        while let Some(u) = self.uncommitted.front() {
            if u.seq > self.durable {
                break;
            }
            let u = self.uncommitted.pop_front().expect("front exists");
            match due
                .iter_mut()
                .find(|d| d.reader == u.reader && d.partition == u.partition)
            {
                Some(entry) => entry.next_offset = u.next_offset,
                None => due.push(Due {
                    reader: u.reader,
                    partition: u.partition,
                    next_offset: u.next_offset,
                }),
            }
        }
        due
    }
}

/// An offset due for a commit.
#[derive(Debug, Clone, Copy)]
struct Due {
    reader: usize,
    partition: u32,
    next_offset: u64,
}

impl Due {
    async fn commit(
        self,
        readers: &mut [Reader],
        metrics: &InstanceMetrics,
        shutdown: &CancellationToken,
    ) -> Result<(), TaskError> {
        commit(
            &mut readers[self.reader],
            self.partition,
            self.next_offset,
            metrics,
            shutdown,
        )
        .await
    }
}

async fn consume_loop(
    readers: &mut [Reader],
    stage: &mut Stage,
    plugin: &mut SinkHandle,
    ledger: &mut Ledger,
    policy: &CallPolicy,
    metrics: &InstanceMetrics,
    shutdown: &CancellationToken,
) -> Result<(), TaskError> {
    let mut next = 0;
    let mut idle = false;
    let mut pending: Option<(usize, Polled)> = None;
    // Offsets due after the last batch, committed while the plugin consumes the next
    // one (off the hot path, at most one batch behind).
    let mut carried: Vec<Due> = Vec::new();
    'batches: loop {
        let (idx, polled) = match pending.take() {
            Some(p) => p,
            None => {
                let polled = tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => break 'batches,
                    polled = poll_any(readers, &mut next, idle) => polled?,
                };
                match polled {
                    Some(p) => {
                        idle = false;
                        p
                    }
                    None => {
                        idle = true;
                        for due in carried.drain(..) {
                            due.commit(readers, metrics, shutdown).await?;
                        }
                        // Nothing new: a sink holding batches may have some due by now.
                        if ledger.holds_uncommitted() {
                            ledger
                                .settle(readers, plugin, false, policy, metrics, shutdown)
                                .await?;
                        }
                        continue;
                    }
                }
            }
        };
        let topic = readers[idx].topic.clone();
        let partition = polled.partition;
        let next_offset = polled.batch.last_offset().map_or(0, |o| o + 1);

        // The last batch's offsets of other readers commit now (a sink of several
        // topics); those of this reader while the plugin consumes this batch.
        let mut here = Vec::new();
        for due in carried.drain(..) {
            if due.reader == idx {
                here.push(due);
            } else {
                due.commit(readers, metrics, shutdown).await?;
            }
        }
        // Deliver this batch while committing the last one and reading the next one
        // from the same reader.
        let deliver = deliver(&topic, polled, stage, plugin, policy, metrics, shutdown);
        let reader = &mut readers[idx];
        let prefetch = async {
            for due in here {
                commit(
                    &mut *reader,
                    due.partition,
                    due.next_offset,
                    metrics,
                    shutdown,
                )
                .await?;
            }
            if shutdown.is_cancelled() {
                return Ok(Polled::default());
            }
            Ok::<_, TaskError>(
                reader
                    .consumer
                    .poll(reader.batch_length, Duration::ZERO)
                    .await?,
            )
        };
        let (delivered, prefetched) = tokio::join!(deliver, prefetch);
        match delivered? {
            // Abandoned on shutdown before the plugin succeeded: not committed, so the
            // batch comes again after a restart.
            Delivered::Abandoned => break,
            Delivered::Consumed => ledger.record(idx, partition, next_offset, true),
            Delivered::AllFiltered => ledger.record(idx, partition, next_offset, false),
        }
        let prefetched = prefetched?;
        if !ledger
            .flush(plugin, false, policy, metrics, shutdown)
            .await?
        {
            return Ok(());
        }
        carried = ledger.take_due();
        if !prefetched.batch.is_empty() {
            pending = Some((idx, prefetched));
        }
        if shutdown.is_cancelled() {
            break;
        }
    }
    // Stopping: what is due commits before the task ends.
    for due in carried {
        due.commit(readers, metrics, shutdown).await?;
    }
    Ok(())
}

/// What a batch goes through before the plugin: the transforms, and the dead-letter
/// topic for messages they cannot process (when the instance tolerates them).
struct Stage {
    transforms: Vec<Transform>,
    dead_letters: Option<DeadLetters>,
}

/// What became of one polled batch.
enum Delivered {
    /// The plugin consumed it.
    Consumed,
    /// Transforms dropped every message: nothing to write, the offset still moves on.
    AllFiltered,
    /// Shutdown came while waiting to retry it.
    Abandoned,
}

/// Transforms and hands one batch to the plugin.
async fn deliver(
    topic: &TopicRef,
    polled: Polled,
    stage: &mut Stage,
    plugin: &mut SinkHandle,
    policy: &CallPolicy,
    metrics: &InstanceMetrics,
    shutdown: &CancellationToken,
) -> Result<Delivered, TaskError> {
    let before = polled.batch.len();
    metrics.taken_in(before);
    if let Some(last) = polled.batch.last_offset() {
        metrics.set_read(topic, polled.partition, last + 1, polled.end_offset);
    }
    let batch = match &mut stage.dead_letters {
        Some(dead) if !stage.transforms.is_empty() => {
            let mut failed = Vec::new();
            let out = transform::apply_tolerant(&stage.transforms, &polled.batch, &mut failed);
            let origin = Origin {
                topic,
                partition: Some(polled.partition),
            };
            dead.send(
                origin,
                &polled.batch,
                &SetAside::from_transforms(failed),
                metrics,
                shutdown,
            )
            .await?;
            out
        }
        _ => transform::apply(&stage.transforms, polled.batch)?,
    };
    let dropped = before - batch.len();
    if dropped > 0 {
        metrics
            .filtered
            .fetch_add(dropped as u64, std::sync::atomic::Ordering::Relaxed);
    }
    if batch.is_empty() {
        return Ok(Delivered::AllFiltered);
    }
    let mut headers = Vec::new();
    batch.header_views(&mut headers);
    let mut views = Vec::with_capacity(batch.len());
    batch.message_views(&headers, &mut views);
    let payload_bytes: usize = batch.entries.iter().map(|e| e.payload_len as usize).sum();
    let started = std::time::Instant::now();
    let consumed = with_retries!(
        "consume",
        &policy.retry,
        metrics,
        shutdown,
        deadline(
            "consume",
            policy,
            plugin.consume(SinkBatch::new(
                &topic.stream,
                &topic.topic,
                polled.partition,
                &views
            ))
        )
    )?;
    if consumed.is_none() {
        return Ok(Delivered::Abandoned);
    }
    metrics.batch_latency.observe(started.elapsed());
    let rejected = plugin.rejected().map_err(|error| TaskError::Plugin {
        call: "rejected",
        error,
    })?;
    let rejected_count = if rejected.is_empty() {
        0
    } else {
        set_aside_rejected(
            topic,
            polled.partition,
            &batch,
            rejected,
            stage,
            metrics,
            shutdown,
        )
        .await?
    };
    metrics.delivered(batch.len() - rejected_count, payload_bytes);
    Ok(Delivered::Consumed)
}

/// Sets aside the messages of a consumed batch the plugin rejected, as the instance's
/// `errors` setting says: into the dead-letter topic (stage `sink`), or failing the
/// task with the first one. Returns how many were set aside.
async fn set_aside_rejected(
    topic: &TopicRef,
    partition: u32,
    batch: &crate::stream::MessageBatch,
    rejected: Vec<ld_plugin_api::Rejection>,
    stage: &mut Stage,
    metrics: &InstanceMetrics,
    shutdown: &CancellationToken,
) -> Result<usize, TaskError> {
    let mut set_aside = Vec::with_capacity(rejected.len());
    for rejection in rejected {
        let offset = rejection.offset();
        // Offsets in a batch are ascending.
        let Ok(index) = batch.entries.binary_search_by_key(&offset, |e| e.offset) else {
            tracing::warn!(
                offset,
                reason = rejection.reason(),
                "the sink rejected an offset that is not in the batch; ignored"
            );
            continue;
        };
        set_aside.push(SetAside {
            index,
            stage: "sink".to_string(),
            reason: rejection.reason().to_string(),
        });
    }
    // In offset order, each message once.
    set_aside.sort_by_key(|s| s.index);
    set_aside.dedup_by_key(|s| s.index);
    let Some(dead) = &mut stage.dead_letters else {
        return match set_aside.first() {
            Some(first) => Err(TaskError::Rejected {
                topic: topic.clone(),
                partition,
                offset: batch.entries[first.index].offset,
                reason: first.reason.clone(),
            }),
            None => Ok(0),
        };
    };
    let origin = Origin {
        topic,
        partition: Some(partition),
    };
    dead.send(origin, batch, &set_aside, metrics, shutdown)
        .await?;
    Ok(set_aside.len())
}

async fn commit(
    reader: &mut Reader,
    partition: u32,
    next_offset: u64,
    metrics: &InstanceMetrics,
    shutdown: &CancellationToken,
) -> Result<(), TaskError> {
    // Cancelled while waiting to retry: the offset stays where it was, and the batches
    // after it come again after a restart.
    let committed = with_retries!("offset commit", &STREAM_RETRY, metrics, shutdown, async {
        Ok::<_, TaskError>(reader.consumer.commit(partition, next_offset).await?)
    })?;
    if committed.is_some() {
        metrics.set_committed(&reader.topic, partition, next_offset);
    }
    Ok(())
}
