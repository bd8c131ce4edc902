//! `check-plugin --config`: a `plugin_config` checked as the daemon would check it, with
//! every wrong field named, not only the first.

use std::sync::Arc;

use jsonschema::{
    error::{TypeKind, ValidationErrorKind},
    paths::LocationSegment,
    JsonType, ValidationError,
};
use ld_plugin_api::ffi::ConnectorType;
use serde_json::Value;

use crate::{config::secret_refs, plugin_host::PluginLibrary};

/// Why a config could not be checked at all (as opposed to being wrong).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The library lacks the side asked for.
    #[error("plugin `{key}` provides no {side}")]
    NoSuchSide {
        /// The connector key.
        key: String,
        /// The side asked for.
        side: &'static str,
    },
    /// The library provides both sides and none was named.
    #[error("plugin `{0}` provides a source and a sink: name the side to check (--side)")]
    Ambiguous(String),
    /// The published schema cannot be used.
    #[error("the {side} config schema of plugin `{key}` is not a valid JSON Schema: {reason}")]
    BadSchema {
        /// The connector key.
        key: String,
        /// The side.
        side: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The async runtime for the plugin's constructor could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// What a check found: the side checked and one line per problem (empty: the config is
/// valid).
#[derive(Debug)]
pub struct Checked {
    /// The side whose config was checked.
    pub side: ConnectorType,
    /// One line per problem, each naming the field (`plugin_config.batch_size: ...`).
    pub problems: Vec<String>,
    /// Whether an instance was built (the checks of the plugin's `new` ran).
    pub built: bool,
}

/// Checks `config` as a `plugin_config` of `side` (may be left out when the library
/// provides one side only), in three steps: against the JSON Schema the plugin
/// publishes (every wrong field), then by the plugin's own parsing (what the schema
/// cannot express, such as a number too large for its type), then, when both passed, by
/// building one instance, which runs the checks of the plugin's `new` (it must do no
/// I/O). The last step is skipped when the config holds `${env:..}` or `${file:..}`
/// references: the daemon resolves those on the node, not here.
pub fn check_config(
    lib: &Arc<PluginLibrary>,
    side: Option<ConnectorType>,
    config: &Value,
) -> Result<Checked, CheckError> {
    let meta = lib.meta();
    let side = match side {
        Some(side) => side,
        None => match (&meta.source, &meta.sink) {
            (Some(_), Some(_)) => return Err(CheckError::Ambiguous(meta.key.clone())),
            (Some(_), None) => ConnectorType::Source,
            _ => ConnectorType::Sink,
        },
    };
    let connector = match side {
        ConnectorType::Source => &meta.source,
        ConnectorType::Sink => &meta.sink,
    };
    let Some(connector) = connector else {
        return Err(CheckError::NoSuchSide {
            key: meta.key.clone(),
            side: side.as_str(),
        });
    };
    let mut schema = connector.config_schema.clone();
    whole_numbers(&mut schema);
    let validator = jsonschema::validator_for(&schema).map_err(|e| CheckError::BadSchema {
        key: meta.key.clone(),
        side: side.as_str(),
        reason: e.to_string(),
    })?;
    let mut problems = Vec::new();
    for error in validator.iter_errors(config) {
        describe(&error, &mut problems);
    }
    problems.sort();
    // The plugin's parse stops at its first error: add it unless the schema already
    // named that field or one inside it (serde names a missing or unknown field at its
    // parent: `plugin_config: missing field `url``).
    if let Err(e) = lib.validate_config(side, &config.to_string()) {
        let field = e.message().split(": ").next().unwrap_or_default();
        let named = problems.iter().any(|p| {
            p.strip_prefix(field)
                .is_some_and(|rest| rest.starts_with([':', '.', '[']))
        });
        if !named {
            problems.push(e.message().to_string());
        }
    }
    let built = problems.is_empty() && !secret_refs::has_references(config);
    if built {
        if let Err(e) = build_instance(lib, side, config)? {
            problems.push(e.message().to_string());
        }
    }
    problems.dedup();
    Ok(Checked {
        side,
        problems,
        built,
    })
}

/// Builds one instance and drops it unopened: what `new` says about the config.
fn build_instance(
    lib: &Arc<PluginLibrary>,
    side: ConnectorType,
    config: &Value,
) -> Result<Result<(), ld_plugin_api::PluginError>, CheckError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CheckError::Runtime)?;
    let config = config.to_string();
    Ok(runtime.block_on(async {
        match side {
            ConnectorType::Sink => lib.new_sink("check-plugin", &config).await.map(drop),
            ConnectorType::Source => lib
                .new_source("check-plugin", &config, None)
                .await
                .map(drop),
        }
    }))
}

/// schemars writes bounds as floats (`"minimum": 1.0`); as integers they read better in
/// the messages (`less than the minimum of 1`) and mean the same.
fn whole_numbers(value: &mut Value) {
    match value {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 1e15) {
                *value = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers),
        Value::Object(map) => map.values_mut().for_each(whole_numbers),
        _ => {}
    }
}

/// One line per wrong field for a schema error.
fn describe(error: &ValidationError<'_>, out: &mut Vec<String>) {
    let at = field_path(error);
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            for name in unexpected {
                out.push(format!("{at}.{name}: unknown field"));
            }
        }
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            out.push(format!("{at}.{name}: missing (required)"));
        }
        // `Option<T>` is `anyOf: [T, null]`: when one alternative fails deeper than the
        // value's type, its errors say what is wrong; when all want another type, name
        // the types.
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            let wrong_type = |e: &ValidationError<'_>| {
                matches!(e.kind(), ValidationErrorKind::Type { .. })
                    && e.instance_path() == error.instance_path()
            };
            let deeper: Vec<&Vec<ValidationError<'static>>> = context
                .iter()
                .filter(|errors| !errors.iter().all(wrong_type))
                .collect();
            match deeper.as_slice() {
                [errors] => errors.iter().for_each(|e| describe(e, out)),
                [] => {
                    let mut types: Vec<String> = Vec::new();
                    for e in context.iter().flatten() {
                        if let ValidationErrorKind::Type { kind } = e.kind() {
                            let named: Vec<JsonType> = match kind {
                                TypeKind::Single(t) => vec![*t],
                                TypeKind::Multiple(set) => set.iter().collect(),
                            };
                            for t in named {
                                let t = format!("\"{t}\"");
                                if !types.contains(&t) {
                                    types.push(t);
                                }
                            }
                        }
                    }
                    let instance = error.instance();
                    out.push(format!(
                        "{at}: {instance} is not of type {}",
                        types.join(" or ")
                    ));
                }
                _ => out.push(format!("{at}: {error}")),
            }
        }
        _ => out.push(format!("{at}: {error}")),
    }
}

/// `plugin_config.nodes[1].host`, from the error's JSON Pointer.
fn field_path(error: &ValidationError<'_>) -> String {
    let mut path = String::from("plugin_config");
    for segment in error.instance_path().segments() {
        match segment {
            LocationSegment::Property(name) => {
                path.push('.');
                path.push_str(&name);
            }
            LocationSegment::Index(i) => path.push_str(&format!("[{i}]")),
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The lines the schema part gives for `config`.
    fn schema_problems(mut schema: Value, config: Value) -> Vec<String> {
        whole_numbers(&mut schema);
        let validator = jsonschema::validator_for(&schema).unwrap();
        let mut out = Vec::new();
        for error in validator.iter_errors(&config) {
            describe(&error, &mut out);
        }
        out.sort();
        out
    }

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Config {
        batch_size: u32,
        #[serde(default)]
        count: Option<u64>,
        #[serde(default)]
        tls: Option<Tls>,
        #[serde(default)]
        nodes: Vec<String>,
    }

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Tls {
        ca_file: String,
    }

    fn schema() -> Value {
        serde_json::to_value(schemars::schema_for!(Config)).unwrap()
    }

    #[test]
    fn every_wrong_field_is_named_once() {
        let mut problems = schema_problems(
            schema(),
            json!({"batch_size": "x", "count": -1, "nodes": ["a", 2], "colour": "red",
                   "tls": {"ca_file": 7}}),
        );
        problems.sort();
        assert_eq!(
            problems,
            [
                "plugin_config.batch_size: \"x\" is not of type \"integer\"",
                "plugin_config.colour: unknown field",
                "plugin_config.count: -1 is less than the minimum of 0",
                "plugin_config.nodes[1]: 2 is not of type \"string\"",
                "plugin_config.tls.ca_file: 7 is not of type \"string\"",
            ]
        );
    }

    #[test]
    fn a_missing_field_and_a_wrong_optional_object() {
        let problems = schema_problems(schema(), json!({"tls": "yes"}));
        assert_eq!(
            problems,
            [
                "plugin_config.batch_size: missing (required)",
                "plugin_config.tls: \"yes\" is not of type \"object\" or \"null\"",
            ]
        );
        assert!(schema_problems(schema(), json!({"batch_size": 1})).is_empty());
    }
}
