//! The plugin ABI versions this host loads, and the one place that tells them apart.
//!
//! abi_stable checks a library's layouts against the host's and accepts a newer plugin
//! (more prefix fields), never an older one. A plugin built against an earlier
//! compatible `ld-plugin-api` is therefore checked against that release's root module
//! (`ld_plugin_api::ffi::v0_1_0`, `v0_1_1`), chosen by the ABI version the library
//! declares, and the calls added since answer with their documented defaults.

use abi_stable::{
    library::{LibHeader, LibraryError},
    sabi_types::VersionNumber,
    std_types::RResult,
};
use ld_plugin_api::{
    ffi::{
        self, v0_1_0, v0_1_1, ConnectorType, HostApi, PluginInfo, SinkInit, SourceBox, SourceInit,
    },
    PluginError, Rejection, SinkBatch,
};

/// A library's root module, in the layout of the ABI version it was built against.
#[derive(Clone, Copy)]
pub(super) enum RootModule {
    /// Built against this host's `ld-plugin-api` or a newer compatible one.
    Current(ffi::PluginModRef),
    /// Built against `ld-plugin-api` 0.1.1: sinks reject no message.
    V0_1_1(v0_1_1::PluginModRef),
    /// Built against `ld-plugin-api` 0.1.0: sinks have no `flush` either.
    V0_1_0(v0_1_0::PluginModRef),
}

impl RootModule {
    /// Checks and initialises the library's root module in the layout its declared
    /// ABI version calls for.
    pub(super) fn init(header: &'static LibHeader) -> Result<Self, LibraryError> {
        let declared = VersionNumber::new(header.version_strings())?;
        match (declared.major, declared.minor, declared.patch) {
            (0, 1, 0) => header
                .init_root_module::<v0_1_0::PluginModRef>()
                .map(RootModule::V0_1_0),
            (0, 1, 1) => header
                .init_root_module::<v0_1_1::PluginModRef>()
                .map(RootModule::V0_1_1),
            _ => header
                .init_root_module::<ffi::PluginModRef>()
                .map(RootModule::Current),
        }
    }

    pub(super) fn info(self) -> PluginInfo {
        match self {
            RootModule::Current(m) => (m.info())(),
            RootModule::V0_1_1(m) => (m.info())(),
            RootModule::V0_1_0(m) => (m.info())(),
        }
    }

    pub(super) fn attach_host(self, host: HostApi) {
        match self {
            RootModule::Current(m) => (m.attach_host())(host),
            RootModule::V0_1_1(m) => (m.attach_host())(host),
            RootModule::V0_1_0(m) => (m.attach_host())(host),
        }
    }

    pub(super) fn validate_config(
        self,
        side: ConnectorType,
        config: &str,
    ) -> RResult<(), PluginError> {
        match self {
            RootModule::Current(m) => (m.validate_config())(side, config.into()),
            RootModule::V0_1_1(m) => (m.validate_config())(side, config.into()),
            RootModule::V0_1_0(m) => (m.validate_config())(side, config.into()),
        }
    }

    pub(super) fn new_source(self, init: SourceInit<'_>) -> RResult<SourceBox, PluginError> {
        match self {
            RootModule::Current(m) => (m.new_source())(init),
            RootModule::V0_1_1(m) => (m.new_source())(init),
            RootModule::V0_1_0(m) => (m.new_source())(init),
        }
    }

    pub(super) fn new_sink(self, init: SinkInit<'_>) -> Result<SinkObject, PluginError> {
        match self {
            RootModule::Current(m) => (m.new_sink())(init).into_result().map(SinkObject::Current),
            RootModule::V0_1_1(m) => (m.new_sink())(init).into_result().map(SinkObject::V0_1_1),
            RootModule::V0_1_0(m) => (m.new_sink())(init).into_result().map(SinkObject::V0_1_0),
        }
    }
}

/// A sink instance behind the boundary, in its library's ABI version.
pub(super) enum SinkObject {
    Current(ffi::SinkBox),
    V0_1_1(v0_1_1::SinkBox),
    V0_1_0(v0_1_0::SinkBox),
}

impl SinkObject {
    pub(super) async fn open(&mut self) -> Result<(), PluginError> {
        match self {
            SinkObject::Current(s) => s.open().await.into_result(),
            SinkObject::V0_1_1(s) => s.open().await.into_result(),
            SinkObject::V0_1_0(s) => s.open().await.into_result(),
        }
    }

    pub(super) async fn consume(&mut self, batch: SinkBatch<'_>) -> Result<(), PluginError> {
        match self {
            SinkObject::Current(s) => s.consume(batch).await.into_result(),
            SinkObject::V0_1_1(s) => s.consume(batch).await.into_result(),
            SinkObject::V0_1_0(s) => s.consume(batch).await.into_result(),
        }
    }

    /// A 0.1.0 sink wrote every batch it accepted: all consumed batches are durable.
    pub(super) async fn flush(&mut self, consumed: u64, closing: bool) -> Result<u64, PluginError> {
        match self {
            SinkObject::Current(s) => s.flush(consumed, closing).await.into_result(),
            SinkObject::V0_1_1(s) => s.flush(consumed, closing).await.into_result(),
            SinkObject::V0_1_0(_) => Ok(consumed),
        }
    }

    /// A sink built before 0.1.2 wrote every message of a batch it accepted.
    pub(super) fn rejected(&mut self) -> Result<Vec<Rejection>, PluginError> {
        match self {
            SinkObject::Current(s) => s.rejected().into_result().map(Vec::from),
            SinkObject::V0_1_1(_) | SinkObject::V0_1_0(_) => Ok(Vec::new()),
        }
    }

    pub(super) async fn close(&mut self) -> Result<(), PluginError> {
        match self {
            SinkObject::Current(s) => s.close().await.into_result(),
            SinkObject::V0_1_1(s) => s.close().await.into_result(),
            SinkObject::V0_1_0(s) => s.close().await.into_result(),
        }
    }
}
