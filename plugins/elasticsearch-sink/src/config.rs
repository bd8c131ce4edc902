//! The sink's `plugin_config`, and the settings checked out of it before any I/O.
//!
//! The field names of Apache Iggy's elasticsearch sink (`url`, `index`, `username`,
//! `password`, `batch_size`, `timeout_seconds`, `create_index_if_not_exists`,
//! `index_mapping`) are accepted with the same meaning, so an Iggy `plugin_config` works
//! unchanged.

use std::{fmt, path::PathBuf, time::Duration};

use ld_plugin_api::{PluginError, Secret};
use reqwest::Url;
use serde_json::Value;

use crate::pattern::{FieldPath, IndexPattern};

/// `plugin_config` of the Elasticsearch / OpenSearch sink.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ElasticsearchSinkConfig {
    /// The cluster: one URL (`http://localhost:9200`) or a list of nodes, tried in turn
    /// when one cannot be reached. `http` or `https`; a path prefix (behind a proxy) is
    /// kept. Credentials in the URL (`https://user:pass@host`) are taken as
    /// `username`/`password` and never shown.
    pub url: Urls,
    /// The index to write into: a name (`orders`), or a pattern with placeholders:
    /// a date from the message timestamp (UTC) in braces with the tokens `yyyy`, `yy`,
    /// `MM`, `dd`, `HH`, `mm`, `ss` (`logs-{yyyy.MM.dd}`); `{field:NAME}`, a payload field
    /// (`NAME` may be a dotted path, `a.b`); `{stream}`, `{topic}`, `{partition}`.
    /// Filled-in values are lowercased.
    pub index: String,
    /// User for HTTP basic authentication (with `password`).
    #[serde(default)]
    pub username: Option<String>,
    /// Password for HTTP basic authentication. Secret: never logged or echoed.
    #[serde(default)]
    pub password: Option<Secret>,
    /// API key, either as the server returned it encoded (`base64(id:key)`) or as
    /// `id:key`; sent as `Authorization: ApiKey ...`. Secret: never logged or echoed.
    /// Not together with `username`/`password`.
    #[serde(default)]
    pub api_key: Option<Secret>,
    /// A PEM file of the CA certificate(s) to trust for `https` nodes, in addition to
    /// the usual public roots.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Accept any server certificate on `https` nodes (self-signed, wrong host name).
    /// Insecure: an explicit opt-in for test clusters only.
    #[serde(default)]
    pub tls_skip_verify: bool,
    /// Create the index when it does not exist (with `index_mapping`, when given).
    /// When false and the index named by `index` is missing, the instance fails at
    /// start.
    #[serde(default = "yes")]
    pub create_index_if_not_exists: bool,
    /// Body of the index creation: a JSON object with `mappings` and/or `settings`, or
    /// just the mappings (`{"properties": {...}}`). Used only when the sink creates the
    /// index.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Map<String, Value>>")]
    pub index_mapping: Option<Value>,
    /// The `_id` of each document: `offset` (default: derived from stream, topic,
    /// partition and offset, so a redelivered batch overwrites instead of
    /// duplicating), `message_id` (the message's 128-bit id), `{field:NAME}` (a payload
    /// field) or `none` (the server picks one: a redelivered batch then duplicates).
    #[serde(default = "offset")]
    pub document_id: String,
    /// The bulk action: `index` (create or overwrite) or `create` (only if absent; a
    /// document that already exists counts as stored). Data streams need `create`.
    #[serde(default)]
    pub op_type: OpType,
    /// An ingest pipeline every document goes through; checked at start.
    #[serde(default)]
    pub pipeline: Option<String>,
    /// A payload field (dotted path allowed) whose value is the document's shard
    /// routing; a document without it is a document error.
    #[serde(default)]
    pub routing: Option<String>,
    /// Most documents in one `_bulk` request (default 1000); a larger batch is split.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub max_bulk_docs: Option<u32>,
    /// Same as `max_bulk_docs` (Iggy's name); set only one of the two.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub batch_size: Option<u32>,
    /// Most bytes of NDJSON in one `_bulk` request (default 5242880, 5 MiB); a larger
    /// batch is split. A single bigger document is still sent alone.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub max_bulk_bytes: Option<u64>,
    /// Longest wait for one HTTP request, as a duration (`"30s"`, `"500ms"`, `"2m"`);
    /// default 30 s.
    #[serde(default)]
    pub timeout: Option<String>,
    /// Same as `timeout`, in whole seconds (Iggy's name); set only one of the two.
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
    /// How long the documents of a partly stored batch that the server refused for now
    /// (429, 5xx, unreachable nodes) keep being sent again inside the sink before the
    /// batch goes back to the host as a transient error; default `"20s"`. (A batch of
    /// which nothing is stored goes back at once: the host retries whole batches.) Keep
    /// `timeout + retry_timeout` below the daemon's call timeout (60 s).
    #[serde(default = "twenty_seconds")]
    pub retry_timeout: String,
    /// What a document the server refuses for its content (mapping or parse error,
    /// any other 4xx item error) does: `fail` (default: the instance stops with the
    /// offset and the server's reason), `skip` (logged with the reason and counted;
    /// the batch is committed) or `dead_letter` (reported to the host as rejected: with
    /// the instance's `errors.tolerance = "all"` it goes to the dead-letter topic with
    /// the server's reason, and the batch is committed).
    #[serde(default)]
    pub on_document_error: OnDocumentError,
    /// A payload that is not a JSON object: `wrap` (default) stores it as
    /// `{"payload": <JSON value or text>}`, or `{"payload_base64": "..."}` when it is
    /// not UTF-8; `reject` makes it a document error (see `on_document_error`).
    #[serde(default)]
    pub non_object_payloads: NonObjectPayloads,
}

fn yes() -> bool {
    true
}

fn offset() -> String {
    "offset".to_string()
}

fn twenty_seconds() -> String {
    "20s".to_string()
}

/// One node URL or several.
#[derive(serde::Deserialize, schemars::JsonSchema, Clone)]
#[serde(untagged)]
pub enum Urls {
    /// One node.
    One(String),
    /// Several nodes, tried in turn.
    Many(Vec<String>),
}

impl fmt::Debug for ElasticsearchSinkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let urls = match &self.url {
            Urls::One(u) => vec![mask_url(u)],
            Urls::Many(list) => list.iter().map(|u| mask_url(u)).collect(),
        };
        f.debug_struct("ElasticsearchSinkConfig")
            .field("url", &urls)
            .field("index", &self.index)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("api_key", &self.api_key)
            .field("document_id", &self.document_id)
            .field("op_type", &self.op_type)
            .field("on_document_error", &self.on_document_error)
            .finish_non_exhaustive()
    }
}

/// The bulk action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    /// Create or overwrite.
    #[default]
    Index,
    /// Create only; an existing document counts as stored.
    Create,
}

impl OpType {
    /// The action name in the bulk body.
    pub fn as_str(self) -> &'static str {
        match self {
            OpType::Index => "index",
            OpType::Create => "create",
        }
    }
}

/// What a document the server refuses for its content does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnDocumentError {
    /// Stop the instance naming the offset and the reason.
    #[default]
    Fail,
    /// Log, count and go on.
    Skip,
    /// Hand it back to the host as rejected: the instance's `errors` setting decides
    /// (its dead-letter topic with `tolerance = "all"`, failing otherwise).
    #[serde(rename = "dead_letter")]
    DeadLetter,
}

/// What a payload that is not a JSON object becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NonObjectPayloads {
    /// `{"payload": ...}` or `{"payload_base64": "..."}`.
    #[default]
    Wrap,
    /// A document error.
    Reject,
}

/// How each document's `_id` is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentId {
    /// `stream/topic/partition/offset`.
    Offset,
    /// The message id as a UUID.
    MessageId,
    /// A payload field.
    Field(FieldPath),
    /// None: the server assigns one.
    None,
}

impl DocumentId {
    /// Parses `offset`, `message_id`, `{field:NAME}` or `none`.
    pub fn parse(text: &str) -> Result<DocumentId, String> {
        match text.trim() {
            "offset" => Ok(DocumentId::Offset),
            "message_id" => Ok(DocumentId::MessageId),
            "none" => Ok(DocumentId::None),
            other => match other
                .strip_prefix("{field:")
                .and_then(|rest| rest.strip_suffix('}'))
            {
                Some(name) => FieldPath::parse(name).map(DocumentId::Field),
                None => Err(format!(
                    "`{other}` is not a document id choice (expected offset, message_id, {{field:NAME}} or none)"
                )),
            },
        }
    }
}

/// How the sink authenticates.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// No credentials.
    None,
    /// HTTP basic.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: Secret,
    },
    /// `Authorization: ApiKey <encoded>`.
    ApiKey(Secret),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Basic { username, .. } => write!(f, "Basic({username}:***)"),
            Auth::ApiKey(_) => f.write_str("ApiKey(***)"),
        }
    }
}

impl Auth {
    /// The `Authorization` header value, if any.
    pub fn header(&self) -> Option<String> {
        match self {
            Auth::None => None,
            Auth::Basic { username, password } => Some(format!(
                "Basic {}",
                base64(format!("{username}:{}", password.expose()).as_bytes())
            )),
            Auth::ApiKey(key) => Some(format!("ApiKey {}", key.expose())),
        }
    }
}

/// One node of the cluster: its base URL (no credentials, no trailing slash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// `http://host:9200` or `https://host/prefix`.
    pub base: String,
}

/// Everything the sink needs from its config, checked.
pub struct Settings {
    /// Nodes, tried in turn.
    pub nodes: Vec<Node>,
    /// Where documents go.
    pub index: IndexPattern,
    /// Credentials.
    pub auth: Auth,
    /// Extra CA certificates.
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate.
    pub tls_skip_verify: bool,
    /// Create missing indices.
    pub create_index: bool,
    /// Body of the index creation request.
    pub create_body: Value,
    /// Document ids.
    pub document_id: DocumentId,
    /// Bulk action.
    pub op_type: OpType,
    /// Ingest pipeline.
    pub pipeline: Option<String>,
    /// Routing field.
    pub routing: Option<FieldPath>,
    /// Most documents per request.
    pub max_bulk_docs: usize,
    /// Most bytes per request.
    pub max_bulk_bytes: usize,
    /// One request's timeout.
    pub timeout: Duration,
    /// How long a batch is retried inside the sink.
    pub retry_timeout: Duration,
    /// Content errors.
    pub on_document_error: OnDocumentError,
    /// Non-object payloads.
    pub non_object: NonObjectPayloads,
    /// Texts that must never be shown (passwords, keys and their encodings).
    secrets: Vec<String>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("nodes", &self.nodes)
            .field("index", &self.index.text())
            .field("auth", &self.auth)
            .field("document_id", &self.document_id)
            .field("op_type", &self.op_type)
            .field("max_bulk_docs", &self.max_bulk_docs)
            .field("max_bulk_bytes", &self.max_bulk_bytes)
            .finish_non_exhaustive()
    }
}

/// Default most documents per `_bulk` request.
pub const DEFAULT_BULK_DOCS: usize = 1000;
/// Default most bytes per `_bulk` request.
pub const DEFAULT_BULK_BYTES: usize = 5 * 1024 * 1024;
/// Default request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

impl Settings {
    /// Checks a config; no I/O.
    pub fn from_config(config: ElasticsearchSinkConfig) -> Result<Settings, PluginError> {
        let invalid = |field: &str, reason: String| {
            PluginError::invalid_config(format!("plugin_config.{field}: {reason}"))
        };
        let mut secrets = Vec::new();
        let mut url_user: Option<(String, Option<Secret>)> = None;
        let urls = match config.url {
            Urls::One(u) => vec![u],
            Urls::Many(list) => list,
        };
        if urls.is_empty() {
            return Err(invalid(
                "url",
                "names no node (expected \"http://host:9200\" or a list of them)".to_string(),
            ));
        }
        let mut nodes = Vec::with_capacity(urls.len());
        for text in &urls {
            let (node, creds) = parse_node(text).map_err(|r| invalid("url", r))?;
            if let Some((_, Some(p))) = &creds {
                secrets.push(p.expose().to_string());
            }
            if url_user.is_none() {
                url_user = creds;
            }
            nodes.push(node);
        }

        let index = IndexPattern::parse(&config.index).map_err(|r| invalid("index", r))?;

        let password = config.password.filter(|p| !p.expose().is_empty());
        let api_key = config.api_key.filter(|k| !k.expose().is_empty());
        let username = config.username.filter(|u| !u.is_empty());
        if let Some(p) = &password {
            secrets.push(p.expose().to_string());
        }
        let auth = match (username, password, api_key) {
            (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
                return Err(invalid(
                    "api_key",
                    "set either api_key or username/password, not both".to_string(),
                ))
            }
            (None, None, Some(key)) => {
                let raw = key.expose().trim().to_string();
                secrets.push(raw.clone());
                let encoded = if raw.contains(':') {
                    let e = base64(raw.as_bytes());
                    secrets.push(e.clone());
                    e
                } else {
                    raw
                };
                Auth::ApiKey(Secret::new(encoded))
            }
            (Some(username), password, None) => Auth::Basic {
                username,
                password: password.unwrap_or_default(),
            },
            (None, Some(_), None) => {
                return Err(invalid(
                    "password",
                    "is set without username (set both for basic authentication)".to_string(),
                ))
            }
            (None, None, None) => match url_user {
                Some((username, password)) => Auth::Basic {
                    username,
                    password: password.unwrap_or_default(),
                },
                None => Auth::None,
            },
        };
        if let Auth::Basic { username, password } = &auth {
            if !password.expose().is_empty() {
                secrets.push(base64(
                    format!("{username}:{}", password.expose()).as_bytes(),
                ));
            }
        }

        let create_body = match config.index_mapping {
            None => Value::Object(Default::default()),
            Some(Value::Object(map)) => {
                if map.contains_key("mappings")
                    || map.contains_key("settings")
                    || map.contains_key("aliases")
                {
                    Value::Object(map)
                } else {
                    serde_json::json!({ "mappings": map })
                }
            }
            Some(_) => {
                return Err(invalid(
                    "index_mapping",
                    "must be a JSON object ({\"mappings\": {...}} or {\"properties\": {...}})"
                        .to_string(),
                ))
            }
        };

        let document_id =
            DocumentId::parse(&config.document_id).map_err(|r| invalid("document_id", r))?;
        let routing = config
            .routing
            .as_deref()
            .map(FieldPath::parse)
            .transpose()
            .map_err(|r| invalid("routing", r))?;
        let pipeline = config.pipeline.filter(|p| !p.trim().is_empty());

        let max_bulk_docs = match (config.max_bulk_docs, config.batch_size) {
            (Some(a), Some(b)) if a != b => {
                return Err(invalid(
                    "batch_size",
                    "is the same as max_bulk_docs: set only one of them".to_string(),
                ))
            }
            (Some(n), _) | (None, Some(n)) => n as usize,
            (None, None) => DEFAULT_BULK_DOCS,
        };
        if max_bulk_docs == 0 {
            return Err(invalid("max_bulk_docs", "must be at least 1".to_string()));
        }
        let max_bulk_bytes = match config.max_bulk_bytes {
            Some(0) => return Err(invalid("max_bulk_bytes", "must be at least 1".to_string())),
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
            None => DEFAULT_BULK_BYTES,
        };
        let timeout = match (&config.timeout, config.timeout_seconds) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "timeout_seconds",
                    "is the same as timeout: set only one of them".to_string(),
                ))
            }
            (Some(text), None) => parse_duration(text).map_err(|r| invalid("timeout", r))?,
            (None, Some(secs)) => Duration::from_secs(secs),
            (None, None) => DEFAULT_TIMEOUT,
        };
        if timeout.is_zero() {
            return Err(invalid("timeout", "must be more than 0".to_string()));
        }
        let retry_timeout =
            parse_duration(&config.retry_timeout).map_err(|r| invalid("retry_timeout", r))?;
        secrets.retain(|s| !s.is_empty());
        Ok(Settings {
            nodes,
            index,
            auth,
            ca_file: config.ca_file.map(PathBuf::from),
            tls_skip_verify: config.tls_skip_verify,
            create_index: config.create_index_if_not_exists,
            create_body,
            document_id,
            op_type: config.op_type,
            pipeline,
            routing,
            max_bulk_docs,
            max_bulk_bytes,
            timeout,
            retry_timeout,
            on_document_error: config.on_document_error,
            non_object: config.non_object_payloads,
            secrets,
        })
    }

    /// Replaces every secret in `text` with `***`.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "***");
            }
        }
        out
    }

    /// Whether payloads must be parsed (a field is read for the index, id or routing).
    pub fn reads_fields(&self) -> bool {
        self.index.reads_fields()
            || matches!(self.document_id, DocumentId::Field(_))
            || self.routing.is_some()
    }
}

pub use ld_plugin_api::parse_duration;

/// Checks one node URL; returns the node and any credentials it carried.
#[allow(clippy::type_complexity)]
fn parse_node(text: &str) -> Result<(Node, Option<(String, Option<Secret>)>), String> {
    let shown = mask_url(text);
    let url = Url::parse(text.trim()).map_err(|e| {
        format!("`{shown}` is not a URL ({e}); expected e.g. \"http://localhost:9200\"")
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "`{shown}` has scheme `{}`; expected http or https (e.g. \"http://localhost:9200\")",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{shown}` names no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "`{shown}` has a query or fragment; give the node's base URL only"
        ));
    }
    let creds = if url.username().is_empty() {
        None
    } else {
        Some((
            percent_decode(url.username()),
            url.password().map(|p| Secret::new(percent_decode(p))),
        ))
    };
    let mut clean = url.clone();
    let _ = clean.set_username("");
    let _ = clean.set_password(None);
    let base = clean.as_str().trim_end_matches('/').to_string();
    Ok((Node { base }, creds))
}

/// A URL with any password replaced by `***`, for messages.
pub fn mask_url(text: &str) -> String {
    match Url::parse(text.trim()) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("***"));
            }
            url.to_string()
        }
        // Not a URL: hide whatever may be credentials, before the last `@`.
        Err(_) => match text.rfind('@') {
            Some(at) => {
                let start = text
                    .find("//")
                    .map(|p| p + 2)
                    .filter(|&p| p <= at)
                    .unwrap_or(0);
                format!("{}***{}", &text[..start], &text[at..])
            }
            None => text.to_string(),
        },
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(ALPHABET[(n >> 18) as usize & 63] as char);
        out.push(ALPHABET[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            ALPHABET[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            ALPHABET[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: serde_json::Value) -> Result<Settings, PluginError> {
        let config: ElasticsearchSinkConfig =
            serde_json::from_value(json).map_err(PluginError::invalid_config)?;
        Settings::from_config(config)
    }

    #[test]
    fn defaults() {
        let s =
            parse(serde_json::json!({"url": "http://localhost:9200/", "index": "orders"})).unwrap();
        assert_eq!(s.nodes[0].base, "http://localhost:9200");
        assert_eq!(s.index.fixed(), Some("orders"));
        assert_eq!(s.document_id, DocumentId::Offset);
        assert_eq!(s.op_type, OpType::Index);
        assert_eq!(s.max_bulk_docs, DEFAULT_BULK_DOCS);
        assert_eq!(s.max_bulk_bytes, DEFAULT_BULK_BYTES);
        assert_eq!(s.timeout, DEFAULT_TIMEOUT);
        assert_eq!(s.retry_timeout, Duration::from_secs(20));
        assert!(s.create_index, "Iggy's default: create the index");
        assert_eq!(s.on_document_error, OnDocumentError::Fail);
        assert_eq!(s.auth, Auth::None);
        assert!(!s.reads_fields());
    }

    #[test]
    fn iggy_field_names_work_unchanged() {
        // The plugin_config of Iggy's sample config.toml, plus credentials and mapping.
        let s = parse(serde_json::json!({
            "url": "http://localhost:9200",
            "index": "iggy_messages",
            "username": "elastic",
            "password": "changeme",
            "create_index_if_not_exists": true,
            "batch_size": 100,
            "timeout_seconds": 30,
            "index_mapping": {"mappings": {"properties": {"n": {"type": "integer"}}}}
        }))
        .unwrap();
        assert_eq!(s.max_bulk_docs, 100);
        assert_eq!(s.timeout, Duration::from_secs(30));
        assert_eq!(
            s.create_body["mappings"]["properties"]["n"]["type"],
            "integer"
        );
        assert_eq!(
            s.auth.header().unwrap(),
            format!("Basic {}", base64(b"elastic:changeme"))
        );
        // Bare mappings are wrapped.
        let s = parse(serde_json::json!({"url": "http://h:9200", "index": "x",
            "index_mapping": {"properties": {"n": {"type": "integer"}}}}))
        .unwrap();
        assert_eq!(
            s.create_body["mappings"]["properties"]["n"]["type"],
            "integer"
        );
    }

    #[test]
    fn all_fields() {
        let s = parse(serde_json::json!({
            "url": ["http://a:9200", "https://b:9243/es"],
            "index": "logs-{yyyy.MM.dd}",
            "api_key": "id1:key1",
            "ca_file": "/etc/ca.pem",
            "tls_skip_verify": true,
            "create_index_if_not_exists": false,
            "document_id": "{field:order.id}",
            "op_type": "create",
            "pipeline": "enrich",
            "routing": "tenant",
            "max_bulk_docs": 500,
            "max_bulk_bytes": 1000000,
            "timeout": "2s",
            "retry_timeout": "5s",
            "on_document_error": "skip",
            "non_object_payloads": "reject"
        }))
        .unwrap();
        assert_eq!(s.nodes.len(), 2);
        assert_eq!(s.nodes[1].base, "https://b:9243/es");
        assert_eq!(
            s.auth.header().unwrap(),
            format!("ApiKey {}", base64(b"id1:key1"))
        );
        assert_eq!(s.op_type, OpType::Create);
        assert_eq!(s.max_bulk_docs, 500);
        assert_eq!(s.max_bulk_bytes, 1_000_000);
        assert_eq!(s.timeout, Duration::from_secs(2));
        assert_eq!(s.on_document_error, OnDocumentError::Skip);
        assert_eq!(s.non_object, NonObjectPayloads::Reject);
        assert!(s.reads_fields());
        assert!(s.tls_skip_verify && !s.create_index);
        assert_eq!(s.pipeline.as_deref(), Some("enrich"));
    }

    #[test]
    fn bad_configs_name_the_field() {
        let cases = [
            (
                serde_json::json!({"url": "localhost:9200", "index": "x"}),
                "plugin_config.url",
            ),
            (
                serde_json::json!({"url": "ftp://h", "index": "x"}),
                "plugin_config.url",
            ),
            (
                serde_json::json!({"url": "not a url", "index": "x"}),
                "plugin_config.url",
            ),
            (
                serde_json::json!({"url": [], "index": "x"}),
                "plugin_config.url",
            ),
            (
                serde_json::json!({"url": "http://h", "index": "Orders"}),
                "plugin_config.index",
            ),
            (
                serde_json::json!({"url": "http://h", "index": "a-{qq}"}),
                "plugin_config.index",
            ),
            (
                serde_json::json!({"url": "http://h", "index": "x", "document_id": "uuid"}),
                "plugin_config.document_id",
            ),
            (
                serde_json::json!({"url": "http://h", "index": "x", "timeout": "soon"}),
                "plugin_config.timeout",
            ),
            (
                serde_json::json!({"url": "http://h", "index": "x", "timeout": "1s", "timeout_seconds": 3}),
                "plugin_config.timeout_seconds",
            ),
            (
                serde_json::json!({"url": "http://h", "index": "x", "max_bulk_docs": 5, "batch_size": 3}),
                "plugin_config.batch_size",
            ),
            (
                serde_json::json!({"url": "http://h", "index": "x", "max_bulk_docs": 0}),
                "plugin_config.max_bulk_docs",
            ),
            (
                serde_json::json!({"url": "http://h", "index": "x", "password": "p"}),
                "plugin_config.password",
            ),
            (
                serde_json::json!({"url": "http://h", "index": "x", "username": "u", "api_key": "k"}),
                "plugin_config.api_key",
            ),
            (
                serde_json::json!({"url": "http://h", "index": "x", "index_mapping": [1]}),
                "plugin_config.index_mapping",
            ),
        ];
        for (json, field) in cases {
            let err = parse(json.clone())
                .err()
                .unwrap_or_else(|| panic!("{json} accepted"));
            assert_eq!(err.kind(), ld_plugin_api::ErrorKind::InvalidConfig);
            assert!(err.message().contains(field), "{json}: {}", err.message());
        }
        // Unknown fields are refused by serde.
        let err = serde_json::from_value::<ElasticsearchSinkConfig>(
            serde_json::json!({"url": "http://h", "index": "x", "hosts": "y"}),
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("hosts"), "{err}");
    }

    #[test]
    fn secrets_never_show() {
        let json = serde_json::json!({"url": "http://u:urlsecret9@h:9200", "index": "x",
                                      "username": "elastic", "password": "hunter2-secret"});
        let config: ElasticsearchSinkConfig = serde_json::from_value(json).unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2-secret"), "{debug}");
        assert!(!debug.contains("urlsecret9"), "{debug}");
        let s = Settings::from_config(config).unwrap();
        let debug = format!("{s:?}");
        assert!(
            !debug.contains("hunter2-secret") && !debug.contains("urlsecret9"),
            "{debug}"
        );
        assert_eq!(
            s.nodes[0].base, "http://h:9200",
            "credentials are not in the base URL"
        );
        let header = s.auth.header().unwrap();
        let text = format!("password hunter2-secret, header {header}, url urlsecret9");
        let scrubbed = s.scrub(&text);
        assert!(!scrubbed.contains("hunter2-secret"), "{scrubbed}");
        assert!(!scrubbed.contains(&header[6..]), "{scrubbed}");
        assert!(!scrubbed.contains("urlsecret9"), "{scrubbed}");

        let key: ElasticsearchSinkConfig = serde_json::from_value(
            serde_json::json!({"url": "http://h", "index": "x", "api_key": "c2VjcmV0a2V5"}),
        )
        .unwrap();
        assert!(!format!("{key:?}").contains("c2VjcmV0a2V5"));
        let s = Settings::from_config(key).unwrap();
        assert!(!format!("{s:?}").contains("c2VjcmV0a2V5"));
        assert_eq!(s.scrub("key c2VjcmV0a2V5"), "key ***");
        // A bad URL with a password is not echoed either.
        let err = parse(serde_json::json!({"url": "http//u:pw-in-url@h", "index": "x"}))
            .err()
            .unwrap();
        assert!(!err.message().contains("pw-in-url"), "{}", err.message());
    }

    #[test]
    fn url_credentials_become_basic_auth() {
        let s =
            parse(serde_json::json!({"url": "https://admin:p%40ss@h:9200", "index": "x"})).unwrap();
        assert_eq!(
            s.auth.header().unwrap(),
            format!("Basic {}", base64(b"admin:p@ss"))
        );
    }

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(&[0xff, 0xfe]), "//4=");
    }

    #[test]
    fn the_schema_lists_every_field() {
        let schema = serde_json::to_value(schemars::schema_for!(ElasticsearchSinkConfig)).unwrap();
        let props = schema["properties"].as_object().unwrap();
        for field in [
            "url",
            "index",
            "username",
            "password",
            "api_key",
            "ca_file",
            "tls_skip_verify",
            "create_index_if_not_exists",
            "index_mapping",
            "document_id",
            "op_type",
            "pipeline",
            "routing",
            "max_bulk_docs",
            "batch_size",
            "max_bulk_bytes",
            "timeout",
            "timeout_seconds",
            "retry_timeout",
            "on_document_error",
            "non_object_payloads",
        ] {
            let p = &props[field];
            assert!(!p.is_null(), "{field} missing from the schema");
        }
        assert_eq!(schema["additionalProperties"], false);
        // Secrets are marked, so the control plane masks them in its answers.
        for field in ["password", "api_key"] {
            let text = props[field].to_string();
            assert!(
                text.contains(ld_plugin_api::ffi::SECRET_MARKER),
                "{field}: {text}"
            );
        }
    }
}
