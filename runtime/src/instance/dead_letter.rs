//! The dead-letter topic of an instance with `errors.tolerance = "all"`: a message that
//! a transform cannot process, or that the sink plugin rejected, goes there, unchanged,
//! with headers naming the instance, where the message came from, the stage and why,
//! and the pipeline goes on.

use crate::{
    config::{ErrorPolicy, Tolerance},
    stream::{MessageBatch, Producer, StreamBackend, TopicDurability, TopicRef},
    transform::ApplyError,
};

use super::{with_retries, InstanceMetrics, TaskError, STREAM_RETRY};
use tokio_util::sync::CancellationToken;

/// Header: the instance that set the message aside.
pub const INSTANCE_HEADER: &str = "ld-dlq-instance";
/// Header: the stream the message came from (a sink) or was meant for (a source).
pub const STREAM_HEADER: &str = "ld-dlq-stream";
/// Header: its topic.
pub const TOPIC_HEADER: &str = "ld-dlq-topic";
/// Header: its partition (a sink's messages).
pub const PARTITION_HEADER: &str = "ld-dlq-partition";
/// Header: its offset (a sink's messages).
pub const OFFSET_HEADER: &str = "ld-dlq-offset";
/// Header: the stage that could not process it: `transform:<name>` (e.g.
/// `transform:add_fields`) or `sink` (the plugin rejected it).
pub const STAGE_HEADER: &str = "ld-dlq-stage";
/// Header: why (at most 255 bytes, as stream headers allow).
pub const REASON_HEADER: &str = "ld-dlq-reason";

/// Where a batch came from (a sink) or was going (a source).
pub(crate) struct Origin<'a> {
    pub topic: &'a TopicRef,
    /// The partition read, for a sink.
    pub partition: Option<u32>,
}

/// A message of a batch that goes to the dead-letter topic.
pub(crate) struct SetAside {
    /// Its index in the batch.
    pub index: usize,
    /// The stage that could not process it (the `ld-dlq-stage` header).
    pub stage: String,
    /// Why.
    pub reason: String,
}

impl SetAside {
    /// The messages transforms could not process.
    pub(crate) fn from_transforms(failed: Vec<(usize, ApplyError)>) -> Vec<Self> {
        failed
            .into_iter()
            .map(|(index, e)| SetAside {
                index,
                stage: format!("transform:{}", e.transform),
                reason: e.reason,
            })
            .collect()
    }
}

/// An instance's dead-letter topic.
pub(crate) struct DeadLetters {
    producer: Box<dyn Producer>,
    instance_key: String,
}

impl DeadLetters {
    /// The dead-letter topic of `policy`, when it tolerates failures.
    pub(crate) async fn open(
        backend: &dyn StreamBackend,
        policy: &ErrorPolicy,
        instance_key: &str,
    ) -> Result<Option<Self>, TaskError> {
        let (Tolerance::All, Some(topic)) = (policy.tolerance, &policy.dead_letter) else {
            return Ok(None);
        };
        backend
            .prepare_topic(topic, TopicDurability::Default)
            .await?;
        Ok(Some(Self {
            producer: backend.producer(topic).await?,
            instance_key: instance_key.to_string(),
        }))
    }

    /// Appends the messages of `batch` named in `failed` to the dead-letter topic,
    /// unchanged but for the headers saying where they came from and why; returns when
    /// they are as durable as the stream promises.
    pub(crate) async fn send(
        &mut self,
        origin: Origin<'_>,
        batch: &MessageBatch,
        failed: &[SetAside],
        metrics: &InstanceMetrics,
        shutdown: &CancellationToken,
    ) -> Result<(), TaskError> {
        if failed.is_empty() {
            return Ok(());
        }
        let (letters, originals) = self.letters(&origin, batch, failed);
        with_retries!(
            "dead-letter append",
            &STREAM_RETRY,
            metrics,
            shutdown,
            async { Ok::<_, TaskError>(self.producer.append(&letters).await?) }
        )?;
        metrics.dead_lettered(letters.len());
        for ((offset, id), set_aside) in originals.into_iter().zip(failed) {
            tracing::warn!(offset, id = %id, reason = %set_aside.reason,
                           stage = %set_aside.stage, "message set aside in the dead-letter topic");
        }
        Ok(())
    }

    fn letters(
        &self,
        origin: &Origin<'_>,
        batch: &MessageBatch,
        failed: &[SetAside],
    ) -> (MessageBatch, Vec<(u64, u128)>) {
        let messages: Vec<_> = batch.iter().collect();
        let mut letters = MessageBatch::default();
        // The offset and id of each original, for the log.
        let mut originals = Vec::with_capacity(failed.len());
        let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
        for set_aside in failed {
            let Some(message) = messages.get(set_aside.index) else {
                continue;
            };
            let e = message.entry();
            originals.push((e.offset, e.id));
            headers.clear();
            headers.extend(message.headers().map(|(k, v)| (k.to_string(), v.to_vec())));
            let mut ours = vec![
                (INSTANCE_HEADER, self.instance_key.clone()),
                (STREAM_HEADER, origin.topic.stream.clone()),
                (TOPIC_HEADER, origin.topic.topic.clone()),
                (STAGE_HEADER, set_aside.stage.clone()),
                (REASON_HEADER, truncated(&set_aside.reason, 255)),
            ];
            if let Some(partition) = origin.partition {
                ours.push((PARTITION_HEADER, partition.to_string()));
                ours.push((OFFSET_HEADER, e.offset.to_string()));
            }
            headers.extend(
                ours.into_iter()
                    .map(|(k, v)| (k.to_string(), v.into_bytes())),
            );
            letters.push(
                e.id,
                0,
                e.timestamp_micros,
                e.schema,
                headers.iter().map(|(k, v)| (k.as_str(), v.as_slice())),
                message.payload(),
            );
        }
        (letters, originals)
    }
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn truncated(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_cut_on_a_character_boundary() {
        assert_eq!(truncated("abc", 255), "abc");
        let long = "é".repeat(200);
        let cut = truncated(&long, 255);
        assert!(cut.len() <= 255 && cut.len() >= 254);
        assert!(cut.chars().all(|c| c == 'é'));
    }
}
