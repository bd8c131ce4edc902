//! The target table: what the sink writes into it, checking it fits, creating it.

use tokio_postgres::Client;

use crate::{
    config::{quote_ident, PayloadFormat, Settings},
    error::SinkError,
};

/// Metadata columns, in COPY order, with the types the binary encoding produces.
pub const METADATA_COLUMNS: &[(&str, &str)] = &[
    ("ld_stream", "text"),
    ("ld_topic", "text"),
    ("ld_partition", "integer"),
    ("ld_offset", "bigint"),
    ("ld_message_id", "uuid"),
    ("ld_timestamp", "timestamp with time zone"),
];

/// The payload column's name.
pub const PAYLOAD_COLUMN: &str = "payload";

/// The columns of the deduplication key.
pub const KEY_COLUMNS: &[&str] = &["ld_stream", "ld_topic", "ld_partition", "ld_offset"];

/// How the payload is encoded in binary COPY, from the payload column's actual type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadEncoding {
    /// `jsonb`: a version byte, then the JSON text.
    Jsonb,
    /// `json`, `text`, `varchar`, `bytea`: the bytes as they are.
    Plain,
}

/// The SQL type of the payload column for a format when the sink creates the table.
fn payload_sql_type(format: PayloadFormat) -> &'static str {
    match format {
        PayloadFormat::Jsonb => "jsonb",
        PayloadFormat::Bytea => "bytea",
        PayloadFormat::Text => "text",
    }
}

/// The column list the sink COPYs, quoted and comma-separated.
pub fn column_list(include_metadata: bool) -> String {
    let mut names: Vec<&str> = Vec::new();
    if include_metadata {
        names.extend(METADATA_COLUMNS.iter().map(|(n, _)| *n));
    }
    names.push(PAYLOAD_COLUMN);
    names
        .iter()
        .map(|n| quote_ident(n))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `CREATE TABLE IF NOT EXISTS` for the configured table.
pub fn create_table_sql(settings: &Settings) -> String {
    let mut columns: Vec<String> = Vec::new();
    if settings.include_metadata {
        for (name, ty) in METADATA_COLUMNS {
            columns.push(format!("{} {ty} NOT NULL", quote_ident(name)));
        }
    }
    columns.push(format!(
        "{} {}",
        quote_ident(PAYLOAD_COLUMN),
        payload_sql_type(settings.payload_format)
    ));
    if settings.include_metadata {
        columns.push(format!(
            "PRIMARY KEY ({})",
            KEY_COLUMNS
                .iter()
                .map(|c| quote_ident(c))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    format!(
        "CREATE TABLE IF NOT EXISTS {} ({})",
        settings.table.quoted(),
        columns.join(", ")
    )
}

/// The staging table a possibly redelivered batch is copied into first.
pub fn create_stage_sql(payload_type: &str) -> String {
    let mut columns: Vec<String> = METADATA_COLUMNS
        .iter()
        .map(|(name, ty)| format!("{} {ty}", quote_ident(name)))
        .collect();
    columns.push(format!("{} {payload_type}", quote_ident(PAYLOAD_COLUMN)));
    format!(
        "CREATE TEMPORARY TABLE IF NOT EXISTS ld_sink_stage ({}) ON COMMIT DELETE ROWS",
        columns.join(", ")
    )
}

struct Column {
    name: String,
    ty: String,
    required: bool,
}

async fn columns(client: &Client, settings: &Settings) -> Result<Vec<Column>, SinkError> {
    let rows = client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), \
                    a.attnotnull AND NOT a.atthasdef AND a.attidentity = '' AND a.attgenerated = '' \
             FROM pg_attribute a \
             JOIN pg_class c ON c.oid = a.attrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p') \
               AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
            &[&settings.table.schema, &settings.table.table],
        )
        .await
        .map_err(|e| SinkError::db(format!("cannot read the columns of table {}", settings.table), &e))?;
    Ok(rows
        .iter()
        .map(|r| Column {
            name: r.get(0),
            ty: r.get(1),
            required: r.get(2),
        })
        .collect())
}

fn type_fits(actual: &str, wanted: &str) -> bool {
    let base = actual.split('(').next().unwrap_or(actual).trim();
    match wanted {
        "text" => base == "text" || base == "character varying",
        _ => base == wanted,
    }
}

/// Checks (and, if allowed, creates) the target table. Returns the payload column's
/// actual type and how to encode payloads for it.
pub async fn prepare(
    client: &Client,
    settings: &Settings,
) -> Result<(String, PayloadEncoding), SinkError> {
    let mut cols = columns(client, settings).await?;
    if cols.is_empty() {
        if !settings.auto_create_table {
            return Err(SinkError::MissingTable {
                table: settings.table.to_string(),
            });
        }
        client
            .batch_execute(&create_table_sql(settings))
            .await
            .map_err(|e| SinkError::db(format!("cannot create table {}", settings.table), &e))?;
        tracing::info!(table = %settings.table, "created the target table");
        cols = columns(client, settings).await?;
    }
    let table = settings.table.to_string();
    let bad = |problem: String| SinkError::BadTable {
        table: table.clone(),
        problem,
    };
    let find = |name: &str| cols.iter().find(|c| c.name == name);

    let payload = find(PAYLOAD_COLUMN).ok_or_else(|| {
        bad(format!(
            "has no column \"{PAYLOAD_COLUMN}\" (add one of type {})",
            payload_sql_type(settings.payload_format)
        ))
    })?;
    let format = settings.payload_format;
    let encoding = match format {
        PayloadFormat::Jsonb if type_fits(&payload.ty, "jsonb") => PayloadEncoding::Jsonb,
        PayloadFormat::Jsonb if type_fits(&payload.ty, "json") => PayloadEncoding::Plain,
        PayloadFormat::Bytea if type_fits(&payload.ty, "bytea") => PayloadEncoding::Plain,
        PayloadFormat::Text if type_fits(&payload.ty, "text") => PayloadEncoding::Plain,
        _ => {
            let wanted = match format {
                PayloadFormat::Jsonb => "jsonb or json",
                PayloadFormat::Bytea => "bytea",
                PayloadFormat::Text => "text or varchar",
            };
            return Err(bad(format!(
                "column \"{PAYLOAD_COLUMN}\" has type {}, but payload_format = {} needs {wanted}",
                payload.ty,
                format.as_str()
            )));
        }
    };
    let mut written = vec![PAYLOAD_COLUMN];
    if settings.include_metadata {
        for (name, wanted) in METADATA_COLUMNS {
            written.push(name);
            match find(name) {
                None => {
                    return Err(bad(format!(
                        "has no column \"{name}\" (add it as {wanted}, or set include_metadata = false)"
                    )))
                }
                Some(c) if !type_fits(&c.ty, wanted) => {
                    return Err(bad(format!(
                        "column \"{name}\" has type {}, but the sink writes {wanted}",
                        c.ty
                    )))
                }
                Some(_) => {}
            }
        }
        let unique: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_index i \
                   WHERE i.indrelid = (quote_ident($1) || '.' || quote_ident($2))::regclass \
                     AND i.indisunique AND i.indpred IS NULL \
                     AND (SELECT array_agg(a.attname::text ORDER BY a.attname::text) \
                          FROM pg_attribute a \
                          WHERE a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)) \
                         = ARRAY['ld_offset', 'ld_partition', 'ld_stream', 'ld_topic'])",
                &[&settings.table.schema, &settings.table.table],
            )
            .await
            .map_err(|e| SinkError::db(format!("cannot read the indexes of table {table}"), &e))?
            .get(0);
        if !unique {
            return Err(bad(format!(
                "has no unique key on (ld_stream, ld_topic, ld_partition, ld_offset), so a \
                 redelivered batch would add duplicate rows (add it: ALTER TABLE {} ADD UNIQUE \
                 (ld_stream, ld_topic, ld_partition, ld_offset))",
                settings.table.quoted()
            )));
        }
    }
    if let Some(c) = cols
        .iter()
        .find(|c| c.required && !written.contains(&c.name.as_str()))
    {
        return Err(bad(format!(
            "column \"{}\" is NOT NULL without a default, and the sink does not write it \
             (give it a default or allow NULL)",
            c.name
        )));
    }
    Ok((payload.ty.clone(), encoding))
}
