//! The plugin host: loads connector libraries, keeps the catalog, and gives instance
//! tasks one handle type per side to drive a plugin.
//!
//! Libraries are loaded with `lib_header_from_path(..).init_root_module()` (never
//! `RootModule::load_from_file`, which caches one module per type and would hand back
//! the first plugin for every path), from a content-addressed copy (so the original file
//! can be replaced while loaded), and never unloaded.

mod abi;
mod catalog;
mod handle;
mod host_log;
mod library;
mod secret_fields;

pub use catalog::{Catalog, CatalogEntry};
pub use handle::{SinkHandle, SourceHandle};
pub use library::{ConnectorMeta, LoadError, PluginLibrary, PluginMeta};
pub use secret_fields::secret_fields;
