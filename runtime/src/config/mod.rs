//! Configuration: the daemon's own, and the config of each connector instance.

mod daemon;
mod instance;
mod instance_file;
pub mod secret_refs;

pub use daemon::{DaemonConfig, DaemonConfigError, Secret, StreamSettings};
pub use instance::{
    describe_ignored, document, warn_ignored, ConfigError, IgnoredField, InstanceConfig,
    SinkStream, SourceStream, Streams,
};
pub use instance_file::read_instance_file;
