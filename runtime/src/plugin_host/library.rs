//! Loading one plugin library, checking it, and refusing it with a one-line reason.

use std::{
    collections::HashMap,
    fs,
    io::Write,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, OnceLock},
};

use abi_stable::library::{lib_header_from_path, LibraryError};
use ld_plugin_api::{
    ffi::{ConnectorType, PluginInfo, SinkInit, SourceInit, ABI_VERSION},
    PluginError,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{abi::RootModule, handle::SinkHandle, handle::SourceHandle, host_log};

/// Why a library was not loaded. Displays as one line naming the file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The plugin file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The content-addressed copy could not be written.
    #[error("{}: cannot copy into the plugin cache {}: {source}", path.display(), cache.display())]
    Cache {
        /// The plugin file.
        path: PathBuf,
        /// The cache directory.
        cache: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a loadable, compatible plugin.
    #[error("{}: {reason}", path.display())]
    Refused {
        /// The plugin file.
        path: PathBuf,
        /// A one-line reason for a person.
        reason: String,
    },
}

impl LoadError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            LoadError::Read { path, .. }
            | LoadError::Cache { path, .. }
            | LoadError::Refused { path, .. } => path,
        }
    }
}

/// One side (source or sink) of a plugin, as the catalog shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectorMeta {
    /// JSON Schema of its `plugin_config`.
    pub config_schema: serde_json::Value,
    /// JSON Pointers of the fields the schema marks secret (`/password`).
    pub secret_fields: Vec<String>,
}

/// A plugin's self-description in plain Rust types.
#[derive(Debug, Clone, Serialize)]
pub struct PluginMeta {
    /// Connector key.
    pub key: String,
    /// Human-readable name.
    pub name: String,
    /// One-line description.
    pub description: String,
    /// Plugin version.
    pub version: String,
    /// The source side, when provided.
    pub source: Option<ConnectorMeta>,
    /// The sink side, when provided.
    pub sink: Option<ConnectorMeta>,
}

impl PluginMeta {
    /// The sides this plugin provides.
    pub fn types(&self) -> Vec<ConnectorType> {
        let mut types = Vec::new();
        if self.source.is_some() {
            types.push(ConnectorType::Source);
        }
        if self.sink.is_some() {
            types.push(ConnectorType::Sink);
        }
        types
    }
}

/// A loaded plugin library. Never unloaded: code of a library may still run (a spawned
/// task, a thread-local destructor) after its last instance is gone.
pub struct PluginLibrary {
    meta: PluginMeta,
    module: RootModule,
    file: PathBuf,
    loaded_from: PathBuf,
    digest: String,
}

impl std::fmt::Debug for PluginLibrary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginLibrary")
            .field("key", &self.meta.key)
            .field("file", &self.file)
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

/// Libraries already loaded in this process, by content digest.
fn loaded() -> &'static Mutex<HashMap<String, Arc<PluginLibrary>>> {
    static LOADED: OnceLock<Mutex<HashMap<String, Arc<PluginLibrary>>>> = OnceLock::new();
    LOADED.get_or_init(Default::default)
}

impl PluginLibrary {
    /// Loads the plugin at `path` from a content-addressed copy under `cache_dir`.
    /// Loading the same content twice returns the same library.
    pub fn load(path: &Path, cache_dir: &Path) -> Result<Arc<PluginLibrary>, LoadError> {
        let bytes = fs::read(path).map_err(|source| LoadError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let digest = format!("{:x}", Sha256::digest(&bytes));
        if let Some(lib) = loaded()
            .lock()
            .expect("plugin registry poisoned")
            .get(&digest)
        {
            return Ok(lib.clone());
        }
        let refused = |reason: String| LoadError::Refused {
            path: path.to_path_buf(),
            reason,
        };
        // Anything that is not an ELF shared object would only give a confusing dlopen
        // message; say what it is instead.
        if !bytes.starts_with(b"\x7fELF") {
            return Err(refused(
                "not a plugin library: the file is not an ELF shared object".into(),
            ));
        }
        let copy = content_addressed_copy(path, &bytes, &digest, cache_dir)?;
        let header = lib_header_from_path(&copy).map_err(|e| refused(summarise(&e)))?;
        let module = RootModule::init(header).map_err(|e| refused(summarise(&e)))?;
        module.attach_host(host_log::host_api());
        let meta = read_meta(module.info()).map_err(refused)?;
        let lib = Arc::new(PluginLibrary {
            meta,
            module,
            file: path.to_path_buf(),
            loaded_from: copy,
            digest: digest.clone(),
        });
        loaded()
            .lock()
            .expect("plugin registry poisoned")
            .entry(digest)
            .or_insert_with(|| lib.clone());
        Ok(lib)
    }

    /// What the plugin says about itself.
    pub fn meta(&self) -> &PluginMeta {
        &self.meta
    }

    /// The file it was loaded for.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The content-addressed copy actually mapped into the process.
    pub fn loaded_from(&self) -> &Path {
        &self.loaded_from
    }

    /// SHA-256 of the library file.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Checks a `plugin_config` for one side without building an instance.
    pub fn validate_config(&self, side: ConnectorType, config: &str) -> Result<(), PluginError> {
        self.module.validate_config(side, config).into_result()
    }

    /// Builds a sink instance. The constructor runs on a blocking thread: it is plugin
    /// code, and a tokio worker never waits on plugin code.
    pub async fn new_sink(
        self: &Arc<Self>,
        instance_key: &str,
        config: &str,
    ) -> Result<SinkHandle, PluginError> {
        let lib = self.clone();
        let key = instance_key.to_string();
        let config = config.to_string();
        let built = tokio::task::spawn_blocking(move || {
            lib.module.new_sink(SinkInit {
                instance_key: key.as_str().into(),
                config: config.as_str().into(),
            })
        })
        .await
        .map_err(|e| PluginError::panicked(format!("sink constructor task failed: {e}")))?;
        Ok(SinkHandle::new(built?, self.clone()))
    }

    /// Builds a source instance, handing it its last saved state.
    pub async fn new_source(
        self: &Arc<Self>,
        instance_key: &str,
        config: &str,
        state: Option<Vec<u8>>,
    ) -> Result<SourceHandle, PluginError> {
        let lib = self.clone();
        let key = instance_key.to_string();
        let config = config.to_string();
        let built = tokio::task::spawn_blocking(move || {
            lib.module
                .new_source(SourceInit {
                    instance_key: key.as_str().into(),
                    config: config.as_str().into(),
                    state: state.as_deref().map(Into::into).into(),
                })
                .into_result()
        })
        .await
        .map_err(|e| PluginError::panicked(format!("source constructor task failed: {e}")))?;
        Ok(SourceHandle::new(built?, self.clone()))
    }
}

/// Copies the library to `<cache>/<digest>-<file name>` (atomically, once), so the
/// mapped file never changes even when the original is overwritten by a new build.
fn content_addressed_copy(
    path: &Path,
    bytes: &[u8],
    digest: &str,
    cache_dir: &Path,
) -> Result<PathBuf, LoadError> {
    let cache_err = |source| LoadError::Cache {
        path: path.to_path_buf(),
        cache: cache_dir.to_path_buf(),
        source,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plugin.so".into());
    let target = cache_dir.join(format!("{}-{name}", &digest[..32]));
    if target.exists() {
        return Ok(target);
    }
    fs::create_dir_all(cache_dir).map_err(cache_err)?;
    let mut tmp = tempfile::NamedTempFile::new_in(cache_dir).map_err(cache_err)?;
    tmp.write_all(bytes).map_err(cache_err)?;
    tmp.persist(&target).map_err(|e| cache_err(e.error))?;
    Ok(target)
}

fn read_meta(info: PluginInfo) -> Result<PluginMeta, String> {
    let key = info.key.to_string();
    let valid_key = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !valid_key {
        return Err(format!(
            "invalid connector key `{key}` (use lower-case letters, digits, `-` and `_`)"
        ));
    }
    let side = |spec: Option<ld_plugin_api::ffi::ConnectorSpec>, name: &str| {
        spec.map(|spec| {
            serde_json::from_str(spec.config_schema.as_str())
                .map(|config_schema| ConnectorMeta {
                    secret_fields: super::secret_fields(&config_schema),
                    config_schema,
                })
                .map_err(|e| format!("the {name} config schema of `{key}` is not JSON: {e}"))
        })
        .transpose()
    };
    let meta = PluginMeta {
        source: side(info.source.into_option(), "source")?,
        sink: side(info.sink.into_option(), "sink")?,
        key: key.clone(),
        name: info.name.into(),
        description: info.description.into(),
        version: info.version.into(),
    };
    if meta.source.is_none() && meta.sink.is_none() {
        return Err(format!(
            "plugin `{key}` provides neither a source nor a sink"
        ));
    }
    Ok(meta)
}

/// One line for a person instead of abi_stable's multi-kilobyte report.
fn summarise(err: &LibraryError) -> String {
    let first_line = |s: String| {
        let line = s
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .to_string();
        if line.len() > 200 {
            format!(
                "{}...",
                &line[..line.char_indices().nth(200).map_or(line.len(), |(i, _)| i)]
            )
        } else {
            line
        }
    };
    match err {
        LibraryError::OpenError { err, .. } => {
            format!("cannot load the library: {}", first_line(err.to_string()))
        }
        LibraryError::GetSymbolError { .. } => "not an ld-connectord plugin: it exports no \
            plugin root module (build it with ld_plugin_api::export_plugin!)"
            .into(),
        LibraryError::IncompatibleVersionNumber {
            expected_version,
            actual_version,
            ..
        } => format!(
            "incompatible plugin ABI: built against ld-plugin-api {actual_version}, this \
             runtime loads plugins built against {}.{}.x (ld-plugin-api {ABI_VERSION}); \
             rebuild the plugin",
            expected_version.major, expected_version.minor
        ),
        LibraryError::AbiInstability(_) => format!(
            "incompatible plugin ABI: its root module does not match ld-plugin-api \
             {ABI_VERSION} (rebuild the plugin against it)"
        ),
        LibraryError::InvalidAbiHeader(_) | LibraryError::InvalidCAbi { .. } => {
            "incompatible plugin ABI: built with an incompatible abi_stable version".into()
        }
        LibraryError::RootModule { err, .. } => {
            format!(
                "the plugin failed to initialise: {}",
                first_line(err.to_string())
            )
        }
        LibraryError::ParseVersionError(e) => {
            format!("the plugin declares an unreadable ABI version: {e}")
        }
        LibraryError::Many(errors) => errors.iter().map(summarise).collect::<Vec<_>>().join("; "),
    }
}
