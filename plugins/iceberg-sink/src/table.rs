//! The catalog, opening (or creating) tables, and writing buffered rows as data files
//! committed in one snapshot per table.

use std::{collections::HashMap, fmt, sync::Arc};

use arrow_array::{BooleanArray, RecordBatch};
use async_trait::async_trait;
use iceberg::spec::DataFileFormat;
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::writer::base_writer::data_file_writer::DataFileWriterBuilder;
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::partitioning::fanout_writer::FanoutWriter;
use iceberg::writer::partitioning::PartitioningWriter;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use iceberg::{
    Catalog, CatalogBuilder, Error, ErrorKind, Namespace, NamespaceIdent, TableCommit,
    TableCreation, TableIdent,
};
use iceberg_catalog_rest::RestCatalogBuilder;
use iceberg_catalog_sql::SqlCatalogBuilder;
use iceberg_storage_opendal::OpenDalResolvingStorageFactory;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::config::{table_name, CatalogSettings, Settings, TableTemplate};
use crate::convert::RowConverter;
use crate::error::SinkError;
use crate::offsets::{Offsets, PROP_COMMIT_ID, PROP_INSTANCE, PROP_OFFSETS};

/// Connects to the catalog the settings name.
pub async fn connect(settings: &Settings) -> Result<Arc<dyn Catalog>, SinkError> {
    let factory = Arc::new(OpenDalResolvingStorageFactory::new());
    let what = settings.catalog_description();
    let mut props = settings.props.clone();
    match &settings.catalog {
        CatalogSettings::Sql { url, warehouse } => {
            if let Some(path) = url
                .strip_prefix("sqlite://")
                .and_then(|p| p.split('?').next())
            {
                if let Some(dir) = std::path::Path::new(path).parent() {
                    if !dir.as_os_str().is_empty() {
                        // A missing directory is created; an unreadable one fails below.
                        let _ = std::fs::create_dir_all(dir);
                    }
                }
            }
            props.insert("uri".into(), url.clone());
            props.insert("warehouse".into(), warehouse.clone());
            props.insert("sql_bind_style".into(), "QMark".into());
            // One connection: SQLite serialises writers anyway, and a single connection
            // keeps the file's lock short.
            props
                .entry("pool.max-connections".into())
                .or_insert_with(|| "2".into());
            let catalog = SqlCatalogBuilder::default()
                .with_storage_factory(factory)
                .load(settings.catalog_name.clone(), props)
                .await
                .map_err(|e| SinkError::catalog(&what, &e))
                .map_err(force_transient)?;
            Ok(Arc::new(catalog))
        }
        CatalogSettings::Rest { uri, warehouse } => {
            props.insert("uri".into(), uri.clone());
            if let Some(w) = warehouse {
                props.insert("warehouse".into(), w.clone());
            }
            let catalog = RestCatalogBuilder::default()
                .with_storage_factory(factory)
                .load(settings.catalog_name.clone(), props)
                .await
                .map_err(|e| SinkError::catalog(&what, &e))?;
            // The REST catalog connects lazily: ask it something now so an unreachable
            // server shows at open.
            catalog
                .list_namespaces(None)
                .await
                .map_err(|e| SinkError::catalog(&what, &e))?;
            Ok(Arc::new(catalog))
        }
    }
}

/// Connecting to SQLite fails only for reasons that can be fixed outside (a directory
/// without permissions, a locked or unreachable file): worth retrying.
fn force_transient(e: SinkError) -> SinkError {
    match e {
        SinkError::Catalog {
            catalog, reason, ..
        } => SinkError::Catalog {
            catalog,
            reason,
            transient: true,
        },
        other => other,
    }
}

/// Loads a table, creating it (and its namespace) from the template when missing and
/// allowed.
pub async fn open_table(
    catalog: &dyn Catalog,
    ident: &TableIdent,
    template: Option<&TableTemplate>,
) -> Result<Table, SinkError> {
    let name = table_name(ident);
    match catalog.load_table(ident).await {
        Ok(t) => return Ok(t),
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::TableNotFound | ErrorKind::NamespaceNotFound
            ) => {}
        Err(e) => return Err(SinkError::table(&name, "cannot load the table", &e)),
    }
    let Some(template) = template else {
        return Err(SinkError::MissingTable { table: name });
    };
    let namespace = ident.namespace();
    let exists = catalog
        .namespace_exists(namespace)
        .await
        .map_err(|e| SinkError::table(&name, "cannot look up the namespace", &e))?;
    if !exists {
        create_namespace(catalog, namespace)
            .await
            .map_err(|e| SinkError::table(&name, "cannot create the namespace", &e))?;
    }
    let creation = TableCreation::builder()
        .name(ident.name().to_string())
        .schema(template.schema.clone())
        .partition_spec(template.partition_spec.clone())
        .properties(template.properties.clone())
        .build();
    match catalog.create_table(namespace, creation).await {
        Ok(t) => {
            tracing::info!(table = %name, "created the table");
            Ok(t)
        }
        // Created meanwhile by someone else: use theirs.
        Err(e) if e.kind() == ErrorKind::TableAlreadyExists => catalog
            .load_table(ident)
            .await
            .map_err(|e| SinkError::table(&name, "cannot load the table", &e)),
        Err(e) => Err(SinkError::table(&name, "cannot create the table", &e)),
    }
}

async fn create_namespace(
    catalog: &dyn Catalog,
    namespace: &NamespaceIdent,
) -> iceberg::Result<()> {
    // Parents first (`a.b.table` needs `a` then `a.b` in catalogs that nest).
    let parts: Vec<String> = namespace.iter().cloned().collect();
    for n in 1..=parts.len() {
        let ns = NamespaceIdent::from_strs(&parts[..n])?;
        if n < parts.len() && catalog.namespace_exists(&ns).await.unwrap_or(true) {
            continue;
        }
        match catalog.create_namespace(&ns, HashMap::new()).await {
            Ok(Namespace { .. }) => {}
            Err(e) if e.kind() == ErrorKind::NamespaceAlreadyExists => {}
            Err(e) if n < parts.len() => {
                tracing::debug!("parent namespace not created ({e}); going on");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Rows of one stream/topic/partition, in offset order, waiting for a commit.
pub struct Chunk {
    /// Where they came from.
    pub stream: Arc<str>,
    /// Where they came from.
    pub topic: Arc<str>,
    /// Where they came from.
    pub partition: u32,
    /// The offset of each row.
    pub offsets: Vec<u64>,
    /// The rows.
    pub batch: RecordBatch,
}

impl Chunk {
    /// The rows not yet covered by `recorded` (all of them in the normal case).
    fn without(&self, recorded: &Offsets) -> Option<RecordBatch> {
        let Some(last) = recorded.get(&self.stream, &self.topic, self.partition) else {
            return Some(self.batch.clone());
        };
        if self.offsets.first().is_some_and(|first| *first > last) {
            return Some(self.batch.clone());
        }
        let keep: BooleanArray = self.offsets.iter().map(|o| Some(*o > last)).collect();
        if keep.true_count() == 0 {
            return None;
        }
        arrow_select::filter::filter_record_batch(&self.batch, &keep).ok()
    }
}

/// One open table: its converter, what it holds, and what waits for a commit.
pub struct TableState {
    /// Identifier.
    pub ident: TableIdent,
    /// `namespace.table`.
    pub name: String,
    /// The table as last loaded or committed.
    pub table: Table,
    /// JSON to Arrow by the table's schema.
    pub converter: RowConverter,
    /// Offsets the table holds from this instance.
    pub committed: Offsets,
    /// Offsets of every message given to this table since the last commit (written
    /// or skipped).
    pub pending: Offsets,
    /// Rows waiting for the commit.
    pub chunks: Vec<Chunk>,
    /// How many.
    pub rows: u64,
}

impl fmt::Debug for TableState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TableState")
            .field("name", &self.name)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl TableState {
    /// Wraps a loaded table: reads the offsets it holds from this instance.
    pub fn new(ident: TableIdent, table: Table, instance: &str) -> Result<TableState, SinkError> {
        let name = table_name(&ident);
        let converter = RowConverter::new(table.metadata().current_schema()).map_err(|reason| {
            SinkError::Table {
                table: name.clone(),
                context: "unsupported schema".into(),
                reason,
                transient: false,
            }
        })?;
        let committed =
            Offsets::from_table(table.metadata(), instance).map_err(|reason| SinkError::Table {
                table: name.clone(),
                context: "cannot read the offsets of the last snapshot".into(),
                reason,
                transient: false,
            })?;
        Ok(TableState {
            ident,
            name,
            table,
            converter,
            committed,
            pending: Offsets::default(),
            chunks: Vec::new(),
            rows: 0,
        })
    }

    /// Whether a message at this offset is already in the table or buffered.
    pub fn holds(&self, stream: &str, topic: &str, partition: u32, offset: u64) -> bool {
        self.committed.covers(stream, topic, partition, offset)
            || self.pending.covers(stream, topic, partition, offset)
    }

    /// Writes the buffered rows as data files and commits them in one snapshot whose
    /// summary records the offsets. The table is reloaded first and what it already
    /// holds from this instance is left out, so a call after a failed one (a conflict
    /// with another writer, a lost answer) neither loses nor repeats rows. A conflict is
    /// a transient error: the host retries, which is this again.
    pub async fn commit(
        &mut self,
        catalog: &dyn Catalog,
        instance: &str,
        settings: &Settings,
    ) -> Result<CommitOutcome, SinkError> {
        let table = catalog
            .load_table(&self.ident)
            .await
            .map_err(|e| SinkError::table(&self.name, "cannot load the table", &e))?;
        let recorded =
            Offsets::from_table(table.metadata(), instance).map_err(|reason| SinkError::Table {
                table: self.name.clone(),
                context: "cannot read the offsets of the last snapshot".into(),
                reason,
                transient: false,
            })?;
        if table.metadata().current_schema().schema_id()
            != self.table.metadata().current_schema().schema_id()
            && table.metadata().current_schema().as_struct()
                != self.table.metadata().current_schema().as_struct()
        {
            return Err(SinkError::Table {
                table: self.name.clone(),
                context: "the schema changed while rows were buffered".into(),
                reason: "restart the instance to write with the new schema".into(),
                transient: false,
            });
        }
        let batches: Vec<RecordBatch> = self
            .chunks
            .iter()
            .filter_map(|c| c.without(&recorded))
            .collect();
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        if rows == 0 {
            // Everything is in the table already (a commit whose answer was lost,
            // or another copy of this instance).
            self.finish(table, recorded);
            return Ok(CommitOutcome {
                rows: 0,
                files: 0,
                snapshot: None,
            });
        }
        let mut offsets = recorded.clone();
        offsets.merge(&self.pending);
        let commit_id = uuid::Uuid::new_v4();
        let files = write_files(&table, &batches, instance, commit_id, settings)
            .await
            .map_err(|e| SinkError::table(&self.name, "cannot write data files", &e))?;
        let file_count = files.len();
        let summary = HashMap::from([
            (PROP_INSTANCE.to_string(), instance.to_string()),
            (PROP_OFFSETS.to_string(), offsets.to_json()),
            (PROP_COMMIT_ID.to_string(), commit_id.to_string()),
        ]);
        let tx = Transaction::new(&table);
        let tx = tx
            .fast_append()
            .with_check_duplicate(false) // file names are unique per attempt
            .set_commit_uuid(commit_id)
            .set_snapshot_properties(summary)
            .add_data_files(files)
            .apply(tx)
            .map_err(|e| SinkError::table(&self.name, "cannot prepare the commit", &e))?;
        let guard = Guarded {
            inner: catalog,
            instance,
            expected: recorded,
        };
        match tx.commit(&guard).await {
            Ok(committed) => {
                let snapshot = committed.metadata().current_snapshot_id();
                self.finish(committed, offsets);
                Ok(CommitOutcome {
                    rows,
                    files: file_count,
                    snapshot,
                })
            }
            // Transient (see `error::is_transient`): the host retries, and the next
            // call reloads, re-checks and writes again.
            Err(e) if e.kind() == ErrorKind::CatalogCommitConflicts => Err(SinkError::table(
                &self.name,
                "the commit conflicted with another writer (retried with the table reloaded)",
                &e,
            )),
            Err(e) => Err(SinkError::table(&self.name, "cannot commit", &e)),
        }
    }

    fn finish(&mut self, table: Table, offsets: Offsets) {
        self.table = table;
        self.committed = offsets;
        self.committed.merge(&self.pending);
        self.pending = Offsets::default();
        self.chunks.clear();
        self.rows = 0;
    }
}

/// What a commit did.
#[derive(Debug, Clone, Copy)]
pub struct CommitOutcome {
    /// Rows added.
    pub rows: usize,
    /// Data files added.
    pub files: usize,
    /// The new snapshot.
    pub snapshot: Option<i64>,
}

/// Writes the rows into Parquet (ZSTD) data files, split by the table's partition spec.
async fn write_files(
    table: &Table,
    batches: &[RecordBatch],
    instance: &str,
    commit_id: uuid::Uuid,
    settings: &Settings,
) -> iceberg::Result<Vec<iceberg::spec::DataFile>> {
    let metadata = table.metadata();
    let schema = metadata.current_schema().clone();
    let spec = metadata.default_partition_spec().clone();
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(1 << 20))
        .build();
    let parquet = ParquetWriterBuilder::new(props, schema.clone());
    let location = DefaultLocationGenerator::new(metadata)?;
    // Unique per attempt: a retried commit never reuses (and so never overwrites) a
    // file name that a commit may already reference.
    let prefix: String = instance
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let names = DefaultFileNameGenerator::new(
        format!("ld-{prefix}"),
        Some(commit_id.to_string()),
        DataFileFormat::Parquet,
    );
    let rolling = RollingFileWriterBuilder::new(
        parquet,
        settings.target_file_size,
        table.file_io().clone(),
        location,
        names,
    );
    let builder = DataFileWriterBuilder::new(rolling);
    if spec.is_unpartitioned() {
        let mut writer = builder.build(None).await?;
        for b in batches {
            writer.write(b.clone()).await?;
        }
        writer.close().await
    } else {
        let splitter = iceberg::arrow::RecordBatchPartitionSplitter::try_new_with_computed_values(
            schema, spec,
        )?;
        let mut writer = FanoutWriter::new(builder);
        for b in batches {
            for (key, part) in splitter.split(b)? {
                writer.write(key, part).await?;
            }
        }
        writer.close().await
    }
}

/// The catalog as the commit sees it: when a retry reloads the table and finds that
/// this instance's recorded offsets moved (another copy of this instance committed),
/// the retry stops with a conflict, so the caller re-checks which rows the table
/// already holds instead of appending them a second time.
struct Guarded<'a> {
    inner: &'a dyn Catalog,
    instance: &'a str,
    expected: Offsets,
}

impl fmt::Debug for Guarded<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guarded").finish_non_exhaustive()
    }
}

#[async_trait]
impl Catalog for Guarded<'_> {
    async fn list_namespaces(
        &self,
        parent: Option<&NamespaceIdent>,
    ) -> iceberg::Result<Vec<NamespaceIdent>> {
        self.inner.list_namespaces(parent).await
    }
    async fn create_namespace(
        &self,
        namespace: &NamespaceIdent,
        properties: HashMap<String, String>,
    ) -> iceberg::Result<Namespace> {
        self.inner.create_namespace(namespace, properties).await
    }
    async fn get_namespace(&self, namespace: &NamespaceIdent) -> iceberg::Result<Namespace> {
        self.inner.get_namespace(namespace).await
    }
    async fn namespace_exists(&self, namespace: &NamespaceIdent) -> iceberg::Result<bool> {
        self.inner.namespace_exists(namespace).await
    }
    async fn update_namespace(
        &self,
        namespace: &NamespaceIdent,
        properties: HashMap<String, String>,
    ) -> iceberg::Result<()> {
        self.inner.update_namespace(namespace, properties).await
    }
    async fn drop_namespace(&self, namespace: &NamespaceIdent) -> iceberg::Result<()> {
        self.inner.drop_namespace(namespace).await
    }
    async fn list_tables(&self, namespace: &NamespaceIdent) -> iceberg::Result<Vec<TableIdent>> {
        self.inner.list_tables(namespace).await
    }
    async fn create_table(
        &self,
        namespace: &NamespaceIdent,
        creation: TableCreation,
    ) -> iceberg::Result<Table> {
        self.inner.create_table(namespace, creation).await
    }
    async fn load_table(&self, table: &TableIdent) -> iceberg::Result<Table> {
        let loaded = self.inner.load_table(table).await?;
        let now = Offsets::from_table(loaded.metadata(), self.instance)
            .map_err(|reason| Error::new(ErrorKind::DataInvalid, reason))?;
        if now != self.expected {
            // Not retryable: the transaction must not re-apply the same files.
            return Err(Error::new(
                ErrorKind::CatalogCommitConflicts,
                "another writer committed offsets of this instance meanwhile",
            ));
        }
        Ok(loaded)
    }
    async fn drop_table(&self, table: &TableIdent) -> iceberg::Result<()> {
        self.inner.drop_table(table).await
    }
    async fn purge_table(&self, table: &TableIdent) -> iceberg::Result<()> {
        self.inner.purge_table(table).await
    }
    async fn table_exists(&self, table: &TableIdent) -> iceberg::Result<bool> {
        self.inner.table_exists(table).await
    }
    async fn rename_table(&self, src: &TableIdent, dest: &TableIdent) -> iceberg::Result<()> {
        self.inner.rename_table(src, dest).await
    }
    async fn register_table(
        &self,
        table: &TableIdent,
        metadata_location: String,
    ) -> iceberg::Result<Table> {
        self.inner.register_table(table, metadata_location).await
    }
    async fn update_table(&self, commit: TableCommit) -> iceberg::Result<Table> {
        self.inner.update_table(commit).await
    }
}
