//! Configuration: the config of each connector instance.

mod instance;

pub use instance::{document, ConfigError, InstanceConfig, SinkStream, SourceStream, Streams};
