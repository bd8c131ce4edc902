//! The source task: poll the plugin, transform, append to the topic(s), then save the
//! plugin's new state, then tell the plugin the batch is committed.
//!
//! Appending runs on a companion task while the plugin is polled for the next batch; the
//! channel between them holds one batch, so a source never runs more than one batch
//! ahead of the stream.

use std::{sync::Arc, time::Duration};

use ld_plugin_api::ffi::RawSourceBatch;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{
    dead_letter::{DeadLetters, Origin, SetAside},
    deadline, open_plugin, with_retries, CallPolicy, InstanceMetrics, LeasedCheckpoints,
    SharedCheckpointError, TaskError, STREAM_RETRY,
};
use crate::{
    config::{ErrorPolicy, SourceStream},
    plugin_host::SourceHandle,
    state::StateStore,
    stream::{embedded::now_micros, MessageBatch, Producer, StreamBackend, TopicRef},
    transform::{self, Transform},
};

/// Everything a source task needs.
pub struct SourceTask {
    /// Instance key (the key of its saved state).
    pub instance_key: String,
    /// Topics written; each batch goes to every one, in order.
    pub streams: Vec<SourceStream>,
    /// Transforms, in order.
    pub transforms: Vec<Transform>,
    /// What happens to a message a transform cannot process.
    pub errors: ErrorPolicy,
    /// The plugin instance (built with the last saved state), not yet opened.
    pub plugin: SourceHandle,
    /// Where to append.
    pub backend: Arc<dyn StreamBackend>,
    /// Where checkpoints are saved.
    pub state: StateStore,
    /// Deadlines and retries.
    pub policy: CallPolicy,
    /// Counters.
    pub metrics: Arc<InstanceMetrics>,
    /// Where checkpoints are also shared with other nodes, under the source's lease
    /// (a node of a supervisor); `None` when only this node runs it (`local`).
    pub shared: Option<LeasedCheckpoints>,
}

struct Job {
    seq: u64,
    batch: MessageBatch,
    state: Option<Vec<u8>>,
}

/// Converts a plugin batch into a stored batch: ids assigned where the plugin left 0,
/// timestamps where it left 0.
fn to_message_batch(raw: &RawSourceBatch) -> MessageBatch {
    let now = now_micros();
    let mut batch = MessageBatch::with_capacity(raw.len(), raw.byte_len());
    for m in raw.iter() {
        let id = match m.id() {
            0 => uuid::Uuid::now_v7().as_u128(),
            id => id,
        };
        let ts = match m.timestamp_micros() {
            0 => now,
            ts => ts,
        };
        batch.push(id, 0, ts, m.schema(), m.headers(), m.payload());
    }
    batch
}

/// Runs the source until `shutdown` fires (then stops polling, lets the batch being
/// appended finish, and closes the plugin) or a failure it cannot retry.
pub async fn run_source(task: SourceTask, shutdown: CancellationToken) -> Result<(), TaskError> {
    let SourceTask {
        instance_key,
        streams,
        transforms,
        errors,
        mut plugin,
        backend,
        state,
        policy,
        metrics,
        shared,
    } = task;
    if streams.is_empty() {
        return Err(TaskError::Config(
            "a source needs at least one topic".into(),
        ));
    }
    let mut producers: Vec<(TopicRef, Box<dyn Producer>)> = Vec::new();
    for s in &streams {
        let topic = TopicRef::new(&s.stream, &s.topic);
        backend.prepare_topic(&topic, s.durability).await?;
        let mut producer = backend.producer(&topic).await?;
        producer.declare_schema(s.schema);
        producers.push((topic, producer));
    }
    let mut stage = Stage {
        dead_letters: DeadLetters::open(&*backend, &errors, &instance_key).await?,
        topic: producers[0].0.clone(),
        transforms,
    };
    if !open_plugin(&mut plugin, &policy, &metrics, &shutdown).await? {
        return Ok(());
    }

    let (jobs, job_rx) = mpsc::channel::<Job>(1);
    let (done_tx, mut done) = mpsc::unbounded_channel::<Result<u64, TaskError>>();
    let appender = tokio::spawn(append_loop(
        job_rx,
        done_tx,
        producers,
        AppendContext {
            state,
            instance_key: instance_key.clone(),
            metrics: metrics.clone(),
            shutdown: shutdown.clone(),
            shared,
        },
    ));

    let result = poll_loop(
        &mut plugin,
        &mut stage,
        &jobs,
        &mut done,
        &policy,
        &metrics,
        &shutdown,
    )
    .await;
    // Let the appender finish what it holds, then acknowledge it to the plugin.
    drop(jobs);
    let appended = appender.await;
    let mut final_result = result;
    while let Ok(done) = done.try_recv() {
        match done {
            Ok(seq) => {
                if let Err(error) = plugin.committed(seq).await {
                    tracing::warn!(%error, seq, "committed notification failed");
                }
            }
            Err(e) => {
                if final_result.is_ok() {
                    final_result = Err(e);
                }
            }
        }
    }
    if let Err(join) = appended {
        tracing::error!(error = %join, "appender task failed");
    }
    match tokio::time::timeout(policy.call_timeout, plugin.close()).await {
        Ok(Err(error)) => tracing::warn!(%error, "close failed"),
        Err(_) => tracing::warn!("close did not finish in time"),
        Ok(Ok(())) => {}
    }
    final_result
}

/// What a polled batch goes through before it is appended: the transforms, and the
/// dead-letter topic for messages they cannot process (when the instance tolerates
/// them).
struct Stage {
    transforms: Vec<Transform>,
    dead_letters: Option<DeadLetters>,
    /// Where the batches go (named in the dead letters' headers).
    topic: TopicRef,
}

async fn poll_loop(
    plugin: &mut SourceHandle,
    stage: &mut Stage,
    jobs: &mpsc::Sender<Job>,
    done: &mut mpsc::UnboundedReceiver<Result<u64, TaskError>>,
    policy: &CallPolicy,
    metrics: &InstanceMetrics,
    shutdown: &CancellationToken,
) -> Result<(), TaskError> {
    let mut seq = 0u64;
    let mut committed: Vec<u64> = Vec::new();
    loop {
        for s in committed.drain(..) {
            if let Err(error) = plugin.committed(s).await {
                metrics.error(super::plugin_error_kind(&error));
                tracing::warn!(%error, seq = s, "committed notification failed");
            }
        }
        // Poll, keeping an eye on the appender: a failed append stops the task, and
        // finished appends are acknowledged once the poll is over.
        let polled = with_retries!("poll", &policy.retry, metrics, shutdown, async {
            let poll = deadline("poll", policy, plugin.poll());
            tokio::pin!(poll);
            loop {
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => return Ok(Poll::Shutdown),
                    Some(result) = done.recv() => match result {
                        Ok(seq) => committed.push(seq),
                        Err(e) => return Ok(Poll::AppendFailed(e)),
                    },
                    polled = &mut poll => return polled.map(Poll::Batch),
                }
            }
        })?;
        let raw = match polled {
            None | Some(Poll::Shutdown) => return Ok(()),
            Some(Poll::AppendFailed(e)) => return Err(e),
            Some(Poll::Batch(raw)) => raw,
        };
        let mut raw = raw;
        let state = raw.take_state();
        if raw.is_empty() && state.is_none() {
            continue;
        }
        let before = raw.len();
        metrics.taken_in(before);
        let batch = match &mut stage.dead_letters {
            Some(dead) if !stage.transforms.is_empty() => {
                let produced = to_message_batch(&raw);
                let mut failed = Vec::new();
                let out = transform::apply_tolerant(&stage.transforms, &produced, &mut failed);
                let origin = Origin {
                    topic: &stage.topic,
                    partition: None,
                };
                dead.send(
                    origin,
                    &produced,
                    &SetAside::from_transforms(failed),
                    metrics,
                    shutdown,
                )
                .await?;
                out
            }
            _ => transform::apply(&stage.transforms, to_message_batch(&raw))?,
        };
        drop(raw);
        metrics.filtered.fetch_add(
            (before - batch.len()) as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        seq += 1;
        let job = Job { seq, batch, state };
        // Wait for room (the appender holds at most one batch), acknowledging finished
        // appends meanwhile. At shutdown the batch is dropped unappended; its state was
        // not saved, so the source produces it again after a restart.
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ok(()),
                Some(result) = done.recv() => committed.push(result?),
                permit = jobs.reserve() => match permit {
                    Ok(permit) => {
                        permit.send(job);
                        break;
                    }
                    Err(_) => return Ok(()),
                },
            }
        }
    }
}

/// What one poll came to.
enum Poll {
    Batch(RawSourceBatch),
    Shutdown,
    /// The appender failed meanwhile (after its own retries).
    AppendFailed(TaskError),
}

async fn append_loop(
    mut jobs: mpsc::Receiver<Job>,
    done: mpsc::UnboundedSender<Result<u64, TaskError>>,
    mut producers: Vec<(TopicRef, Box<dyn Producer>)>,
    ctx: AppendContext,
) {
    while let Some(job) = jobs.recv().await {
        let result = append_one(&job, &mut producers, &ctx).await;
        match result {
            Ok(true) => {
                let _ = done.send(Ok(job.seq));
            }
            // Given up at shutdown: neither the batch nor its state counts as saved.
            Ok(false) => return,
            Err(e) => {
                let _ = done.send(Err(e));
                return;
            }
        }
    }
}

/// What every append of a source task uses.
struct AppendContext {
    state: StateStore,
    instance_key: String,
    metrics: Arc<InstanceMetrics>,
    shutdown: CancellationToken,
    shared: Option<LeasedCheckpoints>,
}

/// Appends one batch to every topic, then saves its state; `Ok(false)` when shutdown
/// came while waiting to retry an append.
async fn append_one(
    job: &Job,
    producers: &mut [(TopicRef, Box<dyn Producer>)],
    ctx: &AppendContext,
) -> Result<bool, TaskError> {
    let AppendContext {
        state,
        instance_key,
        metrics,
        shutdown,
        shared,
    } = ctx;
    let mut checkpoint_stored = false;
    if !job.batch.is_empty() {
        let started = std::time::Instant::now();
        let last = producers.len() - 1;
        for (i, (_, producer)) in producers.iter_mut().enumerate() {
            // The last topic's append carries the checkpoint, atomically where the
            // backend can (the embedded log).
            let checkpoint = if i == last {
                job.state.as_deref().map(|s| (instance_key.as_str(), s))
            } else {
                None
            };
            let appended = with_retries!("append", &STREAM_RETRY, metrics, shutdown, async {
                Ok::<_, TaskError>(producer.append_checkpointed(&job.batch, checkpoint).await?)
            })?;
            let Some((_, stored)) = appended else {
                return Ok(false);
            };
            checkpoint_stored |= stored;
        }
        let bytes: usize = job
            .batch
            .entries
            .iter()
            .map(|e| e.payload_len as usize)
            .sum();
        metrics.batch_latency.observe(started.elapsed());
        metrics.delivered(job.batch.len(), bytes);
    }
    // Only now is the batch in the stream: the checkpoint may move past it.
    if let (Some(s), false) = (&job.state, checkpoint_stored) {
        state.save_source_state(instance_key, s).await?;
    }
    if let (Some(s), Some(shared)) = (&job.state, shared) {
        return share(shared, s, shutdown).await;
    }
    Ok(true)
}

/// How long one shared save may take before it counts as failed.
const SHARE_TIMEOUT: Duration = Duration::from_secs(2);

/// Shares a checkpoint after its batch is in the stream and saved locally, so the
/// node that takes the source over produces at most this batch again. Fenced: another
/// node has the source, stop. Not shared: when no other node could take the source
/// over, go on (the lease stops the source if the supervisor stays away); otherwise try
/// again until it is shared, the lease ends or the task stops (`Ok(false)`).
async fn share(
    shared: &LeasedCheckpoints,
    state: &[u8],
    shutdown: &CancellationToken,
) -> Result<bool, TaskError> {
    let mut wait = Duration::from_millis(100);
    loop {
        let saved = tokio::time::timeout(
            SHARE_TIMEOUT,
            shared.store.save(shared.instance_id, shared.epoch, state),
        )
        .await;
        let why = match saved {
            Ok(Ok(())) => return Ok(true),
            Ok(Err(SharedCheckpointError::Fenced(why))) => return Err(TaskError::Fenced(why)),
            Ok(Err(SharedCheckpointError::Unavailable(why))) => why,
            Err(_) => format!("no answer within {SHARE_TIMEOUT:?}"),
        };
        if shared.store.may_go_on_unshared(shared.instance_id) {
            tracing::debug!(error = %why, "checkpoint not shared; going on under the lease");
            return Ok(true);
        }
        tracing::warn!(error = %why, retry_in = ?wait, "checkpoint not shared; waiting before the next batch");
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(false),
            _ = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(Duration::from_secs(2));
    }
}
