//! `iceberg` sink: appends messages to Apache Iceberg tables, exactly once.
//!
//! `consume` converts each batch's JSON payloads into Arrow rows by the table's schema
//! and buffers them; `flush` (the host asks after every batch and about once a second)
//! commits one snapshot per table every `commit_interval` or `commit_rows`, whichever
//! comes first, and at shutdown, and tells the host up to which batch everything is in
//! the table, so the host commits stream offsets only for rows the table holds. Each
//! snapshot's summary records the last offset per stream, topic and partition; on open
//! the sink reads them back and skips what the table already holds, so a crash between
//! the table commit and the host's offset commit adds no duplicate.
//!
//! See the README for the config, the delivery guarantee and the errors.

mod config;
mod convert;
mod error;
mod offsets;
mod table;

use std::{collections::HashMap, sync::Arc, time::Instant};

use iceberg::{Catalog, TableIdent};
use ld_plugin_api::{
    export_plugin, InstanceContext, Message, PluginError, Schema, Sink, SinkBatch,
};

use config::{parse_table, table_name, Settings};
pub use config::{IcebergSinkConfig, OnRecordError};
use convert::Rejected;
use error::SinkError;
pub use offsets::{Offsets, PROP_INSTANCE, PROP_OFFSETS};
use table::{Chunk, TableState};

/// Writes messages into Iceberg tables.
pub struct IcebergSink {
    settings: Settings,
    instance: String,
    catalog: Option<Arc<dyn Catalog>>,
    /// Open tables, by `namespace.table`.
    tables: HashMap<String, TableState>,
    /// Batches `consume` accepted since open.
    accepted: u64,
    /// The first accepted batch whose rows are buffered, not yet committed.
    first_buffered: Option<u64>,
    /// When the oldest buffered row arrived.
    buffered_since: Option<Instant>,
    /// Rows buffered over all tables.
    buffered_rows: u64,
    /// Counters, for logs and tests.
    stats: Stats,
}

/// What the sink did since open.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Rows committed.
    pub rows: u64,
    /// Data files committed.
    pub files: u64,
    /// Snapshots committed.
    pub snapshots: u64,
    /// Messages skipped because the table already held them.
    pub already_held: u64,
    /// Messages left out by `on_record_error = skip`.
    pub skipped: u64,
}

/// A table's share of one batch, built before anything is kept.
struct Staged {
    table: String,
    chunk: Option<Chunk>,
    seen: Vec<u64>,
}

impl IcebergSink {
    fn plugin_error(&self, e: SinkError) -> PluginError {
        e.into_plugin_error(|t| self.settings.scrub(t))
    }

    async fn catalog(&mut self) -> Result<Arc<dyn Catalog>, SinkError> {
        if let Some(c) = &self.catalog {
            return Ok(c.clone());
        }
        let c = table::connect(&self.settings).await?;
        tracing::info!(catalog = %self.settings.catalog_description(), "connected to the catalog");
        self.catalog = Some(c.clone());
        Ok(c)
    }

    /// Opens a table (creating it when allowed) unless it is open.
    async fn ensure_table(&mut self, ident: &TableIdent) -> Result<(), SinkError> {
        let name = table_name(ident);
        if self.tables.contains_key(&name) {
            return Ok(());
        }
        let catalog = self.catalog().await?;
        let table =
            table::open_table(catalog.as_ref(), ident, self.settings.create.as_ref()).await?;
        let state = TableState::new(ident.clone(), table, &self.instance)?;
        if !state.committed.is_empty() {
            tracing::info!(table = %name, offsets = %state.committed.to_json(), "the table holds messages up to these offsets; earlier ones are skipped");
        }
        self.tables.insert(name, state);
        Ok(())
    }

    /// The tables a message goes to, or why it cannot be routed.
    fn route(&self, msg: &Message<'_>) -> Result<Vec<String>, Rejected> {
        let Some(field) = &self.settings.route_field else {
            return Ok(self.settings.tables.iter().map(table_name).collect());
        };
        let value: serde_json::Value =
            serde_json::from_slice(msg.payload()).map_err(|e| Rejected {
                index: 0,
                field: None,
                reason: format!("the payload is not JSON: {e}"),
            })?;
        let target = value
            .get(field)
            .and_then(|v| v.as_str())
            .ok_or_else(|| Rejected {
                index: 0,
                field: Some(field.clone()),
                reason: "is missing or not a string (it names the table: `namespace.table`)".into(),
            })?;
        let ident = parse_table(target).map_err(|reason| Rejected {
            index: 0,
            field: Some(field.clone()),
            reason,
        })?;
        Ok(vec![table_name(&ident)])
    }

    /// Reports a message that does not fit: an error with `fail`, a log line with `skip`.
    fn reject(
        &mut self,
        batch: &SinkBatch<'_>,
        msg: &Message<'_>,
        table: Option<&str>,
        why: &Rejected,
    ) -> Result<(), SinkError> {
        let place = format!(
            "message at offset {} of {}/{}/{}",
            msg.offset(),
            batch.stream(),
            batch.topic(),
            batch.partition()
        );
        let into = table.map(|t| format!(" for table {t}")).unwrap_or_default();
        let text = format!("{place} does not fit{into}: {}", why.describe());
        match self.settings.on_record_error {
            OnRecordError::Fail => Err(SinkError::Record(text)),
            OnRecordError::Skip => {
                self.stats.skipped += 1;
                tracing::warn!("skipped: {text}");
                Ok(())
            }
        }
    }

    /// Converts and buffers one batch; keeps nothing of it on error.
    async fn buffer(&mut self, batch: &SinkBatch<'_>) -> Result<(), SinkError> {
        let (stream, topic, partition) = (batch.stream(), batch.topic(), batch.partition());
        // Route every message; open dynamic tables on first sight.
        let mut per_table: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, msg) in batch.messages().iter().enumerate() {
            if msg.schema() != Schema::Json {
                let why = Rejected {
                    index: i,
                    field: None,
                    reason: format!(
                        "the payload is {}, this sink writes JSON (set the stream's schema to json)",
                        msg.schema().as_str()
                    ),
                };
                self.reject(batch, msg, None, &why)?;
                continue;
            }
            let targets = match self.route(msg) {
                Ok(t) => t,
                Err(why) => {
                    self.reject(batch, msg, None, &why)?;
                    continue;
                }
            };
            for target in targets {
                if !self.tables.contains_key(&target) {
                    let ident = parse_table(&target).expect("routed names parse");
                    match self.ensure_table(&ident).await {
                        Ok(()) => {}
                        Err(SinkError::MissingTable { .. }) => {
                            let why = Rejected {
                                index: i,
                                field: self.settings.route_field.clone(),
                                reason: format!(
                                    "names table {target}, which does not exist (add create_table to create it)"
                                ),
                            };
                            self.reject(batch, msg, None, &why)?;
                            continue;
                        }
                        Err(e) => return Err(e),
                    }
                }
                match per_table.iter_mut().find(|(t, _)| *t == target) {
                    Some((_, idx)) => idx.push(i),
                    None => per_table.push((target, vec![i])),
                }
            }
        }
        // Convert per table, leaving out what the table already holds.
        let mut staged = Vec::with_capacity(per_table.len());
        for (target, indexes) in per_table {
            let state = &self.tables[&target];
            let fresh: Vec<usize> = indexes
                .into_iter()
                .filter(|i| !state.holds(stream, topic, partition, batch.messages()[*i].offset()))
                .collect();
            let held = batch.len() as u64 - fresh.len() as u64;
            if held > 0 && self.settings.route_field.is_none() {
                self.stats.already_held += held;
            }
            let payloads: Vec<&[u8]> = fresh
                .iter()
                .map(|i| batch.messages()[*i].payload())
                .collect();
            let (rows, rejected) = state.converter.convert(&payloads);
            let mut bad = vec![false; fresh.len()];
            for r in &rejected {
                bad[r.index] = true;
            }
            for r in rejected {
                let msg = batch.messages()[fresh[r.index]];
                self.reject(batch, &msg, Some(&target), &r)?;
            }
            let offsets: Vec<u64> = fresh
                .iter()
                .zip(&bad)
                .filter(|(_, b)| !**b)
                .map(|(i, _)| batch.messages()[*i].offset())
                .collect();
            let seen = fresh
                .iter()
                .map(|i| batch.messages()[*i].offset())
                .collect();
            let chunk = rows.map(|rows| Chunk {
                stream: Arc::from(stream),
                topic: Arc::from(topic),
                partition,
                offsets,
                batch: rows,
            });
            staged.push(Staged {
                table: target,
                chunk,
                seen,
            });
        }
        // Keep it all.
        let number = self.accepted + 1;
        for s in staged {
            let state = self.tables.get_mut(&s.table).expect("opened above");
            for offset in s.seen {
                state.pending.advance(stream, topic, partition, offset);
            }
            if let Some(chunk) = s.chunk {
                let rows = chunk.batch.num_rows() as u64;
                state.rows += rows;
                state.chunks.push(chunk);
                self.buffered_rows += rows;
                self.first_buffered.get_or_insert(number);
                self.buffered_since.get_or_insert_with(Instant::now);
            }
        }
        Ok(())
    }

    /// Whether the commit policy says commit now.
    fn due(&self, closing: bool) -> bool {
        self.buffered_rows > 0
            && (closing
                || self.buffered_rows >= self.settings.commit_rows
                || self
                    .buffered_since
                    .is_some_and(|t| t.elapsed() >= self.settings.commit_interval))
    }

    /// Commits every table holding rows.
    async fn commit_all(&mut self) -> Result<(), SinkError> {
        let catalog = self.catalog().await?;
        let names: Vec<String> = self
            .tables
            .iter()
            .filter(|(_, t)| t.rows > 0)
            .map(|(n, _)| n.clone())
            .collect();
        for name in names {
            let state = self.tables.get_mut(&name).expect("listed above");
            let rows = state.rows;
            let outcome = state
                .commit(catalog.as_ref(), &self.instance, &self.settings)
                .await?;
            self.buffered_rows -= rows;
            self.stats.rows += outcome.rows as u64;
            self.stats.files += outcome.files as u64;
            if outcome.snapshot.is_some() && outcome.rows > 0 {
                self.stats.snapshots += 1;
            }
            tracing::info!(
                table = %name,
                rows = outcome.rows,
                files = outcome.files,
                snapshot = ?outcome.snapshot,
                "committed a snapshot"
            );
        }
        self.buffered_rows = 0;
        self.first_buffered = None;
        self.buffered_since = None;
        Ok(())
    }

    /// What the sink did since open.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The offsets a table holds from this instance, as last read or committed.
    pub fn committed_offsets(&self, table: &str) -> Option<&Offsets> {
        self.tables.get(table).map(|t| &t.committed)
    }
}

impl Sink for IcebergSink {
    type Config = IcebergSinkConfig;

    fn new(config: IcebergSinkConfig, ctx: &InstanceContext) -> Result<Self, PluginError> {
        let settings = Settings::from_config(config)?;
        if settings.commit_retries_set {
            tracing::warn!(
                instance = %ctx.instance_key(),
                "plugin_config.commit_retries has no effect: a commit that conflicts with another writer goes back to the host, which retries it (reload, re-check, write, commit)"
            );
        }
        Ok(IcebergSink {
            settings,
            instance: ctx.instance_key().to_string(),
            catalog: None,
            tables: HashMap::new(),
            accepted: 0,
            first_buffered: None,
            buffered_since: None,
            buffered_rows: 0,
            stats: Stats::default(),
        })
    }

    /// Connects to the catalog and opens (or creates) the listed tables, reading the
    /// offsets each holds: a wrong table fails here, not at the first batch.
    async fn open(&mut self) -> Result<(), PluginError> {
        let idents = self.settings.tables.clone();
        for ident in &idents {
            if let Err(e) = self.ensure_table(ident).await {
                return Err(self.plugin_error(e));
            }
        }
        Ok(())
    }

    async fn consume(&mut self, batch: SinkBatch<'_>) -> Result<(), PluginError> {
        let skipped_before = self.stats.skipped;
        match self.buffer(&batch).await {
            Ok(()) => {
                self.accepted += 1;
                Ok(())
            }
            Err(e) => {
                self.stats.skipped = skipped_before;
                Err(self.plugin_error(e))
            }
        }
    }

    async fn flush(&mut self, consumed: u64, closing: bool) -> Result<u64, PluginError> {
        if self.due(closing) {
            if let Err(e) = self.commit_all().await {
                return Err(self.plugin_error(e));
            }
        }
        Ok(match self.first_buffered {
            Some(first) => first.saturating_sub(1).min(consumed),
            None => consumed,
        })
    }

    async fn close(&mut self) -> Result<(), PluginError> {
        if self.buffered_rows > 0 {
            // The host flushes with `closing` first; this is a last resort.
            if let Err(e) = self.commit_all().await {
                return Err(self.plugin_error(e));
            }
        }
        tracing::info!(
            rows = self.stats.rows,
            files = self.stats.files,
            snapshots = self.stats.snapshots,
            skipped = self.stats.skipped,
            "closed"
        );
        self.catalog = None;
        Ok(())
    }
}

export_plugin! {
    key: "iceberg",
    name: "Apache Iceberg",
    description: "Appends messages to Apache Iceberg tables (SQL/SQLite or REST catalog, local or S3 storage), exactly once, in few Parquet files",
    sink: IcebergSink,
}
