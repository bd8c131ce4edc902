//! The one handle type per side through which an instance task drives its plugin.
//!
//! Today a handle calls the library in-process: every call returns an FFI-safe future
//! that the task awaits, so no host thread blocks on plugin code. An isolated mode (the
//! library in a child process, batches framed over a Unix socket) is meant to become a
//! second implementation behind these same methods, not a change to the tasks.

use std::sync::Arc;

use ld_plugin_api::{
    ffi::{RawSourceBatch, SourceBox},
    PluginError, Rejection, SinkBatch,
};

use super::{abi::SinkObject, PluginLibrary};

/// A live sink instance.
pub struct SinkHandle {
    inner: SinkObject,
    library: Arc<PluginLibrary>,
}

impl std::fmt::Debug for SinkHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkHandle")
            .field("plugin", &self.library.meta().key)
            .finish_non_exhaustive()
    }
}

impl SinkHandle {
    pub(super) fn new(inner: SinkObject, library: Arc<PluginLibrary>) -> Self {
        Self { inner, library }
    }

    /// The library this instance runs on.
    pub fn library(&self) -> &Arc<PluginLibrary> {
        &self.library
    }

    /// Connects the sink.
    pub async fn open(&mut self) -> Result<(), PluginError> {
        self.inner.open().await
    }

    /// Hands one batch to the plugin; `Ok` means it is accepted (durable once `flush`
    /// says so).
    pub async fn consume(&mut self, batch: SinkBatch<'_>) -> Result<(), PluginError> {
        self.inner.consume(batch).await
    }

    /// Asks the sink how many of the `consumed` batches are durable (see
    /// `Sink::flush`); a plugin built before `flush` existed answers `consumed`.
    pub async fn flush(&mut self, consumed: u64, closing: bool) -> Result<u64, PluginError> {
        self.inner.flush(consumed, closing).await
    }

    /// The messages of the batch just consumed that the sink did not write (see
    /// `Sink::rejected`); a plugin built before 0.1.2 rejects none.
    pub fn rejected(&mut self) -> Result<Vec<Rejection>, PluginError> {
        self.inner.rejected()
    }

    /// Closes the sink.
    pub async fn close(&mut self) -> Result<(), PluginError> {
        self.inner.close().await
    }
}

/// A live source instance.
pub struct SourceHandle {
    inner: SourceBox,
    library: Arc<PluginLibrary>,
}

impl std::fmt::Debug for SourceHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceHandle")
            .field("plugin", &self.library.meta().key)
            .finish_non_exhaustive()
    }
}

impl SourceHandle {
    pub(super) fn new(inner: SourceBox, library: Arc<PluginLibrary>) -> Self {
        Self { inner, library }
    }

    /// The library this instance runs on.
    pub fn library(&self) -> &Arc<PluginLibrary> {
        &self.library
    }

    /// Connects the source.
    pub async fn open(&mut self) -> Result<(), PluginError> {
        self.inner.open().await.into_result()
    }

    /// Asks for the next batch.
    pub async fn poll(&mut self) -> Result<RawSourceBatch, PluginError> {
        self.inner.poll().await.into_result()
    }

    /// Tells the source that batch `seq` is durable and its state saved.
    pub async fn committed(&mut self, seq: u64) -> Result<(), PluginError> {
        self.inner.committed(seq).await.into_result()
    }

    /// Closes the source.
    pub async fn close(&mut self) -> Result<(), PluginError> {
        self.inner.close().await.into_result()
    }
}
