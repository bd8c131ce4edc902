//! The one place the two `ConnectorType`s meet: the control-plane protocol's
//! ([`ld_protocol::ConnectorType`], what the supervisor, the daemon and the catalog speak)
//! and the plugin ABI's ([`ld_plugin_api::ffi::ConnectorType`], what a plugin library
//! declares and is called with).
//!
//! They stay two types on purpose: the ABI's is `#[repr(u8)]` and frozen with the plugin
//! ABI (a serde derive or a new variant there is an ABI change), the protocol's is a JSON
//! string. The orphan rule forbids a `From` between two foreign types, so the conversion
//! is these two functions; a third kind of connector is an edit here, and the compiler
//! points at it.

use ld_plugin_api::ffi;
use ld_protocol::ConnectorType;

/// The plugin side a wire connector type runs as.
pub fn side(connector_type: ConnectorType) -> ffi::ConnectorType {
    match connector_type {
        ConnectorType::Source => ffi::ConnectorType::Source,
        ConnectorType::Sink => ffi::ConnectorType::Sink,
    }
}

/// The wire connector type of a plugin side.
pub fn wire_type(side: ffi::ConnectorType) -> ConnectorType {
    match side {
        ffi::ConnectorType::Source => ConnectorType::Source,
        ffi::ConnectorType::Sink => ConnectorType::Sink,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_directions_agree_and_keep_the_name() {
        for t in [ConnectorType::Source, ConnectorType::Sink] {
            assert_eq!(wire_type(side(t)), t);
            // The ABI's name and the wire's are the same word (catalogs, logs, metrics).
            assert_eq!(side(t).as_str(), t.as_str());
        }
    }
}
