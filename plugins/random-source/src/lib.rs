//! `random` source: generates JSON messages at a configurable rate and count.
//!
//! Message `n` (counting from 0) is `{"id":n,"value":V,"text":"..."}` with message id
//! `n + 1`; `V` and the text are derived from `(seed, n)` only, so the same seed gives
//! the same messages, across restarts too. The source's saved state is the next `n`,
//! so a restarted instance continues where its last committed batch ended.

use std::{fmt::Write, time::Duration};

use ld_plugin_api::{
    export_plugin, InstanceContext, MessageSpec, PluginError, Schema, Source, SourceBatch,
};
use tokio::time::Instant;

/// `plugin_config` of the random source.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RandomConfig {
    /// Seed of the generator: the same seed gives the same messages.
    #[serde(default)]
    pub seed: u64,
    /// Messages per second; `0` means as fast as possible.
    #[serde(default)]
    pub rate: u64,
    /// Total messages to generate; absent means no end.
    #[serde(default)]
    pub count: Option<u64>,
    /// Most messages per batch.
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    /// Approximate size of each JSON payload in bytes (at least the fixed fields).
    #[serde(default = "default_payload_size")]
    pub payload_size: usize,
}

fn default_batch_size() -> u32 {
    1000
}

fn default_payload_size() -> usize {
    100
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
    next: u64,
    started: Option<(Instant, u64)>,
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

    /// How many messages the rate allows now, waiting until at least one is due.
    async fn due(&mut self) -> u64 {
        let want = u64::from(self.config.batch_size).min(self.remaining());
        if self.config.rate == 0 {
            return want;
        }
        let (start, first) = *self.started.get_or_insert((Instant::now(), self.next));
        let rate = self.config.rate as f64;
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

impl Source for RandomSource {
    type Config = RandomConfig;
    type State = RandomState;

    fn new(
        config: RandomConfig,
        state: Option<RandomState>,
        _ctx: &InstanceContext,
    ) -> Result<Self, PluginError> {
        if config.batch_size == 0 {
            return Err(PluginError::invalid_config(
                "plugin_config.batch_size: must be at least 1",
            ));
        }
        Ok(RandomSource {
            next: state.map_or(0, |s| s.next),
            config,
            started: None,
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
}
