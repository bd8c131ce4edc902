//! The offsets a table holds: each snapshot this sink commits records, in its summary,
//! the last offset written per stream, topic and partition (cumulative), so that after a
//! crash between the table commit and the host's offset commit the redelivered messages
//! are recognised and skipped.

use std::collections::BTreeMap;

use iceberg::spec::TableMetadata;

/// Summary property: the instance that wrote the snapshot.
pub const PROP_INSTANCE: &str = "ld.instance";
/// Summary property: JSON `{"stream": {"topic": {"partition": last_offset}}}`.
pub const PROP_OFFSETS: &str = "ld.offsets";
/// Summary property: a unique id of the commit attempt.
pub const PROP_COMMIT_ID: &str = "ld.commit-id";

/// Last offset per stream, topic and partition.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Offsets(BTreeMap<String, BTreeMap<String, BTreeMap<u32, u64>>>);

impl Offsets {
    /// The last offset recorded for this partition.
    pub fn get(&self, stream: &str, topic: &str, partition: u32) -> Option<u64> {
        self.0.get(stream)?.get(topic)?.get(&partition).copied()
    }

    /// Whether a message at `offset` is already covered.
    pub fn covers(&self, stream: &str, topic: &str, partition: u32, offset: u64) -> bool {
        self.get(stream, topic, partition)
            .is_some_and(|last| offset <= last)
    }

    /// Records `offset` (keeps the larger one).
    pub fn advance(&mut self, stream: &str, topic: &str, partition: u32, offset: u64) {
        let slot = self
            .0
            .entry(stream.to_string())
            .or_default()
            .entry(topic.to_string())
            .or_default()
            .entry(partition)
            .or_insert(offset);
        *slot = (*slot).max(offset);
    }

    /// Takes the larger offset of both, partition by partition.
    pub fn merge(&mut self, other: &Offsets) {
        for (stream, topics) in &other.0 {
            for (topic, partitions) in topics {
                for (partition, offset) in partitions {
                    self.advance(stream, topic, *partition, *offset);
                }
            }
        }
    }

    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The JSON stored in the summary.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("maps of strings and numbers serialize")
    }

    /// Parses the summary JSON.
    pub fn from_json(text: &str) -> Result<Offsets, String> {
        serde_json::from_str(text).map_err(|e| format!("`{PROP_OFFSETS}` is not readable: {e}"))
    }

    /// The offsets recorded by `instance` in the table: from the newest snapshot of the
    /// main branch written by it, walking back past snapshots other writers committed
    /// later. Empty when it never wrote (or its snapshots were expired).
    pub fn from_table(metadata: &TableMetadata, instance: &str) -> Result<Offsets, String> {
        let mut next = metadata.current_snapshot();
        let mut steps = 0usize;
        while let Some(snapshot) = next {
            let props = &snapshot.summary().additional_properties;
            if props.get(PROP_INSTANCE).map(String::as_str) == Some(instance) {
                if let Some(json) = props.get(PROP_OFFSETS) {
                    return Offsets::from_json(json);
                }
            }
            steps += 1;
            if steps > metadata.snapshots().len() {
                break; // a cycle would be corrupt metadata: stop rather than spin
            }
            next = snapshot
                .parent_snapshot_id()
                .and_then(|id| metadata.snapshot_by_id(id));
        }
        Ok(Offsets::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_merge_and_cover() {
        let mut a = Offsets::default();
        assert!(!a.covers("s", "t", 0, 0));
        a.advance("s", "t", 0, 10);
        a.advance("s", "t", 0, 7);
        assert_eq!(a.get("s", "t", 0), Some(10));
        assert!(a.covers("s", "t", 0, 10));
        assert!(!a.covers("s", "t", 0, 11));
        assert!(!a.covers("s", "t", 1, 0), "other partitions are separate");
        assert!(!a.covers("s", "u", 0, 0), "other topics are separate");
        let mut b = Offsets::default();
        b.advance("s", "t", 0, 5);
        b.advance("s", "t", 1, 3);
        b.merge(&a);
        assert_eq!(b.get("s", "t", 0), Some(10));
        assert_eq!(b.get("s", "t", 1), Some(3));
        let round = Offsets::from_json(&b.to_json()).unwrap();
        assert_eq!(round, b);
        assert_eq!(b.to_json(), r#"{"s":{"t":{"0":10,"1":3}}}"#);
        assert!(Offsets::from_json("nope").is_err());
    }
}
