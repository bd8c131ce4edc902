//! The catalog: every connector the plugin directory provides, by (key, type).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use ld_plugin_api::ffi::ConnectorType;
use serde::Serialize;

use crate::wire::wire_type;

use super::{LoadError, PluginLibrary};

/// One connector (one side of one plugin) as listed to operators and the supervisor.
#[derive(Debug, Clone, Serialize)]
pub struct CatalogEntry {
    /// Connector key.
    pub key: String,
    /// `source` or `sink`, as the supervisor's catalog and heartbeats name it.
    #[serde(rename = "type")]
    pub connector_type: ld_protocol::ConnectorType,
    /// Human-readable name.
    pub name: String,
    /// One-line description.
    pub description: String,
    /// Plugin version.
    pub version: String,
    /// The plugin file.
    pub file: PathBuf,
    /// SHA-256 of the plugin file.
    pub digest: String,
    /// JSON Schema of the `plugin_config`.
    pub config_schema: serde_json::Value,
    /// JSON Pointers of its secret fields (`/password`).
    pub secret_fields: Vec<String>,
}

/// The libraries loaded from a plugin directory, and the files refused.
#[derive(Debug, Default)]
pub struct Catalog {
    by_connector: BTreeMap<(String, ld_protocol::ConnectorType), Arc<PluginLibrary>>,
    refused: Vec<LoadError>,
}

impl Catalog {
    /// Loads every `*.so` of `dir` (in name order). A file that fails is recorded in
    /// [`Catalog::refused`] and skipped; the rest still load.
    pub fn load_dir(dir: &Path, cache_dir: &Path) -> std::io::Result<Catalog> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|ext| ext == "so") && p.is_file())
            .collect();
        files.sort();
        let mut catalog = Catalog::default();
        for file in files {
            match PluginLibrary::load(&file, cache_dir) {
                Ok(lib) => catalog.add(lib),
                Err(err) => catalog.refused.push(err),
            }
        }
        Ok(catalog)
    }

    /// Adds a loaded library; a connector (key and type) already provided by another
    /// file is refused.
    pub fn add(&mut self, lib: Arc<PluginLibrary>) {
        for side in lib.meta().types() {
            let slot = (lib.meta().key.clone(), wire_type(side));
            if let Some(existing) = self.by_connector.get(&slot) {
                if existing.digest() != lib.digest() {
                    self.refused.push(LoadError::Refused {
                        path: lib.file().to_path_buf(),
                        reason: format!(
                            "duplicate connector `{}` ({}): already provided by {}",
                            slot.0,
                            slot.1,
                            existing.file().display()
                        ),
                    });
                }
                continue;
            }
            self.by_connector.insert(slot, lib.clone());
        }
    }

    /// The library providing connector `key` of type `side`.
    pub fn get(&self, key: &str, side: ConnectorType) -> Option<&Arc<PluginLibrary>> {
        self.by_connector.get(&(key.to_string(), wire_type(side)))
    }

    /// Files that were not loaded, with why.
    pub fn refused(&self) -> &[LoadError] {
        &self.refused
    }

    /// Every connector, ordered by key then type.
    pub fn entries(&self) -> Vec<CatalogEntry> {
        self.by_connector
            .iter()
            .map(|((key, side), lib)| {
                let meta = lib.meta();
                let spec = match side {
                    ld_protocol::ConnectorType::Source => meta.source.as_ref(),
                    ld_protocol::ConnectorType::Sink => meta.sink.as_ref(),
                };
                CatalogEntry {
                    key: key.clone(),
                    connector_type: *side,
                    name: meta.name.clone(),
                    description: meta.description.clone(),
                    version: meta.version.clone(),
                    file: lib.file().to_path_buf(),
                    digest: lib.digest().to_string(),
                    config_schema: spec
                        .map(|s| s.config_schema.clone())
                        .unwrap_or(serde_json::Value::Null),
                    secret_fields: spec.map(|s| s.secret_fields.clone()).unwrap_or_default(),
                }
            })
            .collect()
    }
}
