//! Configuration: the daemon's own, and the config of each connector instance.

mod daemon;
mod instance;
mod instance_file;
mod local_file;
pub mod secret_refs;

pub use crate::stream::StreamSettings;
pub use daemon::{DaemonConfig, DaemonConfigError, Secret};
pub use instance::{
    describe_ignored, document, warn_ignored, ConfigError, ErrorPolicy, IgnoredField,
    InstanceConfig, SinkStream, SourceStream, Streams, Tolerance,
};
pub use instance_file::read_instance_file;
pub(crate) use instance_file::read_instance_file_noted;
pub use local_file::LocalFile;
