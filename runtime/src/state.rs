//! Local state of the daemon in `sled`, behind a small interface so the store can be
//! replaced: source checkpoints here; the embedded log's data lives in the same database
//! so that a checkpoint saved after its batch is never recovered without it.

use std::path::Path;

/// The sled settings of every database of the daemon: a bounded page cache, explicit
/// flushes, and segments large enough that a stored batch of the embedded log (about
/// 150 KB for 1000 messages of 100 B; up to 512 KB) stays inline in the log instead of
/// becoming a blob file of its own (sled writes values over a quarter of a segment as
/// separate files, which costs a file creation per batch).
pub fn sled_config(path: &Path) -> sled::Config {
    sled::Config::new()
        .path(path)
        .cache_capacity(32 << 20)
        .segment_size(2 << 20)
        .flush_every_ms(None)
}

/// The tree of source checkpoints (the embedded log writes it too, atomically with the
/// batch a checkpoint belongs to).
pub const SOURCE_STATE_TREE: &str = "state/source";

/// The tree of the lease epoch each source's local checkpoint belongs to.
const SOURCE_EPOCH_TREE: &str = "state/source-epoch";
const OFFSETS_APPLIED_TREE: &str = "state/offsets-applied";

/// Errors of the local state store.
#[derive(Debug, thiserror::Error)]
#[error("local state store: {0}")]
pub struct StateError(#[from] sled::Error);

/// The daemon's local state.
#[derive(Clone)]
pub struct StateStore {
    db: sled::Db,
    source_state: sled::Tree,
    source_epoch: sled::Tree,
    offsets_applied: sled::Tree,
    flush_each_write: bool,
}

impl StateStore {
    /// Opens (or creates) the store in `dir`. With `flush_each_write`, every save is
    /// fsynced before it returns.
    pub fn open(dir: &Path, flush_each_write: bool) -> Result<Self, StateError> {
        let db = sled_config(dir).open()?;
        Self::with_db(db, flush_each_write)
    }

    /// Uses an open database.
    pub fn with_db(db: sled::Db, flush_each_write: bool) -> Result<Self, StateError> {
        Ok(Self {
            source_state: db.open_tree(SOURCE_STATE_TREE)?,
            source_epoch: db.open_tree(SOURCE_EPOCH_TREE)?,
            offsets_applied: db.open_tree(OFFSETS_APPLIED_TREE)?,
            db,
            flush_each_write,
        })
    }

    /// The underlying database (shared with the embedded log).
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// The last saved checkpoint of a source instance.
    pub fn source_state(&self, instance_key: &str) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.source_state.get(instance_key)?.map(|v| v.to_vec()))
    }

    /// Saves a source checkpoint.
    pub async fn save_source_state(
        &self,
        instance_key: &str,
        state: &[u8],
    ) -> Result<(), StateError> {
        self.source_state.insert(instance_key, state)?;
        if self.flush_each_write {
            self.db.flush_async().await?;
        }
        Ok(())
    }

    /// The lease epoch under which this node last took a source over (its local
    /// checkpoint is the source's state from then on).
    pub fn source_epoch(&self, instance_key: &str) -> Result<Option<u64>, StateError> {
        Ok(self
            .source_epoch
            .get(instance_key)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(u64::from_be_bytes))
    }

    /// Takes a source over under lease `epoch`, resuming from `state`: saved as the
    /// local checkpoint with its epoch, durably, before the source runs.
    pub async fn take_over_source(
        &self,
        instance_key: &str,
        epoch: u64,
        state: Option<&[u8]>,
    ) -> Result<(), StateError> {
        match state {
            Some(s) => self.source_state.insert(instance_key, s)?,
            None => self.source_state.remove(instance_key)?,
        };
        self.source_epoch
            .insert(instance_key, epoch.to_be_bytes().to_vec())?;
        self.db.flush_async().await?;
        Ok(())
    }

    /// Replaces a source's saved state (`None`: none, it starts afresh), durably: an
    /// operator's change, applied before the source starts.
    pub async fn replace_source_state(
        &self,
        instance_key: &str,
        state: Option<&[u8]>,
    ) -> Result<(), StateError> {
        match state {
            Some(s) => self.source_state.insert(instance_key, s)?,
            None => self.source_state.remove(instance_key)?,
        };
        self.db.flush_async().await?;
        Ok(())
    }

    /// The generation of the last offsets change applied to an instance.
    pub fn offsets_applied(&self, instance_key: &str) -> Result<Option<u64>, StateError> {
        Ok(self
            .offsets_applied
            .get(instance_key)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(u64::from_be_bytes))
    }

    /// Records that an offsets change was applied, durably.
    pub async fn set_offsets_applied(
        &self,
        instance_key: &str,
        generation: u64,
    ) -> Result<(), StateError> {
        self.offsets_applied
            .insert(instance_key, generation.to_be_bytes().to_vec())?;
        self.db.flush_async().await?;
        Ok(())
    }

    /// Forgets everything kept for an instance (it was deleted).
    pub fn forget_instance(&self, instance_key: &str) -> Result<(), StateError> {
        self.source_state.remove(instance_key)?;
        self.source_epoch.remove(instance_key)?;
        self.offsets_applied.remove(instance_key)?;
        Ok(())
    }

    /// Makes every write so far durable.
    pub async fn flush(&self) -> Result<(), StateError> {
        self.db.flush_async().await?;
        Ok(())
    }
}
