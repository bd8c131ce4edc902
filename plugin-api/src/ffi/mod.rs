//! The types that cross the library boundary, and the host-side views of them. Plugin
//! authors never touch these: the [`crate::export_plugin!`] macro builds them; the
//! runtime's plugin host reads them (a source's batch as [`RawSourceBatch`], the marker
//! of secret fields in a config schema, [`SECRET_MARKER`]).
//!
//! Only `abi_stable` types appear here, and the root module is a prefix type, so fields
//! can be appended in later versions without breaking plugins built earlier.

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RBox, ROption, RResult, RSlice, RStr, RString, RVec},
    StableAbi,
};
use async_ffi::BorrowingFfiFuture;

use crate::{PluginError, Rejection, SinkBatch};

pub use crate::secret::SECRET_MARKER;
pub use crate::source_batch::{
    ByteRange, RawSourceBatch, SourceHeader, SourceMessage, SourceMessageRef,
};

/// Which side of a connector.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnectorType {
    /// Reads an external system into a stream.
    Source = 0,
    /// Writes a stream into an external system.
    Sink = 1,
}

impl ConnectorType {
    /// `source` or `sink`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorType::Source => "source",
            ConnectorType::Sink => "sink",
        }
    }
}

/// What a plugin says about one side (source or sink) it provides.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct ConnectorSpec {
    /// JSON Schema of the `plugin_config` for this side.
    pub config_schema: RString,
}

/// What a plugin library says about itself.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct PluginInfo {
    /// Connector key, e.g. `postgres`.
    pub key: RString,
    /// Human-readable name.
    pub name: RString,
    /// One-line description.
    pub description: RString,
    /// The plugin crate's version.
    pub version: RString,
    /// Present when the library provides a source.
    pub source: ROption<ConnectorSpec>,
    /// Present when the library provides a sink.
    pub sink: ROption<ConnectorSpec>,
}

/// Log levels forwarded from plugins.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Very verbose.
    Trace = 0,
    /// Debugging detail.
    Debug = 1,
    /// Normal operation.
    Info = 2,
    /// Something unexpected.
    Warn = 3,
    /// A failure.
    Error = 4,
}

/// One log event of a plugin, handed to the host.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct LogRecord<'a> {
    /// Severity.
    pub level: LogLevel,
    /// The plugin-side target (module path).
    pub target: RStr<'a>,
    /// The formatted message with its fields.
    pub message: RStr<'a>,
}

/// What the host gives a library once, right after loading it.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct HostApi {
    /// Receives the plugin's log events.
    pub log: extern "C" fn(LogRecord<'_>),
    /// The most verbose level the host wants; the plugin drops the rest unformatted.
    pub max_level: LogLevel,
}

/// Arguments of a source constructor.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct SourceInit<'a> {
    /// The instance key.
    pub instance_key: RStr<'a>,
    /// `plugin_config` as JSON.
    pub config: RStr<'a>,
    /// The last saved state, if any.
    pub state: ROption<RSlice<'a, u8>>,
}

/// Arguments of a sink constructor.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct SinkInit<'a> {
    /// The instance key.
    pub instance_key: RStr<'a>,
    /// `plugin_config` as JSON.
    pub config: RStr<'a>,
}

/// A future returned across the boundary; it borrows the instance for `'a`.
pub type PluginFuture<'a, T> = BorrowingFfiFuture<'a, RResult<T, PluginError>>;

/// A sink instance as the host sees it.
#[sabi_trait]
pub trait SinkFfi: Send {
    /// See [`crate::Sink::open`].
    fn open<'a>(&'a mut self) -> PluginFuture<'a, ()>;
    /// See [`crate::Sink::consume`].
    fn consume<'a>(&'a mut self, batch: SinkBatch<'a>) -> PluginFuture<'a, ()>;
    /// See [`crate::Sink::close`].
    #[sabi(last_prefix_field)]
    fn close<'a>(&'a mut self) -> PluginFuture<'a, ()>;
    /// See [`crate::Sink::flush`]. Added in 0.1.1: a sink built against 0.1.0 has no
    /// such entry, and this default (everything consumed is durable, which is what
    /// 0.1.0 promised) runs in its place.
    fn flush<'a>(&'a mut self, consumed: u64, closing: bool) -> PluginFuture<'a, u64> {
        let _ = closing;
        BorrowingFfiFuture::new(async move { RResult::ROk(consumed) })
    }
    /// See [`crate::Sink::rejected`]. Added in 0.1.2: a sink built against an earlier
    /// release has no such entry, and this default (nothing rejected: every message of
    /// a consumed batch was written) runs in its place.
    fn rejected(&mut self) -> RResult<RVec<Rejection>, PluginError> {
        RResult::ROk(RVec::new())
    }
}

/// A source instance as the host sees it.
#[sabi_trait]
pub trait SourceFfi: Send {
    /// See [`crate::Source::open`].
    fn open<'a>(&'a mut self) -> PluginFuture<'a, ()>;
    /// See [`crate::Source::poll`].
    fn poll<'a>(&'a mut self) -> PluginFuture<'a, RawSourceBatch>;
    /// See [`crate::Source::committed`].
    fn committed<'a>(&'a mut self, seq: u64) -> PluginFuture<'a, ()>;
    /// See [`crate::Source::close`].
    #[sabi(last_prefix_field)]
    fn close<'a>(&'a mut self) -> PluginFuture<'a, ()>;
}

/// An owned sink instance behind the boundary.
pub type SinkBox = SinkFfi_TO<'static, RBox<()>>;
/// An owned source instance behind the boundary.
pub type SourceBox = SourceFfi_TO<'static, RBox<()>>;

/// The root module every plugin library exports.
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
    // The ABI version is this crate's version: abi_stable refuses a library whose
    // major version differs, or (for 0.x) whose minor version is older than the host's.
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// The version of this crate, which is the plugin ABI version.
pub const ABI_VERSION: &str = env!("CARGO_PKG_VERSION");

pub mod v0_1_0;
pub mod v0_1_1;
