//! The sink's `plugin_config` (with the field names of Apache Iggy's iceberg sink), and
//! the settings checked out of it before any I/O.

use std::{collections::HashMap, fmt, time::Duration};

use iceberg::spec::{
    NestedField, PrimitiveType, Schema as IcebergSchema, Transform, Type, UnboundPartitionSpec,
};
use iceberg::{NamespaceIdent, TableIdent};
use ld_plugin_api::{parse_duration, PluginError, Secret};

/// Which catalog holds the tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CatalogType {
    /// The SQL catalog on an embedded SQLite file (no server).
    #[default]
    Sql,
    /// An Iceberg REST catalog server.
    Rest,
    /// AWS Glue: accepted as a name (Iggy configs) but not supported; refused with a reason.
    Glue,
}

/// Where data files go (Iggy's `store_class`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StoreClass {
    /// The local filesystem.
    Fs,
    /// S3 or an S3-compatible object store.
    S3,
    /// Not supported (refused with a reason).
    Gcs,
    /// Not supported (refused with a reason).
    Azdls,
    /// Not supported (refused with a reason).
    Oss,
}

/// What to do with a message that does not fit the table's schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnRecordError {
    /// Stop the instance, naming the message's offset, the field and why.
    #[default]
    Fail,
    /// Leave the message out (logged with its offset, field and reason) and go on.
    Skip,
}

/// One column of a table to create.
#[derive(Debug, Clone, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    /// Column name (a top-level key of the JSON payloads).
    pub name: String,
    /// Iceberg primitive type: `boolean`, `int`, `long`, `float`, `double`,
    /// `decimal(P,S)`, `date`, `time`, `timestamp`, `timestamptz`, `string`, `binary`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// The value must be present and not null in every message.
    #[serde(default)]
    pub required: bool,
}

/// One field of the partition spec of a table to create.
#[derive(Debug, Clone, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PartitionFieldSpec {
    /// The column it is computed from.
    pub column: String,
    /// `identity`, `year`, `month`, `day`, `hour`, `bucket[N]`, `truncate[W]`.
    #[serde(default = "identity")]
    pub transform: String,
    /// Name of the partition field (default: `<column>_<transform>`, or the column for
    /// `identity`).
    #[serde(default)]
    pub name: Option<String>,
}

fn identity() -> String {
    "identity".to_string()
}

/// How to create a table that does not exist yet.
#[derive(Debug, Clone, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTableSpec {
    /// The columns, in order.
    pub schema: Vec<ColumnSpec>,
    /// The partition spec (empty: unpartitioned).
    #[serde(default)]
    pub partition_by: Vec<PartitionFieldSpec>,
    /// Extra table properties.
    #[serde(default)]
    pub properties: HashMap<String, String>,
}

/// `plugin_config` of the Iceberg sink.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IcebergSinkConfig {
    /// Tables every message is written to, as `namespace.table` (nested namespaces:
    /// `a.b.table`). With `dynamic_routing` they are opened (and checked) at start too.
    #[serde(default)]
    pub tables: Vec<String>,
    /// `sql` (default: an embedded SQLite catalog, no server) or `rest`.
    #[serde(default)]
    pub catalog_type: CatalogType,
    /// The catalog's name (the SQL catalog stores it in each row; other engines reading
    /// the same SQLite file must use the same name).
    #[serde(default = "default_catalog_name")]
    pub catalog_name: String,
    /// `sql`: the SQLite file (a path or a `sqlite:` URL), created when missing.
    /// `rest`: the catalog's base URL (`http://host:8181`).
    #[serde(default)]
    pub uri: String,
    /// Where data files go. `sql`: a directory, `file://` URL or `s3://bucket/prefix`
    /// (required). `rest`: the warehouse name or location handed to the server (optional).
    #[serde(default)]
    pub warehouse: String,
    /// `rest`: a bearer token. Secret.
    #[serde(default)]
    pub token: Option<Secret>,
    /// `rest`: OAuth2 client credential `client_id:client_secret`. Secret.
    #[serde(default)]
    pub credential: Option<Secret>,
    /// `rest`: OAuth2 token endpoint (default: the catalog's own).
    #[serde(default)]
    pub oauth2_server_uri: Option<String>,
    /// `rest`: OAuth2 scope (default `catalog`).
    #[serde(default)]
    pub scope: Option<String>,
    /// Route each message by a payload field holding `namespace.table`.
    #[serde(default)]
    pub dynamic_routing: bool,
    /// The payload field naming the table (with `dynamic_routing`).
    #[serde(default)]
    pub dynamic_route_field: String,
    /// `fs` or `s3` (default: from the warehouse's scheme).
    #[serde(default)]
    pub store_class: Option<StoreClass>,
    /// S3 endpoint of an S3-compatible store (`http://127.0.0.1:9000`).
    #[serde(default)]
    pub store_url: Option<String>,
    /// S3 access key id. Secret.
    #[serde(default)]
    pub store_access_key_id: Option<Secret>,
    /// S3 secret access key. Secret.
    #[serde(default)]
    pub store_secret_access_key: Option<Secret>,
    /// S3 region.
    #[serde(default)]
    pub store_region: Option<String>,
    /// S3 path-style addressing (default: on when `store_url` is set).
    #[serde(default)]
    pub store_path_style_access: Option<bool>,
    /// Extra catalog / FileIO properties (e.g. `s3.session-token` is a secret: use the
    /// fields above for keys).
    #[serde(default)]
    pub catalog_properties: HashMap<String, String>,
    /// Create a missing table with this schema and partition spec (and its namespace).
    #[serde(default)]
    pub create_table: Option<CreateTableSpec>,
    /// `fail` (default) or `skip` a message that does not fit the schema.
    #[serde(default)]
    pub on_record_error: OnRecordError,
    /// Commit a snapshot at least this often while rows are buffered (`"10s"`, `"500ms"`).
    #[serde(default = "default_commit_interval")]
    pub commit_interval: String,
    /// Commit a snapshot once this many rows are buffered.
    #[serde(default = "default_commit_rows")]
    #[schemars(range(min = 1))]
    pub commit_rows: u64,
    /// Target size of one data file, in MiB (larger commits roll over to more files).
    #[serde(default = "default_target_file_size_mb")]
    #[schemars(range(min = 1))]
    pub target_file_size_mb: u64,
    /// Accepted for older configs, no effect: a commit that conflicts with another
    /// writer goes back to the host as a transient error, and the host's retry reloads
    /// the table, re-checks the offsets it holds, writes again and commits.
    #[serde(default)]
    pub commit_retries: Option<u32>,
}

fn default_catalog_name() -> String {
    "default".to_string()
}
fn default_commit_interval() -> String {
    "10s".to_string()
}
fn default_commit_rows() -> u64 {
    100_000
}
fn default_target_file_size_mb() -> u64 {
    512
}

/// Checked catalog settings.
#[derive(Debug, Clone, PartialEq)]
pub enum CatalogSettings {
    /// SQLite catalog.
    Sql {
        /// `sqlite:` URL of the catalog file.
        url: String,
        /// Warehouse location (URL or absolute path).
        warehouse: String,
    },
    /// REST catalog.
    Rest {
        /// Base URL.
        uri: String,
        /// Warehouse name or location, if any.
        warehouse: Option<String>,
    },
}

/// Everything the sink needs from its config, checked.
#[derive(Clone)]
pub struct Settings {
    /// Catalog name.
    pub catalog_name: String,
    /// Catalog kind and address.
    pub catalog: CatalogSettings,
    /// Properties for the catalog and FileIO (hold the secrets).
    pub props: HashMap<String, String>,
    /// Secret values, scrubbed out of every message.
    secrets: Vec<String>,
    /// Static tables.
    pub tables: Vec<TableIdent>,
    /// Route field, with dynamic routing.
    pub route_field: Option<String>,
    /// Create missing tables.
    pub create: Option<TableTemplate>,
    /// Per-record error policy.
    pub on_record_error: OnRecordError,
    /// Commit policy.
    pub commit_interval: Duration,
    /// Commit policy.
    pub commit_rows: u64,
    /// Rolling file size.
    pub target_file_size: usize,
    /// `commit_retries` was set (it has no effect; the plugin says so once).
    pub commit_retries_set: bool,
}

/// A checked `create_table`.
#[derive(Clone, Debug)]
pub struct TableTemplate {
    /// Schema with field ids 1..
    pub schema: IcebergSchema,
    /// Partition spec, unbound.
    pub partition_spec: UnboundPartitionSpec,
    /// Table properties.
    pub properties: HashMap<String, String>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted: HashMap<&str, &str> = self
            .props
            .iter()
            .map(|(k, v)| {
                let shown = if self.secrets.iter().any(|s| s == v) {
                    "***"
                } else {
                    v.as_str()
                };
                (k.as_str(), shown)
            })
            .collect();
        f.debug_struct("Settings")
            .field("catalog_name", &self.catalog_name)
            .field("catalog", &self.catalog_description())
            .field("props", &redacted)
            .field("tables", &self.tables)
            .field("route_field", &self.route_field)
            .field("on_record_error", &self.on_record_error)
            .field("commit_interval", &self.commit_interval)
            .field("commit_rows", &self.commit_rows)
            .finish_non_exhaustive()
    }
}

fn invalid(field: &str, reason: impl fmt::Display) -> PluginError {
    PluginError::invalid_config(format!("plugin_config.{field}: {reason}"))
}

impl Settings {
    /// Checks a config; no I/O.
    pub fn from_config(config: IcebergSinkConfig) -> Result<Settings, PluginError> {
        let mut props: HashMap<String, String> = config.catalog_properties.clone();
        let mut secrets = Vec::new();
        if config.catalog_name.trim().is_empty() {
            return Err(invalid("catalog_name", "must not be empty"));
        }
        let catalog = match config.catalog_type {
            CatalogType::Glue => {
                return Err(invalid(
                    "catalog_type",
                    "`glue` is not supported (use `sql` or `rest`)",
                ))
            }
            CatalogType::Sql => {
                if config.uri.trim().is_empty() {
                    return Err(invalid(
                        "uri",
                        "missing: the SQLite catalog file (e.g. \"/var/lib/ld/iceberg/catalog.db\")",
                    ));
                }
                if config.warehouse.trim().is_empty() {
                    return Err(invalid(
                        "warehouse",
                        "missing: where data files go (a directory, file:// or s3:// URL)",
                    ));
                }
                CatalogSettings::Sql {
                    url: sqlite_url(&config.uri).map_err(|r| invalid("uri", r))?,
                    warehouse: warehouse_location(&config.warehouse)
                        .map_err(|r| invalid("warehouse", r))?,
                }
            }
            CatalogType::Rest => {
                let uri = config.uri.trim();
                if !(uri.starts_with("http://") || uri.starts_with("https://")) {
                    return Err(invalid(
                        "uri",
                        format!("`{uri}` is not a REST catalog URL (http://host:8181)"),
                    ));
                }
                if let Some(t) = &config.token {
                    props.insert("token".into(), t.expose().to_string());
                    secrets.push(t.expose().to_string());
                }
                if let Some(c) = &config.credential {
                    if !c.expose().contains(':') {
                        return Err(invalid("credential", "expected `client_id:client_secret`"));
                    }
                    props.insert("credential".into(), c.expose().to_string());
                    secrets.push(c.expose().to_string());
                    if let Some((_, secret)) = c.expose().split_once(':') {
                        secrets.push(secret.to_string());
                    }
                }
                if let Some(u) = &config.oauth2_server_uri {
                    props.insert("oauth2-server-uri".into(), u.clone());
                }
                if let Some(s) = &config.scope {
                    props.insert("scope".into(), s.clone());
                }
                CatalogSettings::Rest {
                    uri: uri.trim_end_matches('/').to_string(),
                    warehouse: Some(config.warehouse.trim().to_string()).filter(|w| !w.is_empty()),
                }
            }
        };
        let store = match config.store_class {
            Some(StoreClass::Fs) => StoreClass::Fs,
            Some(StoreClass::S3) => StoreClass::S3,
            Some(other) => {
                return Err(invalid(
                    "store_class",
                    format!("{other:?} is not supported (use `fs` or `s3`)").to_lowercase(),
                ))
            }
            None if config.warehouse.starts_with("s3") || config.store_url.is_some() => {
                StoreClass::S3
            }
            None => StoreClass::Fs,
        };
        if store == StoreClass::S3 {
            if let Some(u) = &config.store_url {
                props.insert("s3.endpoint".into(), u.clone());
            }
            if let Some(k) = &config.store_access_key_id {
                props.insert("s3.access-key-id".into(), k.expose().to_string());
                secrets.push(k.expose().to_string());
            }
            if let Some(k) = &config.store_secret_access_key {
                props.insert("s3.secret-access-key".into(), k.expose().to_string());
                secrets.push(k.expose().to_string());
            }
            if let Some(r) = &config.store_region {
                props.insert("s3.region".into(), r.clone());
            }
            let path_style = config
                .store_path_style_access
                .unwrap_or(config.store_url.is_some());
            props.insert("s3.path-style-access".into(), path_style.to_string());
        }
        secrets.retain(|s| !s.is_empty());

        let mut tables = Vec::new();
        for (i, name) in config.tables.iter().enumerate() {
            if name.trim().is_empty() {
                continue; // Iggy's dynamic-routing examples carry `tables = [""]`
            }
            tables.push(parse_table(name).map_err(|r| invalid(&format!("tables[{i}]"), r))?);
        }
        let route_field = if config.dynamic_routing {
            if config.dynamic_route_field.trim().is_empty() {
                return Err(invalid(
                    "dynamic_route_field",
                    "missing: the payload field naming the table (dynamic_routing is on)",
                ));
            }
            Some(config.dynamic_route_field.clone())
        } else {
            if tables.is_empty() {
                return Err(invalid(
                    "tables",
                    "no table given (list `namespace.table` names, or turn on dynamic_routing)",
                ));
            }
            None
        };
        let create = match &config.create_table {
            Some(spec) => Some(TableTemplate::from_spec(spec)?),
            None => None,
        };
        let commit_interval =
            parse_duration(&config.commit_interval).map_err(|r| invalid("commit_interval", r))?;
        if config.commit_rows == 0 {
            return Err(invalid("commit_rows", "must be at least 1"));
        }
        if config.target_file_size_mb == 0 {
            return Err(invalid("target_file_size_mb", "must be at least 1"));
        }
        Ok(Settings {
            catalog_name: config.catalog_name,
            catalog,
            props,
            secrets,
            tables,
            route_field,
            create,
            on_record_error: config.on_record_error,
            commit_interval,
            commit_rows: config.commit_rows,
            target_file_size: (config.target_file_size_mb as usize).saturating_mul(1 << 20),
            commit_retries_set: config.commit_retries.is_some(),
        })
    }

    /// Replaces every secret in `text` with `***`.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            out = out.replace(s.as_str(), "***");
        }
        out
    }

    /// The catalog, safe to print.
    pub fn catalog_description(&self) -> String {
        match &self.catalog {
            CatalogSettings::Sql { url, warehouse } => {
                format!("sql catalog {url} (warehouse {warehouse})")
            }
            CatalogSettings::Rest { uri, .. } => format!("rest catalog {uri}"),
        }
    }
}

impl TableTemplate {
    fn from_spec(spec: &CreateTableSpec) -> Result<TableTemplate, PluginError> {
        if spec.schema.is_empty() {
            return Err(invalid("create_table.schema", "lists no column"));
        }
        let mut fields = Vec::new();
        for (i, col) in spec.schema.iter().enumerate() {
            let at = format!("create_table.schema[{i}]");
            if col.name.trim().is_empty() {
                return Err(invalid(&format!("{at}.name"), "must not be empty"));
            }
            let ty: PrimitiveType = serde_json::from_value(serde_json::Value::String(
                col.type_name.trim().to_lowercase(),
            ))
            .map_err(|_| {
                invalid(
                    &format!("{at}.type"),
                    format!(
                        "`{}` is not an Iceberg primitive type (boolean, int, long, float, double, decimal(P,S), date, time, timestamp, timestamptz, string, binary)",
                        col.type_name
                    ),
                )
            })?;
            if matches!(ty, PrimitiveType::Uuid | PrimitiveType::Fixed(_)) {
                return Err(invalid(
                    &format!("{at}.type"),
                    format!(
                        "`{}` is not supported by this sink yet (use string or binary)",
                        col.type_name
                    ),
                ));
            }
            let id = i as i32 + 1;
            let field = if col.required {
                NestedField::required(id, col.name.clone(), Type::Primitive(ty))
            } else {
                NestedField::optional(id, col.name.clone(), Type::Primitive(ty))
            };
            fields.push(field.into());
        }
        let schema = IcebergSchema::builder()
            .with_schema_id(0)
            .with_fields(fields)
            .build()
            .map_err(|e| invalid("create_table.schema", e.message()))?;
        let mut builder = UnboundPartitionSpec::builder().with_spec_id(0);
        for (i, p) in spec.partition_by.iter().enumerate() {
            let at = format!("create_table.partition_by[{i}]");
            let source = schema.field_by_name(&p.column).ok_or_else(|| {
                invalid(
                    &format!("{at}.column"),
                    format!("`{}` is not a column of create_table.schema", p.column),
                )
            })?;
            let transform: Transform = p.transform.trim().parse().map_err(|_| {
                invalid(
                    &format!("{at}.transform"),
                    format!(
                        "`{}` is not a transform (identity, year, month, day, hour, bucket[N], truncate[W])",
                        p.transform
                    ),
                )
            })?;
            let name = p.name.clone().unwrap_or_else(|| match transform {
                Transform::Identity => p.column.clone(),
                other => {
                    let t = other.to_string();
                    let t = t.split('[').next().unwrap_or("part").to_string();
                    format!("{}_{t}", p.column)
                }
            });
            builder = builder
                .add_partition_field(source.id, name, transform)
                .map_err(|e| invalid(&at, e.message()))?;
        }
        let partition_spec = builder.build();
        // Bind once now so a bad transform/type pair fails before any I/O.
        partition_spec
            .clone()
            .bind(schema.clone())
            .map_err(|e| invalid("create_table.partition_by", e.message()))?;
        Ok(TableTemplate {
            schema,
            partition_spec,
            properties: spec.properties.clone(),
        })
    }
}

/// Parses `namespace.table` (nested namespaces: `a.b.table`).
pub fn parse_table(name: &str) -> Result<TableIdent, String> {
    let parts: Vec<&str> = name.trim().split('.').collect();
    if parts.len() < 2 || parts.iter().any(|p| p.trim().is_empty()) {
        return Err(format!(
            "`{name}` is not a table name (expected `namespace.table`)"
        ));
    }
    let (table, namespace) = parts.split_last().expect("two parts at least");
    let namespace = NamespaceIdent::from_strs(namespace.iter().map(|p| p.trim()))
        .map_err(|e| format!("`{name}`: {}", e.message()))?;
    Ok(TableIdent::new(namespace, table.trim().to_string()))
}

/// The table as `namespace.table`.
pub fn table_name(ident: &TableIdent) -> String {
    format!("{}.{}", ident.namespace().join("."), ident.name())
}

/// `sqlite:` URL for a path or URL; the file is created when missing.
fn sqlite_url(uri: &str) -> Result<String, String> {
    let uri = uri.trim();
    let path = if let Some(rest) = uri.strip_prefix("sqlite://") {
        rest
    } else if let Some(rest) = uri.strip_prefix("sqlite:") {
        rest
    } else if uri.contains("://") {
        return Err(format!(
            "`{uri}` is not a SQLite catalog file (give a path or a sqlite: URL; other databases are not supported)"
        ));
    } else {
        uri
    };
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    if path.is_empty() {
        return Err("names no file".to_string());
    }
    let query = match query {
        Some(q) if q.contains("mode=") => q.to_string(),
        Some(q) => format!("{q}&mode=rwc"),
        None => "mode=rwc".to_string(),
    };
    Ok(format!("sqlite://{path}?{query}"))
}

/// A warehouse location: URLs as given, a plain path made absolute `file://`... kept as
/// an absolute path (what iceberg's local storage expects).
fn warehouse_location(text: &str) -> Result<String, String> {
    let text = text.trim().trim_end_matches('/');
    if let Some(path) = text.strip_prefix("file://") {
        if !path.starts_with('/') {
            return Err(format!("`{text}`: a file:// URL needs an absolute path"));
        }
        return Ok(text.to_string());
    }
    if text.contains("://") {
        if text.starts_with("s3://") || text.starts_with("s3a://") {
            return Ok(text.to_string());
        }
        return Err(format!(
            "`{text}`: unsupported scheme (use a directory, file:// or s3://)"
        ));
    }
    let path = std::path::Path::new(text);
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| format!("cannot resolve the relative path `{text}`: {e}"))?
            .join(path)
    };
    Ok(format!("file://{}", abs.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: serde_json::Value) -> Result<Settings, PluginError> {
        let config: IcebergSinkConfig =
            serde_json::from_value(json).map_err(|e| PluginError::invalid_config(e.to_string()))?;
        Settings::from_config(config)
    }

    #[test]
    fn defaults_for_the_embedded_catalog() {
        let s = parse(serde_json::json!({
            "tables": ["shop.orders"], "uri": "/tmp/x/catalog.db", "warehouse": "/tmp/x/wh"
        }))
        .unwrap();
        assert_eq!(
            s.catalog,
            CatalogSettings::Sql {
                url: "sqlite:///tmp/x/catalog.db?mode=rwc".into(),
                warehouse: "file:///tmp/x/wh".into()
            }
        );
        assert_eq!(s.commit_interval, Duration::from_secs(10));
        assert_eq!(s.commit_rows, 100_000);
        assert_eq!(s.on_record_error, OnRecordError::Fail);
        assert_eq!(table_name(&s.tables[0]), "shop.orders");
        assert!(s.route_field.is_none());
    }

    #[test]
    fn commit_retries_still_loads_but_only_marks_itself_set() {
        let base = serde_json::json!({
            "tables": ["shop.orders"], "uri": "/tmp/x/catalog.db", "warehouse": "/tmp/x/wh"
        });
        assert!(!parse(base.clone()).unwrap().commit_retries_set);
        let mut old = base;
        old["commit_retries"] = 5.into();
        assert!(parse(old).unwrap().commit_retries_set);
    }

    #[test]
    fn iggy_field_names_are_accepted_with_their_meaning() {
        let s = parse(serde_json::json!({
            "tables": [""], "catalog_type": "rest", "warehouse": "warehouse",
            "uri": "http://localhost:8181", "dynamic_routing": true,
            "dynamic_route_field": "db_table", "store_url": "http://localhost:9000",
            "store_access_key_id": "admin", "store_secret_access_key": "password-xyz",
            "store_region": "us-east-1", "store_class": "s3"
        }))
        .unwrap();
        assert_eq!(
            s.catalog,
            CatalogSettings::Rest {
                uri: "http://localhost:8181".into(),
                warehouse: Some("warehouse".into())
            }
        );
        assert_eq!(s.route_field.as_deref(), Some("db_table"));
        assert!(s.tables.is_empty());
        assert_eq!(s.props["s3.endpoint"], "http://localhost:9000");
        assert_eq!(s.props["s3.access-key-id"], "admin");
        assert_eq!(s.props["s3.secret-access-key"], "password-xyz");
        assert_eq!(s.props["s3.region"], "us-east-1");
        assert_eq!(s.props["s3.path-style-access"], "true");
    }

    #[test]
    fn secrets_are_masked_in_debug_and_scrubbed_from_text() {
        let s = parse(serde_json::json!({
            "tables": ["a.b"], "catalog_type": "rest", "uri": "https://cat.example",
            "token": "tok-SECRET-1", "store_class": "s3",
            "store_access_key_id": "AKIA-SECRET", "store_secret_access_key": "sk-SECRET"
        }))
        .unwrap();
        let debug = format!("{s:?}");
        for secret in ["tok-SECRET-1", "AKIA-SECRET", "sk-SECRET"] {
            assert!(!debug.contains(secret), "{debug}");
            assert!(!s.scrub(&format!("failed with {secret}")).contains(secret));
        }
        let config: IcebergSinkConfig = serde_json::from_value(serde_json::json!({
            "credential": "id:hunter2"
        }))
        .unwrap();
        assert!(!format!("{:?}", config.credential).contains("hunter2"));
    }

    #[test]
    fn bad_configs_name_the_field() {
        let cases = [
            (
                serde_json::json!({"tables": ["orders"], "uri": "c.db", "warehouse": "w"}),
                "tables[0]",
            ),
            (
                serde_json::json!({"tables": [], "uri": "c.db", "warehouse": "w"}),
                "plugin_config.tables",
            ),
            (
                serde_json::json!({"tables": ["a.b"], "warehouse": "w"}),
                "plugin_config.uri",
            ),
            (
                serde_json::json!({"tables": ["a.b"], "uri": "c.db"}),
                "plugin_config.warehouse",
            ),
            (
                serde_json::json!({"tables": ["a.b"], "uri": "postgres://x/y", "warehouse": "w"}),
                "plugin_config.uri",
            ),
            (
                serde_json::json!({"tables": ["a.b"], "catalog_type": "glue", "uri": "x"}),
                "catalog_type",
            ),
            (
                serde_json::json!({"tables": ["a.b"], "uri": "c.db", "warehouse": "w", "store_class": "gcs"}),
                "store_class",
            ),
            (
                serde_json::json!({"tables": ["a.b"], "uri": "c.db", "warehouse": "w", "commit_interval": "soon"}),
                "commit_interval",
            ),
            (
                serde_json::json!({"dynamic_routing": true, "uri": "c.db", "warehouse": "w"}),
                "dynamic_route_field",
            ),
            (
                serde_json::json!({"tables": ["a.b"], "uri": "c.db", "warehouse": "w",
               "create_table": {"schema": [{"name": "id", "type": "longer"}]}}),
                "create_table.schema[0].type",
            ),
            (
                serde_json::json!({"tables": ["a.b"], "uri": "c.db", "warehouse": "w",
               "create_table": {"schema": [{"name": "id", "type": "long"}],
                                "partition_by": [{"column": "nope"}]}}),
                "create_table.partition_by[0].column",
            ),
        ];
        for (json, field) in cases {
            let err = match parse(json.clone()) {
                Ok(_) => panic!("accepted {json}"),
                Err(e) => e.to_string(),
            };
            assert!(err.contains(field), "{json}: {err}");
        }
    }

    #[test]
    fn create_table_spec_builds_schema_and_partitions() {
        let s = parse(serde_json::json!({
            "tables": ["a.b"], "uri": "c.db", "warehouse": "w",
            "create_table": {"schema": [
                {"name": "id", "type": "long", "required": true},
                {"name": "ts", "type": "timestamptz"},
                {"name": "amount", "type": "decimal(10, 2)"},
                {"name": "region", "type": "string"}],
              "partition_by": [{"column": "region"}, {"column": "ts", "transform": "day"},
                               {"column": "id", "transform": "bucket[8]"}]}
        }))
        .unwrap();
        let t = s.create.unwrap();
        assert_eq!(t.schema.as_struct().fields().len(), 4);
        assert!(t.schema.field_by_name("id").unwrap().required);
        let names: Vec<&str> = t
            .partition_spec
            .fields()
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(names, ["region", "ts_day", "id_bucket"]);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("5 days").is_err());
    }
}
