//! Configuration: the daemon's own, and the config of each connector instance.

mod daemon;
mod instance;
mod instance_file;
mod local_file;
pub mod secret_refs;

pub use crate::stream::StreamSettings;
pub use daemon::{DaemonConfig, DaemonConfigError, Secret};
pub use instance::{document, ConfigError, InstanceConfig, SinkStream, SourceStream, Streams};
pub use instance_file::read_instance_file;
pub use local_file::LocalFile;
