//! `random` source: generates JSON messages at a configurable rate and count.
//!
//! Message `n` (counting from 0) is `{"id":n,"value":V,"text":"..."}` with message id
//! `n + 1`; `V` and the text are derived from `(seed, n)` only, so the same seed gives
//! the same messages, across restarts too. The source's saved state is the next `n`,
//! so a restarted instance continues where its last committed batch ended.

use std::{fmt::Write, time::Duration};

use ld_plugin_api::{
    export_plugin, parse_duration, InstanceContext, MessageSpec, PluginError, Schema, Source,
    SourceBatch,
};
use tokio::time::Instant;

/// `plugin_config` of the random source. It also reads the config of Iggy's random
/// source (`interval`, `max_count`, `messages_range`, `payload_size`).
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RandomConfig {
    /// Seed of the generator: the same seed gives the same messages.
    #[serde(default)]
    pub seed: u64,
    /// Messages per second; `0` means as fast as possible.
    #[serde(default)]
    pub rate: u64,
    /// Total messages to generate; absent means no end. Iggy's name: `max_count`.
    #[serde(default, alias = "max_count")]
    pub count: Option<u64>,
    /// Most messages per batch (default 1000).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub batch_size: Option<u32>,
    /// Approximate size of each JSON payload in bytes (at least the fixed fields).
    #[serde(default = "default_payload_size")]
    pub payload_size: usize,
    /// Iggy's pacing: one batch every `interval` (e.g. `"100ms"`; default `"1s"` when
    /// `messages_range` is given). Instead of `rate` and `batch_size`.
    #[serde(default)]
    pub interval: Option<String>,
    /// Iggy's pacing: each batch has a number of messages drawn from `[min, max)`
    /// (`[min, min]`: exactly `min`; default `[10, 50]` when `interval` is given).
    #[serde(default)]
    pub messages_range: Option<(u32, u32)>,
}

fn default_payload_size() -> usize {
    100
}

/// How fast messages come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// `rate` messages per second (`0`: as fast as possible), in batches of at most
    /// `batch_size`.
    Rate {
        /// Messages per second.
        rate: u64,
        /// Most messages per batch.
        batch_size: u32,
    },
    /// Iggy's random source: every `interval`, a batch of `min..max` messages.
    Interval {
        /// Wait between batches.
        interval: Duration,
        /// Fewest messages per batch.
        min: u32,
        /// Messages per batch stay below this (or equal `min` when both are equal).
        max: u32,
    },
}

impl RandomConfig {
    /// The pace the config asks for; `rate`/`batch_size` and Iggy's
    /// `interval`/`messages_range` are two ways to say it, so only one may be used.
    pub fn pace(&self) -> Result<Pace, PluginError> {
        let invalid = |field: &str, reason: &str| {
            PluginError::invalid_config(format!("plugin_config.{field}: {reason}"))
        };
        if self.batch_size == Some(0) {
            return Err(invalid("batch_size", "must be at least 1"));
        }
        if self.interval.is_none() && self.messages_range.is_none() {
            return Ok(Pace::Rate {
                rate: self.rate,
                batch_size: self.batch_size.unwrap_or(1000),
            });
        }
        for (field, set) in [
            ("rate", self.rate != 0),
            ("batch_size", self.batch_size.is_some()),
        ] {
            if set {
                return Err(invalid(
                    field,
                    "cannot be combined with interval or messages_range (Iggy's way to set the pace): use one or the other",
                ));
            }
        }
        let interval = match &self.interval {
            Some(text) => parse_duration(text).map_err(|r| invalid("interval", &r))?,
            None => Duration::from_secs(1),
        };
        let (min, max) = self.messages_range.unwrap_or((10, 50));
        if min > max {
            return Err(invalid(
                "messages_range",
                &format!("[{min}, {max}]: the first number must not exceed the second"),
            ));
        }
        Ok(Pace::Interval { interval, min, max })
    }
}

/// The checkpoint: the index of the next message to generate.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct RandomState {
    /// Next message index.
    pub next: u64,
}

/// Generates deterministic JSON messages.
pub struct RandomSource {
    config: RandomConfig,
    pace: Pace,
    next: u64,
    /// Rate pacing: when the first batch was generated, and from which message.
    started: Option<(Instant, u64)>,
    /// Interval pacing: when the next batch is due.
    next_due: Option<Instant>,
    payload: String,
}

/// SplitMix64: a tiny, well-known mixing function; enough for test data.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Writes the payload of message `n` into `out`.
pub fn payload_of(seed: u64, n: u64, size: usize, out: &mut String) {
    out.clear();
    let value = mix(seed ^ mix(n));
    let _ = write!(out, r#"{{"id":{n},"value":{value},"text":""#);
    // The text repeats the 16 hex digits of `value` (low nibble first, rotating), built
    // once and copied in blocks: formatting char by char cost more than the rest of the
    // pipeline per message.
    const ALPHABET: &[u8; 16] = b"0123456789abcdef";
    let mut pattern = [0u8; 16];
    let mut bits = value;
    for digit in &mut pattern {
        *digit = ALPHABET[(bits & 15) as usize];
        bits = bits.rotate_right(4);
    }
    let mut fill = size.saturating_sub(out.len() + 2);
    while fill > 0 {
        let take = fill.min(16);
        // The pattern is ASCII hex digits, so any prefix of it is valid UTF-8.
        out.push_str(std::str::from_utf8(&pattern[..take]).expect("ASCII"));
        fill -= take;
    }
    out.push_str("\"}");
}

impl RandomSource {
    fn remaining(&self) -> u64 {
        self.config
            .count
            .map_or(u64::MAX, |count| count.saturating_sub(self.next))
    }

    /// How many messages to generate now, waiting until they are due.
    async fn due(&mut self) -> u64 {
        match self.pace {
            Pace::Rate { rate, batch_size } => self.due_at_rate(rate, batch_size).await,
            Pace::Interval { interval, min, max } => {
                // As Iggy's source: wait an interval, then a batch.
                let due = *self
                    .next_due
                    .get_or_insert_with(|| Instant::now() + interval);
                tokio::time::sleep_until(due).await;
                // A slow consumer must not cause a burst of batches afterwards.
                self.next_due = Some((due + interval).max(Instant::now()));
                batch_len(self.config.seed, self.next, min, max).min(self.remaining())
            }
        }
    }

    /// How many messages the rate allows now, waiting until at least one is due.
    async fn due_at_rate(&mut self, rate: u64, batch_size: u32) -> u64 {
        let want = u64::from(batch_size).min(self.remaining());
        if rate == 0 {
            return want;
        }
        let (start, first) = *self.started.get_or_insert((Instant::now(), self.next));
        let rate = rate as f64;
        loop {
            let produced = self.next - first;
            let allowed = (start.elapsed().as_secs_f64() * rate) as u64;
            if allowed > produced {
                return want.min(allowed - produced);
            }
            let next_due = start + Duration::from_secs_f64((produced + 1) as f64 / rate);
            tokio::time::sleep_until(next_due).await;
        }
    }
}

/// The size of the batch starting at message `next`, in `[min, max)` (`min` when the
/// two are equal): derived from the seed and `next` only, so a restart draws the same.
pub fn batch_len(seed: u64, next: u64, min: u32, max: u32) -> u64 {
    let (min, max) = (u64::from(min), u64::from(max));
    if max <= min {
        return min;
    }
    min + mix(seed ^ mix(next ^ 0xBA7C_4000_0000_0000)) % (max - min)
}

impl Source for RandomSource {
    type Config = RandomConfig;
    type State = RandomState;

    fn new(
        config: RandomConfig,
        state: Option<RandomState>,
        _ctx: &InstanceContext,
    ) -> Result<Self, PluginError> {
        let pace = config.pace()?;
        Ok(RandomSource {
            next: state.map_or(0, |s| s.next),
            config,
            pace,
            started: None,
            next_due: None,
            payload: String::new(),
        })
    }

    async fn poll(&mut self) -> Result<SourceBatch, PluginError> {
        if self.remaining() == 0 {
            // Every message was generated: nothing more will ever come. Answer with an
            // empty batch now and then rather than waiting forever, which the host's
            // call deadline would take for a hung plugin.
            tokio::time::sleep(Duration::from_secs(1)).await;
            return Ok(SourceBatch::new());
        }
        let n = self.due().await;
        if n == 0 {
            // An interval whose draw was 0 messages (messages_range starting at 0).
            return Ok(SourceBatch::new());
        }
        let mut batch =
            SourceBatch::with_capacity(n as usize, n as usize * self.config.payload_size);
        for _ in 0..n {
            payload_of(
                self.config.seed,
                self.next,
                self.config.payload_size,
                &mut self.payload,
            );
            batch.push_with(
                MessageSpec {
                    id: u128::from(self.next) + 1,
                    ..MessageSpec::default()
                },
                Schema::Json,
                self.payload.as_bytes(),
            );
            self.next += 1;
        }
        batch.set_state(&RandomState { next: self.next })?;
        Ok(batch)
    }
}

export_plugin! {
    key: "random",
    name: "Random generator",
    description: "Generates JSON messages at a configurable rate and count, deterministic with a seed",
    source: RandomSource,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_json_of_the_requested_size_and_deterministic() {
        let mut a = String::new();
        let mut b = String::new();
        payload_of(7, 12345, 100, &mut a);
        payload_of(7, 12345, 100, &mut b);
        assert_eq!(a, b);
        assert_eq!(a.len(), 100);
        let v: serde_json::Value = serde_json::from_str(&a).unwrap();
        assert_eq!(v["id"], 12345);
        payload_of(8, 12345, 100, &mut b);
        assert_ne!(a, b, "another seed gives another message");
        // The same bytes as the original char-by-char generator (so data generated by
        // earlier versions matches).
        let value = mix(7 ^ mix(12345));
        let mut expected = format!(r#"{{"id":12345,"value":{value},"text":""#);
        let mut bits = value;
        while expected.len() + 2 < 100 {
            expected.push(b"0123456789abcdef"[(bits & 15) as usize] as char);
            bits = bits.rotate_right(4);
        }
        expected.push_str("\"}");
        assert_eq!(a, expected);
        payload_of(1, 2, 10, &mut b);
        assert!(
            b.starts_with(r#"{"id":2,"#) && b.ends_with("\"}"),
            "short sizes keep the fixed fields: {b}"
        );
    }

    fn config(v: serde_json::Value) -> RandomConfig {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn iggy_random_source_config_is_read_with_its_meaning() {
        // `plugin_config` of Iggy's `random_source_v0.toml`, as TOML becomes JSON.
        let c = config(serde_json::json!({
            "interval": "100ms", "max_count": 1000, "messages_range": [10, 50],
            "payload_size": 200
        }));
        assert_eq!(c.count, Some(1000));
        assert_eq!(c.payload_size, 200);
        assert_eq!(
            c.pace().unwrap(),
            Pace::Interval {
                interval: Duration::from_millis(100),
                min: 10,
                max: 50
            }
        );
        // Each given alone: Iggy's default for the other.
        let c = config(serde_json::json!({"interval": "1000ms"}));
        assert_eq!(
            c.pace().unwrap(),
            Pace::Interval {
                interval: Duration::from_secs(1),
                min: 10,
                max: 50
            }
        );
        let c = config(serde_json::json!({"messages_range": [1, 5]}));
        assert_eq!(
            c.pace().unwrap(),
            Pace::Interval {
                interval: Duration::from_secs(1),
                min: 1,
                max: 5
            }
        );
        assert_eq!(
            config(serde_json::json!({"rate": 10})).pace().unwrap(),
            Pace::Rate {
                rate: 10,
                batch_size: 1000
            }
        );
    }

    #[test]
    fn bad_or_conflicting_pacing_is_an_invalid_config_naming_the_field() {
        let cases = [
            (
                serde_json::json!({"interval": "soon"}),
                "plugin_config.interval: `soon` is not a duration",
            ),
            (
                serde_json::json!({"messages_range": [5, 1]}),
                "plugin_config.messages_range: [5, 1]",
            ),
            (
                serde_json::json!({"interval": "1s", "rate": 5}),
                "plugin_config.rate: cannot be combined",
            ),
            (
                serde_json::json!({"messages_range": [1, 2], "batch_size": 5}),
                "plugin_config.batch_size: cannot be combined",
            ),
            (
                serde_json::json!({"batch_size": 0}),
                "plugin_config.batch_size: must be at least 1",
            ),
        ];
        for (c, expected) in cases {
            let err = config(c.clone()).pace().unwrap_err();
            assert_eq!(err.kind(), ld_plugin_api::ErrorKind::InvalidConfig, "{c}");
            assert!(err.message().starts_with(expected), "{c}: {err}");
        }
        let both =
            serde_json::from_value::<RandomConfig>(serde_json::json!({"count": 1, "max_count": 2}));
        assert!(both.unwrap_err().to_string().contains("duplicate field"));
    }

    #[test]
    fn batch_lengths_stay_in_the_range_and_repeat_for_a_seed() {
        let mut seen = std::collections::HashSet::new();
        for next in 0..2000 {
            let n = batch_len(3, next, 10, 50);
            assert!((10..50).contains(&n), "{n}");
            assert_eq!(n, batch_len(3, next, 10, 50));
            seen.insert(n);
        }
        assert!(seen.len() > 30, "the draw varies: {}", seen.len());
        assert_eq!(batch_len(3, 7, 4, 4), 4);
    }

    #[tokio::test]
    async fn interval_pacing_gives_batches_of_the_range_up_to_max_count() {
        let c = config(serde_json::json!({
            "interval": "10ms", "max_count": 25, "messages_range": [3, 7], "seed": 1
        }));
        let mut source = RandomSource::new(c, None, &InstanceContext::new("r")).unwrap();
        let started = Instant::now();
        let mut sizes = Vec::new();
        let mut total = 0;
        while total < 25 {
            let batch = source.poll().await.unwrap();
            total += batch.len();
            sizes.push(batch.len());
        }
        assert_eq!(total, 25);
        let (last, full) = sizes.split_last().unwrap();
        assert!(full.iter().all(|n| (3..7).contains(n)), "{sizes:?}");
        assert!(*last >= 1 && *last < 7, "{sizes:?}");
        assert!(
            started.elapsed() >= Duration::from_millis(10) * sizes.len() as u32,
            "one batch per interval: {sizes:?} in {:?}",
            started.elapsed()
        );
    }
}
