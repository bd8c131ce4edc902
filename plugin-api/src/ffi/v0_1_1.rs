//! The boundary as `ld-plugin-api` 0.1.1 declared it, kept so that a host loads plugins
//! built against 0.1.1 without a rebuild (see [`super::v0_1_0`] for why a host needs
//! each earlier layout). 0.1.1 added `flush`; 0.1.2 added `rejected` after it.

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RBox, RResult, RStr},
    StableAbi,
};
use async_ffi::BorrowingFfiFuture;

use super::{ConnectorType, HostApi, PluginFuture, PluginInfo, SinkInit, SourceBox, SourceInit};
use crate::{PluginError, SinkBatch};

/// A sink instance as a 0.1.1 plugin exposes it: `flush`, but no way to reject
/// messages, so every message of a consumed batch was written.
#[sabi_trait]
pub trait SinkFfi: Send {
    /// See [`crate::Sink::open`].
    fn open<'a>(&'a mut self) -> PluginFuture<'a, ()>;
    /// See [`crate::Sink::consume`].
    fn consume<'a>(&'a mut self, batch: SinkBatch<'a>) -> PluginFuture<'a, ()>;
    /// See [`crate::Sink::close`].
    #[sabi(last_prefix_field)]
    fn close<'a>(&'a mut self) -> PluginFuture<'a, ()>;
    /// See [`crate::Sink::flush`].
    fn flush<'a>(&'a mut self, consumed: u64, closing: bool) -> PluginFuture<'a, u64> {
        let _ = closing;
        BorrowingFfiFuture::new(async move { RResult::ROk(consumed) })
    }
}

/// An owned 0.1.1 sink instance behind the boundary.
pub type SinkBox = SinkFfi_TO<'static, RBox<()>>;

/// The root module of a 0.1.1 plugin.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
#[sabi(missing_field(panic))]
pub struct PluginMod {
    /// The plugin's self-description.
    pub info: extern "C" fn() -> PluginInfo,
    /// Hands the host's callbacks to the library (log forwarding).
    pub attach_host: extern "C" fn(HostApi),
    /// Checks a `plugin_config` for one side without constructing anything.
    pub validate_config: extern "C" fn(ConnectorType, RStr<'_>) -> RResult<(), PluginError>,
    /// Builds a source instance.
    pub new_source: extern "C" fn(SourceInit<'_>) -> RResult<SourceBox, PluginError>,
    /// Builds a sink instance.
    #[sabi(last_prefix_field)]
    pub new_sink: extern "C" fn(SinkInit<'_>) -> RResult<SinkBox, PluginError>,
}

impl RootModule for PluginModRef {
    declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = "ld_plugin";
    const NAME: &'static str = "ld-connectord plugin";
    const VERSION_STRINGS: VersionStrings = VersionStrings::new("0.1.1");
}
