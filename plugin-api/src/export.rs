//! What [`crate::export_plugin!`] expands to: adapters from the author traits to the
//! FFI traits, config parsing, and the root module. Not a public API.

use std::sync::OnceLock;

pub use abi_stable::library::{
    __call_root_module_loader, CheckTypeLayout, LibHeader, RootModuleResult,
};
use abi_stable::{
    prefix_type::PrefixTypeTrait,
    sabi_trait::TD_Opaque,
    std_types::{ROption, RResult, RStr, RVec},
};
use serde::de::DeserializeOwned;

use crate::{
    ffi::{
        ConnectorSpec, ConnectorType, PluginFuture, PluginInfo, PluginMod, PluginModRef,
        RawSourceBatch, SinkBox, SinkFfi, SinkFfi_TO, SinkInit, SourceBox, SourceFfi, SourceFfi_TO,
        SourceInit,
    },
    guard::{call, guard},
    InstanceContext, PluginError, Rejection, Sink, SinkBatch, Source,
};

/// Parses `plugin_config`, naming the field that is wrong.
pub fn parse_config<C: DeserializeOwned>(json: &str) -> Result<C, PluginError> {
    // serde reads a struct from an array too (fields by position); a plugin_config is
    // an object, as the host requires.
    if !json.trim_start().starts_with('{') {
        let found = match json.trim_start().as_bytes().first() {
            Some(b'[') => "an array",
            Some(b'"') => "a string",
            Some(b'n') => "null",
            Some(b't' | b'f') => "a boolean",
            Some(_) => "a number or not JSON",
            None => "nothing",
        };
        return Err(PluginError::invalid_config(format!(
            "plugin_config: invalid type: {found}, expected a JSON object"
        )));
    }
    let mut de = serde_json::Deserializer::from_str(json);
    let config: C = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        PluginError::invalid_config(if path == "." {
            format!("plugin_config: {inner}")
        } else {
            format!("plugin_config.{path}: {inner}")
        })
    })?;
    de.end()
        .map_err(|e| PluginError::invalid_config(format!("plugin_config: {e}")))?;
    Ok(config)
}

fn schema_of<C: schemars::JsonSchema>() -> ConnectorSpec {
    let schema = schemars::schema_for!(C);
    ConnectorSpec {
        config_schema: serde_json::to_string(&schema).unwrap_or_default().into(),
    }
}

/// The spec of a source type.
pub fn source_spec<S: Source>() -> ROption<ConnectorSpec> {
    ROption::RSome(schema_of::<S::Config>())
}

/// The spec of a sink type.
pub fn sink_spec<S: Sink>() -> ROption<ConnectorSpec> {
    ROption::RSome(schema_of::<S::Config>())
}

/// Checks a source config.
pub fn validate_source<S: Source>(json: RStr<'_>) -> RResult<(), PluginError> {
    call(|| parse_config::<S::Config>(json.as_str()).map(|_| ()))
}

/// Checks a sink config.
pub fn validate_sink<S: Sink>(json: RStr<'_>) -> RResult<(), PluginError> {
    call(|| parse_config::<S::Config>(json.as_str()).map(|_| ()))
}

/// The answer for a side the library does not provide.
pub fn not_provided<T>(side: ConnectorType) -> RResult<T, PluginError> {
    RResult::RErr(PluginError::invalid_config(format!(
        "this plugin provides no {}",
        side.as_str()
    )))
}

struct SinkAdapter<S>(S);

impl<S: Sink> SinkFfi for SinkAdapter<S> {
    fn open<'a>(&'a mut self) -> PluginFuture<'a, ()> {
        guard(|| self.0.open())
    }

    fn consume<'a>(&'a mut self, batch: SinkBatch<'a>) -> PluginFuture<'a, ()> {
        guard(move || self.0.consume(batch))
    }

    fn close<'a>(&'a mut self) -> PluginFuture<'a, ()> {
        guard(|| self.0.close())
    }

    fn flush<'a>(&'a mut self, consumed: u64, closing: bool) -> PluginFuture<'a, u64> {
        guard(move || self.0.flush(consumed, closing))
    }

    fn rejected(&mut self) -> RResult<RVec<Rejection>, PluginError> {
        call(|| Ok(RVec::from(self.0.rejected())))
    }
}

struct SourceAdapter<S>(S);

impl<S: Source> SourceFfi for SourceAdapter<S> {
    fn open<'a>(&'a mut self) -> PluginFuture<'a, ()> {
        guard(|| self.0.open())
    }

    fn poll<'a>(&'a mut self) -> PluginFuture<'a, RawSourceBatch> {
        guard(|| {
            let poll = self.0.poll();
            async move { poll.await.map(crate::SourceBatch::into_raw) }
        })
    }

    fn committed<'a>(&'a mut self, seq: u64) -> PluginFuture<'a, ()> {
        guard(move || self.0.committed(seq))
    }

    fn close<'a>(&'a mut self) -> PluginFuture<'a, ()> {
        guard(|| self.0.close())
    }
}

/// Builds a sink instance.
pub fn new_sink<S: Sink>(init: SinkInit<'_>) -> RResult<SinkBox, PluginError> {
    call(|| {
        let config = parse_config::<S::Config>(init.config.as_str())?;
        let sink = S::new(config, &InstanceContext::new(init.instance_key.as_str()))?;
        Ok(SinkFfi_TO::from_value(SinkAdapter(sink), TD_Opaque))
    })
}

/// Builds a source instance, handing it its last saved state.
pub fn new_source<S: Source>(init: SourceInit<'_>) -> RResult<SourceBox, PluginError> {
    call(|| {
        let config = parse_config::<S::Config>(init.config.as_str())?;
        let state = match init.state.into_option() {
            None => None,
            Some(bytes) => Some(
                serde_json::from_slice::<S::State>(bytes.as_slice()).map_err(|e| {
                    PluginError::fatal(format!("the saved source state cannot be read: {e}"))
                })?,
            ),
        };
        let source = S::new(
            config,
            state,
            &InstanceContext::new(init.instance_key.as_str()),
        )?;
        Ok(SourceFfi_TO::from_value(SourceAdapter(source), TD_Opaque))
    })
}

/// The entry points of one library, as the macro names them.
pub struct Entries {
    /// Self-description, computed once.
    pub info: fn() -> PluginInfo,
    /// `PluginMod::info`.
    pub info_ffi: extern "C" fn() -> PluginInfo,
    /// `PluginMod::validate_config`.
    pub validate_config: extern "C" fn(ConnectorType, RStr<'_>) -> RResult<(), PluginError>,
    /// `PluginMod::new_source`.
    pub new_source: extern "C" fn(SourceInit<'_>) -> RResult<SourceBox, PluginError>,
    /// `PluginMod::new_sink`.
    pub new_sink: extern "C" fn(SinkInit<'_>) -> RResult<SinkBox, PluginError>,
}

static INFO: OnceLock<PluginInfo> = OnceLock::new();

/// The cached self-description; computed inside the root module constructor, where
/// abi_stable catches panics, so the `extern "C"` accessor only clones.
pub fn cached_info(compute: fn() -> PluginInfo) -> PluginInfo {
    INFO.get_or_init(compute).clone()
}

/// Builds the plugin info from the macro's arguments.
pub fn info(
    key: &str,
    name: &str,
    description: &str,
    version: &str,
    source: ROption<ConnectorSpec>,
    sink: ROption<ConnectorSpec>,
) -> PluginInfo {
    PluginInfo {
        key: key.into(),
        name: name.into(),
        description: description.into(),
        version: version.into(),
        source,
        sink,
    }
}

/// Builds the root module.
pub fn build_module(entries: Entries) -> PluginModRef {
    let _ = cached_info(entries.info);
    PluginMod {
        info: entries.info_ffi,
        attach_host: crate::logging::attach_host,
        validate_config: entries.validate_config,
        new_source: entries.new_source,
        new_sink: entries.new_sink,
    }
    .leak_into_prefix()
}

/// Exports a plugin library: the root module the runtime loads, with every entry point
/// panic-safe, a tokio runtime of the library's own and log forwarding to the host.
///
/// Name at least one of `source:` and `sink:` (in that order), each a type implementing
/// [`crate::Source`] or [`crate::Sink`]. Build the crate as a `cdylib` with
/// `panic = "unwind"` (the default).
///
/// ```
/// use ld_plugin_api::{export_plugin, InstanceContext, PluginError, Sink, SinkBatch};
///
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// struct NullConfig {}
/// struct NullSink;
///
/// impl Sink for NullSink {
///     type Config = NullConfig;
///     fn new(_: NullConfig, _: &InstanceContext) -> Result<Self, PluginError> { Ok(NullSink) }
///     async fn consume(&mut self, _: SinkBatch<'_>) -> Result<(), PluginError> { Ok(()) }
/// }
///
/// export_plugin! {
///     key: "null",
///     name: "Null sink",
///     description: "Drops every message",
///     sink: NullSink,
/// }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! export_plugin {
    (
        key: $key:expr,
        name: $name:expr,
        description: $description:expr
        $(, source: $source:ty)?
        $(, sink: $sink:ty)?
        $(,)?
    ) => {
        #[doc(hidden)]
        #[unsafe(export_name = "_1as_0lib_1header_0root_bmodule_bloader")]
        pub static LD_PLUGIN_ROOT_MODULE: $crate::__private::LibHeader = {
            use $crate::__private as __ld;
            use $crate::__private::abi::{RResult, ROption, RStr};
            use $crate::ffi::{ConnectorType, PluginInfo, SinkBox, SinkInit, SourceBox, SourceInit};

            fn compute_info() -> PluginInfo {
                __ld::info(
                    $key,
                    $name,
                    $description,
                    env!("CARGO_PKG_VERSION"),
                    $crate::export_plugin!(@source_spec $($source)?),
                    $crate::export_plugin!(@sink_spec $($sink)?),
                )
            }
            extern "C" fn info_ffi() -> PluginInfo {
                __ld::cached_info(compute_info)
            }
            extern "C" fn validate_config(
                side: ConnectorType,
                config: RStr<'_>,
            ) -> RResult<(), $crate::PluginError> {
                match side {
                    ConnectorType::Source => $crate::export_plugin!(@validate_source config $($source)?),
                    ConnectorType::Sink => $crate::export_plugin!(@validate_sink config $($sink)?),
                }
            }
            extern "C" fn new_source(init: SourceInit<'_>) -> RResult<SourceBox, $crate::PluginError> {
                $crate::export_plugin!(@new_source init $($source)?)
            }
            extern "C" fn new_sink(init: SinkInit<'_>) -> RResult<SinkBox, $crate::PluginError> {
                $crate::export_plugin!(@new_sink init $($sink)?)
            }
            fn build() -> $crate::ffi::PluginModRef {
                __ld::build_module(__ld::Entries {
                    info: compute_info,
                    info_ffi,
                    validate_config,
                    new_source,
                    new_sink,
                })
            }
            extern "C" fn root_module() -> __ld::RootModuleResult {
                __ld::__call_root_module_loader(build)
            }
            // SAFETY: `root_module` returns the `PluginModRef` named here, which is what
            // `from_constructor` requires; abi_stable checks its layout at load.
            unsafe {
                __ld::LibHeader::from_constructor::<$crate::ffi::PluginModRef>(
                    root_module,
                    __ld::CheckTypeLayout::Yes,
                )
            }
        };
    };
    (@source_spec $t:ty) => { __ld::source_spec::<$t>() };
    (@source_spec) => { ROption::RNone };
    (@sink_spec $t:ty) => { __ld::sink_spec::<$t>() };
    (@sink_spec) => { ROption::RNone };
    (@validate_source $c:ident $t:ty) => { __ld::validate_source::<$t>($c) };
    (@validate_source $c:ident) => { __ld::not_provided(ConnectorType::Source) };
    (@validate_sink $c:ident $t:ty) => { __ld::validate_sink::<$t>($c) };
    (@validate_sink $c:ident) => { __ld::not_provided(ConnectorType::Sink) };
    (@new_source $i:ident $t:ty) => { __ld::new_source::<$t>($i) };
    (@new_source $i:ident) => { { let _ = $i; __ld::not_provided(ConnectorType::Source) } };
    (@new_sink $i:ident $t:ty) => { __ld::new_sink::<$t>($i) };
    (@new_sink $i:ident) => { { let _ = $i; __ld::not_provided(ConnectorType::Sink) } };
}

/// Re-exports the macro needs.
pub mod abi {
    pub use abi_stable::std_types::{ROption, RResult, RStr};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_name_matches_abi_stable() {
        assert_eq!(
            abi_stable::library::ROOT_MODULE_LOADER_NAME,
            "_1as_0lib_1header_0root_bmodule_bloader"
        );
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Cfg {
        table: String,
        rate: u32,
    }

    #[test]
    fn config_errors_name_the_field() {
        let err = parse_config::<Cfg>(r#"{"table": "t", "rate": -1}"#).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::InvalidConfig);
        assert!(err.message().starts_with("plugin_config.rate:"), "{err}");
        let err = parse_config::<Cfg>(r#"{"rate": 1}"#).unwrap_err();
        assert!(err.message().contains("missing field `table`"), "{err}");
        assert!(parse_config::<Cfg>(r#"{"table": "t", "rate": 1}"#).is_ok());
        assert!(parse_config::<Cfg>(r#"{"table": "t", "rate": 1} x"#).is_err());
        let err = parse_config::<Cfg>(r#"["t", 1]"#).unwrap_err();
        assert_eq!(
            err.message(),
            "plugin_config: invalid type: an array, expected a JSON object"
        );
    }

    /// Rejects every message whose payload is `bad`, and panics in `rejected` when asked.
    struct Picky {
        rejected: Vec<Rejection>,
        panic: bool,
    }

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    struct PickyConfig {
        panic: bool,
    }

    impl Sink for Picky {
        type Config = PickyConfig;
        fn new(c: PickyConfig, _: &InstanceContext) -> Result<Self, PluginError> {
            Ok(Picky {
                rejected: Vec::new(),
                panic: c.panic,
            })
        }
        async fn consume(&mut self, batch: SinkBatch<'_>) -> Result<(), PluginError> {
            for m in batch.messages() {
                if m.payload() == b"bad" {
                    self.rejected
                        .push(Rejection::new(m.offset(), "bad payload"));
                }
            }
            Ok(())
        }
        fn rejected(&mut self) -> Vec<Rejection> {
            assert!(!self.panic, "asked to panic");
            std::mem::take(&mut self.rejected)
        }
    }

    fn picky(panic: bool) -> SinkBox {
        let config = format!(r#"{{"panic": {panic}}}"#);
        new_sink::<Picky>(SinkInit {
            instance_key: "k".into(),
            config: config.as_str().into(),
        })
        .unwrap()
    }

    #[test]
    fn rejections_cross_the_boundary_once_and_a_panic_becomes_an_error() {
        let mut sink = picky(false);
        let messages = [
            crate::Message::new(1, 10, 0, crate::Schema::Raw, &[], b"good"),
            crate::Message::new(2, 11, 0, crate::Schema::Raw, &[], b"bad"),
        ];
        let batch = SinkBatch::new("s", "t", 0, &messages);
        futures::executor::block_on(sink.consume(batch))
            .into_result()
            .unwrap();
        let rejected = sink.rejected().into_result().unwrap();
        assert_eq!(rejected.as_slice(), &[Rejection::new(11, "bad payload")]);
        assert!(sink.rejected().into_result().unwrap().is_empty(), "once");

        let err = picky(true).rejected().into_result().unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Panicked);
        assert!(err.message().contains("asked to panic"), "{err}");
    }
}
