//! `postgres` sink: writes each batch of messages into a PostgreSQL table with one
//! binary `COPY` in one transaction.
//!
//! With `include_metadata` (the default) each row also carries the message's stream,
//! topic, partition, offset, id and timestamp, and the table has a unique key on
//! (stream, topic, partition, offset), so a batch delivered again after a crash adds no
//! duplicate rows: when any row of the batch's offset range already exists the batch is
//! copied into a temporary table and moved with `INSERT ... ON CONFLICT DO NOTHING`;
//! otherwise (the normal case) it is copied straight into the table.
//!
//! See the README for the config and the delivery guarantee.

mod config;
mod copy;
mod error;
mod table;

use bytes::BytesMut;
use futures::SinkExt;
use ld_plugin_api::{export_plugin, InstanceContext, PluginError, Sink, SinkBatch};
use tokio_postgres::{Client, Statement};

use config::{quote_ident, Settings};
pub use config::{PayloadFormat, PostgresSinkConfig};
use error::SinkError;
use table::PayloadEncoding;

/// An open connection with its statements prepared.
struct Conn {
    client: Client,
    /// How payloads are encoded for the payload column's type.
    encoding: PayloadEncoding,
    copy_target: Statement,
    /// Present with metadata: the deduplicating path.
    dedup: Option<Dedup>,
}

struct Dedup {
    any_in_range: Statement,
    copy_stage: Statement,
    insert_from_stage: Statement,
}

/// Writes batches into a PostgreSQL table.
pub struct PostgresSink {
    settings: Settings,
    instance: String,
    conn: Option<Conn>,
    /// The current batch in binary COPY format, and the payload encoding used.
    buffer: BytesMut,
    encoded_with: Option<PayloadEncoding>,
}

impl PostgresSink {
    async fn connect(&self) -> Result<Conn, SinkError> {
        let client = self
            .settings
            .connector
            .connect(&self.instance)
            .await
            .map_err(|e| SinkError::connect(self.settings.target(), e))?;
        let (payload_type, encoding) = table::prepare(&client, &self.settings).await?;
        let target = self.settings.table.quoted();
        let columns = table::column_list(self.settings.include_metadata);
        let prepare = |sql: String| {
            let client = &client;
            async move {
                client
                    .prepare(&sql)
                    .await
                    .map_err(|e| SinkError::db("cannot prepare the write statements", &e))
            }
        };
        let copy_target = prepare(format!(
            "COPY {target} ({columns}) FROM STDIN (FORMAT binary)"
        ))
        .await?;
        let dedup = if self.settings.include_metadata {
            client
                .batch_execute(&table::create_stage_sql(&payload_type))
                .await
                .map_err(|e| SinkError::db("cannot create the staging table", &e))?;
            let key = |name: &str| quote_ident(name);
            Some(Dedup {
                any_in_range: prepare(format!(
                    "SELECT EXISTS (SELECT 1 FROM {target} WHERE {} = $1 AND {} = $2 AND {} = $3 \
                     AND {} BETWEEN $4 AND $5)",
                    key("ld_stream"),
                    key("ld_topic"),
                    key("ld_partition"),
                    key("ld_offset")
                ))
                .await?,
                copy_stage: prepare(format!(
                    "COPY pg_temp.ld_sink_stage ({columns}) FROM STDIN (FORMAT binary)"
                ))
                .await?,
                insert_from_stage: prepare(format!(
                    "INSERT INTO {target} ({columns}) SELECT {columns} FROM pg_temp.ld_sink_stage \
                     ON CONFLICT DO NOTHING"
                ))
                .await?,
            })
        } else {
            None
        };
        tracing::info!(
            target = %self.settings.target(),
            table = %self.settings.table,
            sslmode = %self.settings.connector.ssl_mode(),
            "connected to PostgreSQL"
        );
        Ok(Conn {
            client,
            encoding,
            copy_target,
            dedup,
        })
    }

    /// Connects when there is no live connection.
    async fn ensure_connected(&mut self) -> Result<(), SinkError> {
        self.drop_broken_connection();
        if self.conn.is_none() {
            let conn = self.connect().await?;
            self.conn = Some(conn);
        }
        Ok(())
    }

    /// Forgets a connection that has closed; returns whether there was one.
    fn drop_broken_connection(&mut self) -> bool {
        if self.conn.as_ref().is_some_and(|c| c.client.is_closed()) {
            self.conn = None;
            return true;
        }
        false
    }

    /// The error for the host, with the password scrubbed out. The host retries
    /// transient errors with backoff; the sink does not retry on its own.
    fn fail(&self, err: SinkError) -> PluginError {
        err.into_plugin_error(|t| self.settings.scrub(t))
    }

    /// Writes the batch in one transaction.
    async fn write(&mut self, batch: &SinkBatch<'_>, dedup: bool) -> Result<(), SinkError> {
        self.ensure_connected().await?;
        let conn = self.conn.as_mut().expect("connected above");
        // Encoded once per batch (again only if a reconnect found another column type).
        if self.encoded_with != Some(conn.encoding) {
            copy::encode_batch(
                &mut self.buffer,
                batch,
                self.settings.include_metadata,
                conn.encoding,
            );
            self.encoded_with = Some(conn.encoding);
        }
        let data = self.buffer.clone().freeze();
        let tx = conn
            .client
            .transaction()
            .await
            .map_err(|e| SinkError::db("cannot begin a transaction", &e))?;
        match &conn.dedup {
            None => {
                copy_in(&tx, &conn.copy_target, data, "cannot copy the batch").await?;
            }
            Some(d) => {
                let (first, last) = offset_range(batch);
                let seen: bool = if dedup {
                    true
                } else {
                    tx.query_one(
                        &d.any_in_range,
                        &[
                            &batch.stream(),
                            &batch.topic(),
                            &(batch.partition() as i32),
                            &first,
                            &last,
                        ],
                    )
                    .await
                    .map_err(|e| SinkError::db("cannot look for already written rows", &e))?
                    .get(0)
                };
                if seen {
                    copy_in(
                        &tx,
                        &d.copy_stage,
                        data,
                        "cannot copy the batch into the staging table",
                    )
                    .await?;
                    let added = tx
                        .execute(&d.insert_from_stage, &[])
                        .await
                        .map_err(|e| SinkError::db("cannot move the batch into the table", &e))?;
                    tracing::info!(
                        "batch at offsets {first}..={last} was delivered again: {added} of {} rows were new",
                        batch.len()
                    );
                } else {
                    match copy_in(&tx, &conn.copy_target, data, "cannot copy the batch").await {
                        Err(SinkError::Db { reason, .. }) if reason.contains("SQLSTATE 23505") => {
                            // Written meanwhile by someone else: take the dedup path.
                            return Err(SinkError::Conflict);
                        }
                        other => {
                            other?;
                        }
                    }
                }
            }
        }
        tx.commit()
            .await
            .map_err(|e| SinkError::db("cannot commit the batch", &e))
    }
}

fn offset_range(batch: &SinkBatch<'_>) -> (i64, i64) {
    let mut offsets = batch.messages().iter().map(|m| m.offset() as i64);
    let first = offsets.next().unwrap_or(0);
    offsets.fold((first, first), |(lo, hi), o| (lo.min(o), hi.max(o)))
}

async fn copy_in(
    tx: &tokio_postgres::Transaction<'_>,
    statement: &Statement,
    data: bytes::Bytes,
    context: &str,
) -> Result<u64, SinkError> {
    let sink = tx
        .copy_in::<_, bytes::Bytes>(statement)
        .await
        .map_err(|e| SinkError::db(context, &e))?;
    let mut sink = std::pin::pin!(sink);
    sink.send(data)
        .await
        .map_err(|e| SinkError::db(context, &e))?;
    sink.as_mut()
        .finish()
        .await
        .map_err(|e| SinkError::db(context, &e))
}

impl Sink for PostgresSink {
    type Config = PostgresSinkConfig;

    fn new(config: PostgresSinkConfig, ctx: &InstanceContext) -> Result<Self, PluginError> {
        let settings = Settings::from_config(config, ctx.instance_key())?;
        ld_postgres_common::warn_unused(ctx.instance_key(), &settings.unused);
        Ok(PostgresSink {
            settings,
            instance: ctx.instance_key().to_string(),
            conn: None,
            buffer: BytesMut::new(),
            encoded_with: None,
        })
    }

    /// Connects and checks the table, so a wrong config fails here, not at the first
    /// batch.
    async fn open(&mut self) -> Result<(), PluginError> {
        self.ensure_connected().await.map_err(|e| self.fail(e))
    }

    /// Writes the batch. One quick reconnect when the connection held since an earlier
    /// batch turns out to be gone (a restarted server, an idle connection dropped by a
    /// proxy): that is no failure of this batch. Anything else goes back to the host,
    /// classified, and the host retries with backoff.
    async fn consume(&mut self, batch: SinkBatch<'_>) -> Result<(), PluginError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.encoded_with = None;
        let mut dedup = false;
        let mut reconnected = false;
        loop {
            let had_connection = self.conn.as_ref().is_some_and(|c| !c.client.is_closed());
            match self.write(&batch, dedup).await {
                Ok(()) => break,
                Err(SinkError::Conflict) if !dedup => dedup = true,
                Err(err) => {
                    // The error may come before the client has marked itself closed.
                    let lost = self.drop_broken_connection() || err.is_connection_lost();
                    if lost {
                        self.conn = None;
                    }
                    if had_connection && lost && err.is_transient() && !reconnected {
                        reconnected = true;
                        tracing::info!(
                            "the connection to PostgreSQL was lost, reconnecting once: {}",
                            self.settings.scrub(&err.to_string())
                        );
                        continue;
                    }
                    return Err(self.fail(err));
                }
            }
        }
        if self.settings.verbose {
            tracing::info!(
                rows = batch.len(),
                "wrote {} rows into {}",
                batch.len(),
                self.settings.table
            );
        } else {
            tracing::debug!(
                rows = batch.len(),
                "wrote {} rows into {}",
                batch.len(),
                self.settings.table
            );
        }
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
    description: "Writes messages into a PostgreSQL table (binary COPY, one transaction per batch, no duplicates on redelivery)",
    sink: PostgresSink,
}
