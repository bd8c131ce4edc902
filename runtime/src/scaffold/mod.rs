//! Tools for plugin authors: `new-plugin` writes a crate that builds, tests and loads as
//! it is ([`new_plugin`]), and `check-plugin --config` checks a `plugin_config` against
//! a built plugin ([`check_config`]).

mod check;

use std::{
    fs, io,
    path::{Path, PathBuf},
};

pub use check::{check_config, CheckError};

/// Which side the new plugin provides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Writes stream messages into a system.
    Sink,
    /// Reads a system into a stream.
    Source,
}

impl Side {
    /// `sink` or `source`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Sink => "sink",
            Side::Source => "source",
        }
    }
}

/// What `new-plugin` was asked for.
#[derive(Debug, Clone)]
pub struct NewPlugin {
    /// Crate name and connector key (`my-sink`).
    pub name: String,
    /// Sink or source.
    pub side: Side,
    /// The folder the crate's folder is created in.
    pub dir: PathBuf,
    /// A local `ld-plugin-api` folder to depend on instead of the registry's `0.1`.
    pub api_path: Option<PathBuf>,
}

/// Why no crate was written.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name cannot be a crate name and connector key.
    #[error(
        "`{0}` is not a valid plugin name: use lower-case letters, digits and `-`, \
         starting with a letter (e.g. `my-sink`)"
    )]
    InvalidName(String),
    /// The crate's folder is there already.
    #[error("{} already exists; choose another name or --dir", .0.display())]
    Exists(PathBuf),
    /// `--api-path` is not an `ld-plugin-api` folder.
    #[error("--api-path {}: no Cargo.toml there (give the plugin-api folder of an ld-connectord checkout)", .0.display())]
    ApiPath(PathBuf),
    /// Writing failed.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

/// Writes the crate `dir/name` and returns its folder. Nothing is written when the name
/// is invalid or the folder exists.
pub fn new_plugin(request: &NewPlugin) -> Result<PathBuf, ScaffoldError> {
    let name = request.name.as_str();
    if !valid_name(name) {
        return Err(ScaffoldError::InvalidName(name.to_string()));
    }
    let api = match &request.api_path {
        Some(path) => {
            let path = fs::canonicalize(path).map_err(|_| ScaffoldError::ApiPath(path.clone()))?;
            if !path.join("Cargo.toml").is_file() {
                return Err(ScaffoldError::ApiPath(path));
            }
            // The path as a TOML string, quoted and escaped.
            format!(
                "path = {}",
                toml::Value::String(path.to_string_lossy().into_owned())
            )
        }
        None => "version = \"0.1\"".to_string(),
    };
    let root = request.dir.join(name);
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ScaffoldError::Write { path, source }
    };
    fs::create_dir_all(&request.dir).map_err(write_err(&request.dir))?;
    fs::create_dir(&root).map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => ScaffoldError::Exists(root.clone()),
        _ => write_err(&root)(e),
    })?;
    for (file, template) in templates(request.side) {
        let path = root.join(file);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(write_err(parent))?;
        }
        let text = render(template, name, request.side, &api);
        fs::write(&path, text).map_err(write_err(&path))?;
    }
    Ok(root)
}

/// The file `cargo build --release` makes for the plugin `name`: `libld_<name>.so`.
pub fn library_file(name: &str) -> String {
    format!("lib{}.so", lib_name(name))
}

/// A crate name that is also a connector key: `[a-z][a-z0-9-]*`.
fn valid_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The files of a new crate: (path in the crate, template).
fn templates(side: Side) -> Vec<(&'static str, &'static str)> {
    let mut files = vec![
        ("Cargo.toml", include_str!("templates/Cargo.toml.in")),
        (".gitignore", "/target\n"),
    ];
    files.extend(match side {
        Side::Sink => [
            ("src/lib.rs", include_str!("templates/sink/lib.rs.in")),
            (
                "tests/plugin.rs",
                include_str!("templates/sink/plugin.rs.in"),
            ),
            ("README.md", include_str!("templates/sink/README.md.in")),
            (
                "example-config.json",
                include_str!("templates/sink/example-config.json"),
            ),
        ],
        Side::Source => [
            ("src/lib.rs", include_str!("templates/source/lib.rs.in")),
            (
                "tests/plugin.rs",
                include_str!("templates/source/plugin.rs.in"),
            ),
            ("README.md", include_str!("templates/source/README.md.in")),
            (
                "example-config.json",
                include_str!("templates/source/example-config.json"),
            ),
        ],
    });
    files
}

/// Fills a template's `{{...}}` placeholders.
fn render(template: &str, name: &str, side: Side, api: &str) -> String {
    template
        .replace("{{name}}", name)
        .replace("{{lib_name}}", &lib_name(name))
        .replace("{{Type}}", &type_name(name, side))
        .replace("{{title}}", &title(name))
        .replace("{{api}}", api)
}

/// The library's name: `ld_` and the crate name with `_` for `-`, so the file is
/// `libld_<name>.so` like the plugins of this repository.
fn lib_name(name: &str) -> String {
    format!("ld_{}", name.replace('-', "_"))
}

/// The plugin's type: the name in CamelCase, ending in `Sink` or `Source` (`orders` ->
/// `OrdersSink`, `my-sink` -> `MySink`), so it never clashes with the SDK's names.
fn type_name(name: &str, side: Side) -> String {
    let camel: String = name
        .split('-')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    let suffix = match side {
        Side::Sink => "Sink",
        Side::Source => "Source",
    };
    if camel.ends_with(suffix) && camel != suffix {
        camel
    } else {
        camel + suffix
    }
}

/// A human-readable name for the catalog: `my-sink` -> `My sink`.
fn title(name: &str) -> String {
    let spaced = name.replace('-', " ");
    let mut chars = spaced.chars();
    chars
        .next()
        .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["my-sink", "a", "orders2", "pg-2-s3"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in [
            "", "My-sink", "2sink", "-sink", "my_sink", "my sink", "sinké",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert_eq!(lib_name("my-sink"), "ld_my_sink");
        assert_eq!(type_name("my-sink", Side::Sink), "MySink");
        assert_eq!(type_name("orders", Side::Sink), "OrdersSink");
        assert_eq!(type_name("sink", Side::Sink), "SinkSink");
        assert_eq!(type_name("pg-2-s3", Side::Source), "Pg2S3Source");
        assert_eq!(type_name("walk-source", Side::Source), "WalkSource");
        assert_eq!(title("my-sink"), "My sink");
    }

    #[test]
    fn every_placeholder_is_filled() {
        for side in [Side::Sink, Side::Source] {
            for (file, template) in templates(side) {
                let text = render(template, "x-y", side, "version = \"0.1\"");
                for placeholder in ["{{name", "{{lib_name", "{{Type", "{{title", "{{api"] {
                    assert!(!text.contains(placeholder), "{file} of a {side:?}: {text}");
                }
            }
        }
    }

    #[test]
    fn refuses_a_bad_name_or_an_existing_folder() {
        let dir = tempfile::tempdir().unwrap();
        let request = |name: &str| NewPlugin {
            name: name.into(),
            side: Side::Sink,
            dir: dir.path().to_path_buf(),
            api_path: None,
        };
        let err = new_plugin(&request("My_Sink")).unwrap_err();
        assert!(err
            .to_string()
            .contains("`My_Sink` is not a valid plugin name"));
        assert!(!dir.path().join("My_Sink").exists());

        let root = new_plugin(&request("my-sink")).unwrap();
        let cargo = fs::read_to_string(root.join("Cargo.toml")).unwrap();
        assert!(cargo.contains("name = \"ld_my_sink\""), "{cargo}");
        assert!(
            cargo.contains("ld-plugin-api = { version = \"0.1\" }"),
            "{cargo}"
        );
        let err = new_plugin(&request("my-sink")).unwrap_err();
        assert!(matches!(err, ScaffoldError::Exists(_)), "{err}");
    }

    #[test]
    fn api_path_is_absolute_and_must_hold_a_crate() {
        let dir = tempfile::tempdir().unwrap();
        let api = dir.path().join("api \"dir\"");
        fs::create_dir(&api).unwrap();
        let request = NewPlugin {
            name: "s".into(),
            side: Side::Source,
            dir: dir.path().join("out"),
            api_path: Some(api.clone()),
        };
        assert!(matches!(
            new_plugin(&request),
            Err(ScaffoldError::ApiPath(_))
        ));
        fs::write(api.join("Cargo.toml"), "").unwrap();
        let root = new_plugin(&request).unwrap();
        let cargo: toml::Value =
            toml::from_str(&fs::read_to_string(root.join("Cargo.toml")).unwrap()).unwrap();
        let api = fs::canonicalize(&api).unwrap();
        assert_eq!(
            cargo["dependencies"]["ld-plugin-api"]["path"].as_str(),
            api.to_str()
        );
        assert_eq!(
            cargo["dev-dependencies"]["ld-plugin-api"]["path"].as_str(),
            api.to_str()
        );
    }
}
