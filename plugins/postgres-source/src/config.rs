//! The source's `plugin_config`, and helpers to check it before any I/O.

use ld_plugin_api::PluginError;

/// `plugin_config` of the PostgreSQL source.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostgresSourceConfig {
    /// Where to connect: a URL `postgres://user:password@host:5432/database` or a
    /// `host=... user=... password=... dbname=...` string. Secret: never logged or
    /// echoed; the password is replaced by `***` in every message.
    pub connection_string: ld_plugin_api::Secret,
    /// TLS: `disable`, `prefer` (the default: TLS when the server offers it, without
    /// checking its certificate, else plain), `require` (TLS, certificate not checked),
    /// `verify-ca` (TLS, the certificate must be signed by a trusted CA) or `verify-full`
    /// (also: the certificate must name the host connected to). As libpq's `sslmode`,
    /// which may be given inside `connection_string` instead.
    #[serde(default)]
    pub ssl_mode: Option<SslMode>,
    /// TLS: a PEM file of the CAs to trust for `verify-ca` and `verify-full` (default:
    /// the system's trusted CAs; `system` says so explicitly). With `require`, a CA file
    /// makes the chain checked too, as libpq does. As libpq's `sslrootcert`, which may be
    /// given inside `connection_string` instead.
    #[serde(default)]
    pub ssl_root_cert: Option<String>,
    /// `polling` (read new rows of one table by a strictly increasing column) or `cdc`
    /// (inserts, updates and deletes of the whole database from a logical replication
    /// slot; needs `wal_level = logical`).
    #[serde(default)]
    pub mode: Mode,
    /// Polling: the table to read, `table` (schema `public`) or `schema.table`.
    #[serde(default)]
    pub table: Option<String>,
    /// Polling: a strictly increasing column (an identity or sequence id, an
    /// insert timestamp); rows are read in its order, each once.
    #[serde(default = "default_tracking_column")]
    pub tracking_column: String,
    /// Polling: start after this value of the tracking column (absent: from the first
    /// row). Only used when the source has no saved state yet. Iggy's name:
    /// `initial_offset`.
    #[serde(default, alias = "initial_offset")]
    pub initial_value: Option<String>,
    /// Most rows (polling) or changes (CDC, whole transactions) per batch.
    #[serde(default = "default_batch_size")]
    #[schemars(range(min = 1))]
    pub batch_size: u32,
    /// How long to wait before looking again when nothing new was found:
    /// e.g. `"500ms"`, `"1s"`.
    #[serde(default = "default_poll_interval")]
    pub poll_interval: String,
    /// CDC: the logical replication slot (plugin `test_decoding`), created when missing.
    /// Default: `ld_` + the instance key. Iggy's name: `replication_slot`.
    #[serde(default, alias = "replication_slot")]
    pub slot_name: Option<String>,
    /// CDC: only changes of these tables (`table` or `schema.table`); empty: all tables.
    /// Polling (Iggy's configs): one entry, the table to read, in place of `table`.
    #[serde(default)]
    pub tables: Vec<String>,
    /// CDC: only these operations (`insert`, `update`, `delete`, `truncate`, any case);
    /// absent: all.
    #[serde(default)]
    pub capture_operations: Option<Vec<String>>,
    /// CDC: how changes are read; only `builtin` (logical decoding with
    /// `test_decoding`), as in Iggy.
    #[serde(default)]
    pub cdc_backend: Option<String>,
    /// Log every batch read at info level (default: debug). Iggy's name.
    #[serde(default)]
    pub verbose_logging: bool,
    /// Accepted for Iggy's configs, no effect: retrying is the host's job (a transient
    /// error goes back to the daemon, which retries with backoff).
    #[serde(default)]
    pub max_retries: Option<u32>,
    /// Accepted for Iggy's configs, no effect (see `max_retries`).
    #[serde(default)]
    pub retry_delay: Option<String>,
    /// Accepted for Iggy's configs: the source reads over one connection, so more than
    /// 1 has no effect.
    #[serde(default)]
    pub max_connections: Option<u32>,
    /// Accepted for Iggy's configs, no effect: messages are the row as a JSON object
    /// (polling) or a change event (CDC), without Iggy's record envelope.
    #[serde(default)]
    pub include_metadata: Option<bool>,
    /// Accepted for Iggy's configs: only used with `delete_after_read` or
    /// `processed_column`, which are not supported.
    #[serde(default)]
    pub primary_key_column: Option<String>,
    /// Accepted for Iggy's configs: messages are JSON; other formats only go with
    /// `payload_column`, which is not supported.
    #[serde(default)]
    pub payload_format: Option<String>,
    /// Iggy's: not supported (refused when `true`); column names are kept as they are.
    #[serde(default)]
    pub snake_case_columns: Option<bool>,
    /// Iggy's: not supported (refused); read a view instead.
    #[serde(default)]
    pub custom_query: Option<String>,
    /// Iggy's: not supported (refused when `true`); rows are left in the table.
    #[serde(default)]
    pub delete_after_read: Option<bool>,
    /// Iggy's: not supported (refused); rows are not marked.
    #[serde(default)]
    pub processed_column: Option<String>,
    /// Iggy's: not supported (refused); each message is the whole row.
    #[serde(default)]
    pub payload_column: Option<String>,
}

const HOST_RETRIES: &str =
    "retrying is the host's job: a transient error goes back to the daemon, which retries with backoff";

/// Operations a CDC source can capture.
pub const OPERATIONS: [&str; 4] = ["insert", "update", "delete", "truncate"];

impl PostgresSourceConfig {
    /// Brings fields of Iggy's PostgreSQL source config to their meaning here (one
    /// polling table given in `tables`), refuses the ones that would change what is read
    /// or written if ignored, and returns those that are set but have no effect.
    pub fn adopt_iggy_fields(&mut self) -> Result<Vec<Unused>, PluginError> {
        let invalid = |field: &str, reason: &str| {
            PluginError::invalid_config(format!("plugin_config.{field}: {reason}"))
        };
        let refused = [
            (
                "custom_query",
                self.custom_query.is_some(),
                "is not supported: create a view of the query and read it as `table`",
            ),
            (
                "payload_column",
                self.payload_column.is_some(),
                "is not supported: each message is the whole row as a JSON object",
            ),
            (
                "delete_after_read",
                self.delete_after_read == Some(true),
                "is not supported: rows are left in the table (remove the field to read without deleting)",
            ),
            (
                "processed_column",
                self.processed_column.is_some(),
                "is not supported: rows are not marked (remove the field; the source keeps its position in its saved state)",
            ),
            (
                "snake_case_columns",
                self.snake_case_columns == Some(true),
                "is not supported: column names are kept as they are (rename them in a view and read the view)",
            ),
        ];
        if let Some((field, _, reason)) = refused.iter().find(|(_, set, _)| *set) {
            return Err(invalid(field, reason));
        }
        if let Some(backend) = &self.cdc_backend {
            if backend != "builtin" {
                return Err(invalid(
                    "cdc_backend",
                    &format!("`{backend}` is not supported (builtin: logical decoding with test_decoding)"),
                ));
            }
        }
        if let Some(ops) = &mut self.capture_operations {
            for op in ops.iter_mut() {
                *op = op.to_ascii_lowercase();
                if !OPERATIONS.contains(&op.as_str()) {
                    return Err(invalid(
                        "capture_operations",
                        &format!("`{op}` is not one of insert, update, delete, truncate"),
                    ));
                }
            }
        }
        if self.mode == Mode::Polling && !self.tables.is_empty() {
            // Iggy's polling source reads every table of `tables`; this one reads one.
            match (&self.table, self.tables.as_slice()) {
                (None, [one]) => self.table = Some(one.clone()),
                (None, _) => return Err(invalid(
                    "tables",
                    "polling reads one table: give one (or `table`) and run one instance per table",
                )),
                (Some(_), _) => {
                    return Err(invalid(
                        "tables",
                        "in polling mode the table is `table`; `tables` filters CDC changes",
                    ))
                }
            }
        }
        let mut unused = Vec::new();
        let mut note = |set: bool, field: &'static str, reason: &'static str| {
            if set {
                unused.push(Unused { field, reason });
            }
        };
        note(self.max_retries.is_some(), "max_retries", HOST_RETRIES);
        note(self.retry_delay.is_some(), "retry_delay", HOST_RETRIES);
        note(
            self.max_connections.is_some_and(|n| n > 1),
            "max_connections",
            "the source reads over one connection",
        );
        note(
            self.include_metadata.is_some(),
            "include_metadata",
            "messages are the row as a JSON object (polling) or a change event (cdc), without Iggy's record envelope",
        );
        note(
            self.primary_key_column.is_some(),
            "primary_key_column",
            "only used to delete or mark rows read, which this source does not do",
        );
        note(
            self.payload_format.as_deref().is_some_and(|f| {
                !matches!(
                    f.to_ascii_lowercase().as_str(),
                    "json" | "jsonb" | "json_direct" | "jsonb_direct"
                )
            }),
            "payload_format",
            "messages are JSON",
        );
        Ok(unused)
    }
}

fn default_tracking_column() -> String {
    "id".to_string()
}

fn default_batch_size() -> u32 {
    1000
}

fn default_poll_interval() -> String {
    "1s".to_string()
}

/// How the source reads.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// New rows of one table, by a strictly increasing column.
    #[default]
    Polling,
    /// Row changes from a logical replication slot.
    Cdc,
}

pub use ld_postgres_common::{
    parse_duration, quote_ident, PgConnector, SslMode, TableName, TlsSettings, Unused,
};

#[cfg(test)]
mod tests {
    use super::*;

    fn adopt(v: serde_json::Value) -> Result<(PostgresSourceConfig, Vec<Unused>), PluginError> {
        let mut config: PostgresSourceConfig =
            serde_json::from_value(v).map_err(PluginError::invalid_config)?;
        let unused = config.adopt_iggy_fields()?;
        Ok((config, unused))
    }

    fn fields(unused: &[Unused]) -> Vec<&str> {
        unused.iter().map(|u| u.field).collect()
    }

    #[test]
    fn iggy_polling_config_reads_its_one_table_and_names_what_it_does_not_use() {
        let (c, unused) = adopt(serde_json::json!({
            "connection_string": "postgresql://user:pass@localhost:5432/database",
            "mode": "polling",
            "tables": ["users"],
            "poll_interval": "1s",
            "batch_size": 1000,
            "tracking_column": "id",
            "initial_offset": "0",
            "max_connections": 10,
            "snake_case_columns": false,
            "include_metadata": true,
            "primary_key_column": "id",
            "payload_format": "json",
            "verbose_logging": true,
            "max_retries": 3,
            "retry_delay": "1s",
            "delete_after_read": false,
        }))
        .unwrap();
        assert_eq!(c.table.as_deref(), Some("users"));
        assert_eq!(c.initial_value.as_deref(), Some("0"));
        assert!(c.verbose_logging);
        assert_eq!(
            fields(&unused),
            [
                "max_retries",
                "retry_delay",
                "max_connections",
                "include_metadata",
                "primary_key_column"
            ]
        );
    }

    #[test]
    fn iggy_cdc_config_keeps_its_slot_tables_and_operations() {
        let (c, unused) = adopt(serde_json::json!({
            "connection_string": "postgres://u:p@db/shop",
            "mode": "cdc",
            "tables": ["orders", "public.payments"],
            "replication_slot": "iggy_slot",
            "capture_operations": ["INSERT", "Delete"],
            "cdc_backend": "builtin",
        }))
        .unwrap();
        assert_eq!(c.mode, Mode::Cdc);
        assert_eq!(c.slot_name.as_deref(), Some("iggy_slot"));
        assert_eq!(c.tables, ["orders", "public.payments"]);
        assert_eq!(
            c.capture_operations.as_deref(),
            Some(&["insert".to_string(), "delete".to_string()][..])
        );
        assert!(unused.is_empty());
    }

    #[test]
    fn what_would_change_the_messages_if_ignored_is_refused_naming_the_field() {
        let base = serde_json::json!({"connection_string": "postgres://u:p@db/shop", "table": "t"});
        let cases = [
            (
                serde_json::json!({"custom_query": "SELECT 1"}),
                "plugin_config.custom_query: is not supported: create a view",
            ),
            (
                serde_json::json!({"payload_column": "doc"}),
                "plugin_config.payload_column: is not supported",
            ),
            (
                serde_json::json!({"delete_after_read": true}),
                "plugin_config.delete_after_read: is not supported",
            ),
            (
                serde_json::json!({"processed_column": "done"}),
                "plugin_config.processed_column: is not supported",
            ),
            (
                serde_json::json!({"snake_case_columns": true}),
                "plugin_config.snake_case_columns: is not supported",
            ),
            (
                serde_json::json!({"cdc_backend": "pg_replicate"}),
                "plugin_config.cdc_backend: `pg_replicate` is not supported",
            ),
            (
                serde_json::json!({"capture_operations": ["UPSERT"]}),
                "plugin_config.capture_operations: `upsert` is not one of",
            ),
            (
                serde_json::json!({"table": null, "tables": ["a", "b"]}),
                "plugin_config.tables: polling reads one table",
            ),
            (
                serde_json::json!({"tables": ["a"]}),
                "plugin_config.tables: in polling mode the table is `table`",
            ),
        ];
        for (extra, expected) in cases {
            let mut config = base.clone();
            for (k, v) in extra.as_object().unwrap() {
                config[k] = v.clone();
            }
            let err = adopt(config.clone()).err().expect("refused");
            assert_eq!(
                err.kind(),
                ld_plugin_api::ErrorKind::InvalidConfig,
                "{config}"
            );
            assert!(err.message().starts_with(expected), "{config}: {err}");
        }
    }
}
