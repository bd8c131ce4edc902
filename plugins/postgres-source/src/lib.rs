//! `postgres` source: reads PostgreSQL into a stream, in one of two modes.
//!
//! - **polling**: new rows of one table, in the order of a strictly increasing column,
//!   as JSON objects (`row_to_json`). The saved state is the last value read, so a
//!   restart neither skips nor repeats rows.
//! - **cdc**: every insert, update and delete, as JSON change events, from a logical
//!   replication slot (`test_decoding`). Changes are read with
//!   `pg_logical_slot_peek_changes` and the slot only moves forward
//!   (`pg_replication_slot_advance`) once the host has the batch durably in the stream
//!   ([`Source::committed`]); the saved state is the batch's LSN.
//!
//! See the README for the config, the event format and the delivery guarantee.

mod config;
mod decoding;
mod error;

use std::{collections::VecDeque, time::Duration};

use ld_plugin_api::{export_plugin, InstanceContext, PluginError, Schema, Source, SourceBatch};
use tokio_postgres::{Client, Statement};

use config::{parse_duration, quote_ident, PgConnector, TableName, TlsSettings};
pub use config::{Mode, PostgresSourceConfig};
use decoding::{format_lsn, parse_change, parse_lsn};
use error::SourceError;

/// The checkpoint the host saves after each committed batch.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct PostgresSourceState {
    /// Polling: the tracking column's value of the last row read, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_value: Option<String>,
    /// CDC: the LSN after the last transaction read (`16/B374D848`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lsn: Option<String>,
}

/// What each mode needs, checked from the config.
enum Plan {
    Polling {
        table: TableName,
        column: String,
    },
    Cdc {
        slot: String,
        tables: Vec<TableName>,
        /// Only these operations (lower case); `None`: all.
        operations: Option<Vec<String>>,
    },
}

/// A CDC batch handed to the host and not yet acknowledged.
struct Pending {
    seq: u64,
    /// The LSN to advance the slot to.
    lsn: u64,
    /// Rows of the slot's output from its current position through this batch.
    rows: u64,
}

struct Conn {
    client: Client,
    /// Polling: the first read (no state) and the next reads (after a value).
    first: Option<Statement>,
    next: Option<Statement>,
}

/// Reads a PostgreSQL table or its change stream.
pub struct PostgresSource {
    /// Opens connections (holds the password and the TLS setup).
    connector: PgConnector,
    plan: Plan,
    batch_size: u32,
    poll_interval: Duration,
    /// Log each batch at info level.
    verbose: bool,
    instance: String,
    conn: Option<Conn>,
    /// Polling: the last value read.
    last_value: Option<String>,
    /// CDC: the LSN after the last transaction read; transactions ending at or before it
    /// are skipped when the slot shows them again.
    cursor: u64,
    /// CDC: rows of the slot's output between its position and `cursor`.
    rows_ahead: u64,
    /// CDC: batches the host has not acknowledged yet.
    pending: VecDeque<Pending>,
    /// Non-empty batches returned since `open`; the host's `committed(seq)` counts these.
    seq: u64,
}

impl PostgresSource {
    fn scrub(&self, text: &str) -> String {
        self.connector.scrub(text)
    }

    async fn connect(&self) -> Result<Conn, SourceError> {
        let client = self
            .connector
            .connect(&self.instance)
            .await
            .map_err(|e| SourceError::connect(self.connector.target(), e))?;
        let mut conn = Conn {
            client,
            first: None,
            next: None,
        };
        match &self.plan {
            Plan::Polling { table, column } => {
                let ty: Option<String> = conn
                    .client
                    .query_opt(
                        "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
                         JOIN pg_class c ON c.oid = a.attrelid \
                         JOIN pg_namespace n ON n.oid = c.relnamespace \
                         WHERE n.nspname = $1 AND c.relname = $2 AND a.attname = $3 \
                           AND a.attnum > 0 AND NOT a.attisdropped",
                        &[&table.schema, &table.table, column],
                    )
                    .await
                    .map_err(|e| SourceError::db("cannot look up the tracking column", &e))?
                    .map(|r| r.get(0));
                let Some(ty) = ty else {
                    let exists: bool = conn
                        .client
                        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table.quoted()])
                        .await
                        .map_err(|e| SourceError::db("cannot look up the table", &e))?
                        .get(0);
                    return Err(SourceError::Setup(if exists {
                        format!(
                            "table {table} has no column \"{column}\" (set tracking_column to a strictly increasing column)"
                        )
                    } else {
                        format!("table {table} does not exist")
                    }));
                };
                let select = format!(
                    "SELECT row_to_json(t)::text, (t.{col})::text FROM {} t",
                    table.quoted(),
                    col = quote_ident(column)
                );
                let col = quote_ident(column);
                let prepare = |sql: String| {
                    let client = &conn.client;
                    async move {
                        client
                            .prepare(&sql)
                            .await
                            .map_err(|e| SourceError::db("cannot prepare the read statements", &e))
                    }
                };
                let first = prepare(format!(
                    "{select} WHERE t.{col} IS NOT NULL ORDER BY t.{col} LIMIT $1"
                ))
                .await?;
                let next = prepare(format!(
                    "{select} WHERE t.{col} > CAST($1::text AS {ty}) ORDER BY t.{col} LIMIT $2"
                ))
                .await?;
                conn.first = Some(first);
                conn.next = Some(next);
            }
            Plan::Cdc { slot, .. } => {
                let wal_level: String = conn
                    .client
                    .query_one("SELECT current_setting('wal_level')", &[])
                    .await
                    .map_err(|e| SourceError::db("cannot read wal_level", &e))?
                    .get(0);
                if wal_level != "logical" {
                    return Err(SourceError::Setup(format!(
                        "CDC needs wal_level = logical, but the server runs with wal_level = {wal_level} (set it in postgresql.conf and restart the server)"
                    )));
                }
                let existing = conn
                    .client
                    .query_opt(
                        "SELECT plugin::text, database::text = current_database()::text, \
                                confirmed_flush_lsn::text \
                         FROM pg_replication_slots WHERE slot_name = $1",
                        &[slot],
                    )
                    .await
                    .map_err(|e| SourceError::db("cannot look up the replication slot", &e))?;
                let confirmed = match existing {
                    Some(row) => {
                        let plugin: Option<String> = row.get(0);
                        let same_db: Option<bool> = row.get(1);
                        if plugin.as_deref() != Some("test_decoding") {
                            return Err(SourceError::Setup(format!(
                                "replication slot \"{slot}\" uses plugin {}, not test_decoding (drop it or choose another slot_name)",
                                plugin.unwrap_or_else(|| "none (a physical slot)".into())
                            )));
                        }
                        if same_db != Some(true) {
                            return Err(SourceError::Setup(format!(
                                "replication slot \"{slot}\" belongs to another database (choose another slot_name)"
                            )));
                        }
                        let lsn: Option<String> = row.get(2);
                        lsn.as_deref().and_then(parse_lsn).unwrap_or(0)
                    }
                    None => {
                        let lsn: String = conn
                            .client
                            .query_one(
                                "SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'test_decoding')",
                                &[slot],
                            )
                            .await
                            .map_err(|e| {
                                SourceError::db(format!("cannot create replication slot \"{slot}\""), &e)
                            })?
                            .get(0);
                        tracing::info!(slot = %slot, lsn = %lsn, "created the replication slot");
                        parse_lsn(&lsn).unwrap_or(0)
                    }
                };
                // The host saved a batch's state but stopped before acknowledging it:
                // that batch is in the stream, so move the slot past it. (Only when
                // resuming: during a run, batches past the slot are not acknowledged yet.)
                if self.pending.is_empty() && self.cursor > confirmed {
                    advance(&conn.client, slot, self.cursor).await?;
                }
            }
        }
        tracing::info!(
            target = %self.connector.target(),
            sslmode = %self.connector.ssl_mode(),
            "connected to PostgreSQL"
        );
        Ok(conn)
    }

    async fn ensure_connected(&mut self) -> Result<(), SourceError> {
        self.drop_broken_connection();
        if self.conn.is_none() {
            let conn = self.connect().await?;
            self.conn = Some(conn);
        }
        Ok(())
    }

    /// Whether a connection is held that has not closed.
    fn connected(&self) -> bool {
        self.conn.as_ref().is_some_and(|c| !c.client.is_closed())
    }

    /// Forgets a connection that has closed; returns whether there was one.
    fn drop_broken_connection(&mut self) -> bool {
        if self.conn.as_ref().is_some_and(|c| c.client.is_closed()) {
            self.conn = None;
            return true;
        }
        false
    }

    /// After a failed call: `Ok` when it is worth one more try at once, because the
    /// connection held from before (`had_connection`) turned out to be gone (a restarted
    /// server, an idle connection dropped by a proxy) and no reconnect was made yet;
    /// otherwise the error for the host, classified, which retries with backoff.
    fn reconnect_once(
        &mut self,
        what: &str,
        err: SourceError,
        had_connection: bool,
        reconnected: &mut bool,
    ) -> Result<(), PluginError> {
        // The error may come before the client has marked itself closed.
        let lost = self.drop_broken_connection() || err.is_connection_lost();
        if lost {
            self.conn = None;
        }
        if had_connection && lost && err.is_transient() && !*reconnected {
            *reconnected = true;
            tracing::info!(
                "{what}: the connection to PostgreSQL was lost, reconnecting once: {}",
                self.scrub(&err.to_string())
            );
            return Ok(());
        }
        Err(err.into_plugin_error(|t| self.scrub(t)))
    }

    async fn read_rows(&mut self) -> Result<SourceBatch, SourceError> {
        self.ensure_connected().await?;
        let conn = self.conn.as_ref().expect("connected above");
        let limit = i64::from(self.batch_size);
        let rows = match &self.last_value {
            None => {
                conn.client
                    .query(conn.first.as_ref().expect("polling"), &[&limit])
                    .await
            }
            Some(last) => {
                conn.client
                    .query(conn.next.as_ref().expect("polling"), &[last, &limit])
                    .await
            }
        }
        .map_err(|e| SourceError::db("cannot read new rows", &e))?;
        let mut batch = SourceBatch::with_capacity(rows.len(), rows.len() * 128);
        for row in &rows {
            let json: &str = row.get(0);
            batch.push(Schema::Json, json.as_bytes());
        }
        if let Some(last) = rows.last() {
            self.last_value = Some(last.get(1));
        }
        Ok(batch)
    }

    async fn read_changes(&mut self) -> Result<(SourceBatch, u64, u64), SourceError> {
        self.ensure_connected().await?;
        let Plan::Cdc {
            slot,
            tables,
            operations,
        } = &self.plan
        else {
            unreachable!("cdc only")
        };
        let conn = self.conn.as_ref().expect("connected above");
        // The slot's output counts BEGIN and COMMIT rows too: room for a batch of
        // one-change transactions past what was already handed out.
        let upto =
            i32::try_from(self.rows_ahead + 3 * u64::from(self.batch_size)).unwrap_or(i32::MAX);
        let rows = conn
            .client
            .query(
                "SELECT lsn::text, xid::text::bigint, data FROM pg_logical_slot_peek_changes($1, NULL, $2, \
                 'include-xids', '1', 'skip-empty-xacts', '1')",
                &[slot, &upto],
            )
            .await
            .map_err(|e| SourceError::db(format!("cannot read changes from slot \"{slot}\""), &e))?;
        let mut batch = SourceBatch::new();
        let mut txn: Vec<serde_json::Value> = Vec::new();
        let mut cursor = self.cursor;
        let mut rows_through = self.rows_ahead;
        for (index, row) in rows.iter().enumerate() {
            let lsn_text: &str = row.get(0);
            let xid: Option<i64> = row.get(1);
            let data: &str = row.get(2);
            if data.starts_with("BEGIN") {
                txn.clear();
            } else if data.starts_with("COMMIT") {
                let end = parse_lsn(lsn_text).unwrap_or(0);
                if end <= cursor {
                    txn.clear();
                    continue; // already handed out
                }
                for event in txn.drain(..) {
                    batch
                        .push_json(&event)
                        .map_err(|e| SourceError::Setup(e.message().to_string()))?;
                }
                cursor = end;
                rows_through = index as u64 + 1;
                if batch.len() >= self.batch_size as usize {
                    break;
                }
            } else if let Some(change) = parse_change(data) {
                let wanted = (tables.is_empty()
                    || tables
                        .iter()
                        .any(|t| change.table == format!("{}.{}", t.schema, t.table)))
                    && operations
                        .as_ref()
                        .is_none_or(|ops| ops.contains(&change.operation));
                if wanted {
                    txn.push(change.to_event(xid, lsn_text));
                }
            } else {
                tracing::warn!("skipped a change the source cannot read: {data}");
            }
        }
        Ok((batch, cursor, rows_through))
    }
}

async fn advance(client: &Client, slot: &str, lsn: u64) -> Result<(), SourceError> {
    client
        .execute(
            "SELECT pg_replication_slot_advance($1, $2::text::pg_lsn)",
            &[&slot, &format_lsn(lsn)],
        )
        .await
        .map_err(|e| SourceError::db(format!("cannot advance replication slot \"{slot}\""), &e))?;
    Ok(())
}

impl Source for PostgresSource {
    type Config = PostgresSourceConfig;
    type State = PostgresSourceState;

    fn new(
        mut config: PostgresSourceConfig,
        state: Option<PostgresSourceState>,
        ctx: &InstanceContext,
    ) -> Result<Self, PluginError> {
        let invalid = |field: &str, reason: String| {
            PluginError::invalid_config(format!("plugin_config.{field}: {reason}"))
        };
        let unused = config.adopt_iggy_fields()?;
        ld_postgres_common::warn_unused(ctx.instance_key(), &unused);
        let connector = PgConnector::new(
            config.connection_string.expose(),
            TlsSettings {
                ssl_mode: config.ssl_mode,
                ssl_root_cert: config.ssl_root_cert.as_deref(),
            },
            &format!("ld-connectord {}", ctx.instance_key()),
        )
        .map_err(|e| invalid(e.field, e.reason))?;
        if config.batch_size == 0 {
            return Err(invalid("batch_size", "must be at least 1".into()));
        }
        let poll_interval =
            parse_duration(&config.poll_interval).map_err(|r| invalid("poll_interval", r))?;
        let state = state.unwrap_or_default();
        let mut cursor = 0;
        let plan = match config.mode {
            Mode::Polling => {
                let table = config.table.as_deref().ok_or_else(|| {
                    invalid(
                        "table",
                        "missing (the table to read; required in polling mode)".into(),
                    )
                })?;
                let table = TableName::parse(table).map_err(|r| invalid("table", r))?;
                if config.tracking_column.is_empty() {
                    return Err(invalid("tracking_column", "must not be empty".into()));
                }
                Plan::Polling {
                    table,
                    column: config.tracking_column,
                }
            }
            Mode::Cdc => {
                let slot = config.slot_name.unwrap_or_else(|| {
                    let key: String = ctx
                        .instance_key()
                        .chars()
                        .map(|c| {
                            if c.is_ascii_alphanumeric() {
                                c.to_ascii_lowercase()
                            } else {
                                '_'
                            }
                        })
                        .collect();
                    format!("ld_{key}").chars().take(63).collect()
                });
                if slot.is_empty()
                    || !slot
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                {
                    return Err(invalid(
                        "slot_name",
                        format!("`{slot}` is not a slot name (lower-case letters, digits and _)"),
                    ));
                }
                let tables = config
                    .tables
                    .iter()
                    .map(|t| TableName::parse(t))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|r| invalid("tables", r))?;
                if let Some(lsn) = &state.lsn {
                    cursor = parse_lsn(lsn).ok_or_else(|| {
                        PluginError::fatal(format!("the saved source state has a bad LSN `{lsn}`"))
                    })?;
                }
                Plan::Cdc {
                    slot,
                    tables,
                    operations: config.capture_operations,
                }
            }
        };
        Ok(PostgresSource {
            connector,
            plan,
            batch_size: config.batch_size,
            poll_interval,
            verbose: config.verbose_logging,
            instance: ctx.instance_key().to_string(),
            conn: None,
            last_value: state.last_value.or(config.initial_value),
            cursor,
            rows_ahead: 0,
            pending: VecDeque::new(),
            seq: 0,
        })
    }

    /// Connects and checks the table or the slot (creating the slot when missing), so a
    /// wrong config fails here. Failures go back to the host, which retries transient
    /// ones with backoff.
    async fn open(&mut self) -> Result<(), PluginError> {
        self.ensure_connected()
            .await
            .map_err(|err| err.into_plugin_error(|t| self.scrub(t)))
    }

    async fn poll(&mut self) -> Result<SourceBatch, PluginError> {
        let mut reconnected = false;
        let mut batch = loop {
            let had_connection = self.connected();
            let result = match self.plan {
                Plan::Polling { .. } => self.read_rows().await,
                Plan::Cdc { .. } => match self.read_changes().await {
                    Ok((batch, cursor, rows)) => {
                        if cursor != self.cursor {
                            self.pending.push_back(Pending {
                                seq: self.seq + 1,
                                lsn: cursor,
                                rows,
                            });
                            self.cursor = cursor;
                            self.rows_ahead = rows;
                        }
                        Ok(batch)
                    }
                    Err(e) => Err(e),
                },
            };
            match result {
                Ok(batch) => break batch,
                Err(err) => {
                    self.reconnect_once("reading", err, had_connection, &mut reconnected)?
                }
            }
        };
        if !batch.is_empty() {
            if self.verbose {
                tracing::info!(messages = batch.len(), "read {} messages", batch.len());
            } else {
                tracing::debug!(messages = batch.len(), "read {} messages", batch.len());
            }
        }
        let state = match self.plan {
            Plan::Polling { .. } if !batch.is_empty() => Some(PostgresSourceState {
                last_value: self.last_value.clone(),
                lsn: None,
            }),
            Plan::Cdc { .. } if self.pending.back().is_some_and(|p| p.seq == self.seq + 1) => {
                Some(PostgresSourceState {
                    last_value: None,
                    lsn: Some(format_lsn(self.cursor)),
                })
            }
            _ => None,
        };
        match state {
            Some(state) => {
                batch.set_state(&state)?;
                self.seq += 1;
            }
            None => tokio::time::sleep(self.poll_interval).await,
        }
        Ok(batch)
    }

    async fn committed(&mut self, seq: u64) -> Result<(), PluginError> {
        let Plan::Cdc { slot, .. } = &self.plan else {
            return Ok(());
        };
        let Some(index) = self.pending.iter().rposition(|p| p.seq <= seq) else {
            return Ok(());
        };
        let (lsn, gone) = (self.pending[index].lsn, self.pending[index].rows);
        let slot = slot.clone();
        let mut reconnected = false;
        loop {
            let had_connection = self.connected();
            let result = match self.ensure_connected().await {
                Ok(()) => {
                    let client = &self.conn.as_ref().expect("connected above").client;
                    advance(client, &slot, lsn).await
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => break,
                Err(err) => self.reconnect_once(
                    "advancing the slot",
                    err,
                    had_connection,
                    &mut reconnected,
                )?,
            }
        }
        self.pending.drain(..=index);
        for p in &mut self.pending {
            p.rows = p.rows.saturating_sub(gone);
        }
        self.rows_ahead = self.rows_ahead.saturating_sub(gone);
        Ok(())
    }

    async fn close(&mut self) -> Result<(), PluginError> {
        self.conn = None;
        Ok(())
    }
}

export_plugin! {
    key: "postgres",
    name: "PostgreSQL",
    description: "Reads new rows of a PostgreSQL table (polling) or its inserts, updates and deletes (CDC, logical decoding) as JSON",
    source: PostgresSource,
}
