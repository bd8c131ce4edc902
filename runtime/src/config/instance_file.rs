//! Instance config files, as `ld-connectord local` reads them: TOML in the shape of
//! Iggy's connector files, or JSON, with the side (`type`) and the connector (`key`).

use std::path::Path;

use anyhow::{bail, Context};
use ld_plugin_api::ffi::ConnectorType;

use super::{document, InstanceConfig};
use crate::instance::InstanceSpec;

/// Reads one instance file: its side, connector key and config.
pub fn read_instance_file(path: &Path) -> anyhow::Result<InstanceSpec> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let doc = document(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let side = match doc.get("type").and_then(|v| v.as_str()) {
        Some("source") => ConnectorType::Source,
        Some("sink") => ConnectorType::Sink,
        Some(other) => bail!(
            "{}: type: `{other}` is neither source nor sink",
            path.display()
        ),
        None => bail!("{}: type: missing (source or sink)", path.display()),
    };
    let Some(key) = doc.get("key").and_then(|v| v.as_str()) else {
        bail!(
            "{}: key: missing (the connector key, e.g. stdout)",
            path.display()
        );
    };
    let config = InstanceConfig::parse(side, &doc)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let instance_key = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .context("instance file has no name")?;
    Ok(InstanceSpec {
        instance_key,
        connector_key: key.to_string(),
        connector_type: side,
        config,
    })
}
