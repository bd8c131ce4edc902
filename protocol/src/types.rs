//! Wire types of the Main API and the Supervisor API.
//!
//! These are the JSON shapes on the wire: the supervisor serializes them and every client
//! (the daemon, standalone mode, the tests) parses the same structs. Fields marked
//! *extension* are ours, not the seed's; `docs/supervisor-openapi.yaml` documents all of
//! them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Name of the header that carries the API key on every call.
pub const API_KEY_HEADER: &str = "ld-api-key";

/// Media type of an RFC 7807 problem document, the body of every error answer.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Largest `wait` (seconds) honoured on a long poll; larger values are capped.
pub const MAX_WAIT_SECS: u64 = 60;

/// Whether a connector reads an external system (`source`) or writes into one (`sink`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectorType {
    /// Reads an external system and produces messages into a stream.
    Source,
    /// Consumes a stream and writes into an external system.
    Sink,
}

impl ConnectorType {
    /// The lowercase wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorType::Source => "source",
            ConnectorType::Sink => "sink",
        }
    }
}

impl fmt::Display for ConnectorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, not `write_str`: tables print it with a width (`{:<7}`).
        f.pad(self.as_str())
    }
}

impl FromStr for ConnectorType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "source" => Ok(ConnectorType::Source),
            "sink" => Ok(ConnectorType::Sink),
            other => Err(format!(
                "`{other}` is not a connector type (use source or sink)"
            )),
        }
    }
}

/// Status of an instance, as the supervisor shows it and as a node reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceStatus {
    /// Not yet running the current config version on every live node.
    Pending,
    /// Running the current config version on every live node.
    Active,
    /// Stopped by a user, or its config has `enabled=false`.
    Inactive,
    /// A node gave up on it; `reason` says why.
    Failed,
}

impl InstanceStatus {
    /// The lowercase wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceStatus::Pending => "pending",
            InstanceStatus::Active => "active",
            InstanceStatus::Inactive => "inactive",
            InstanceStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for InstanceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of the connector catalog (`GET .../connectors`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogItem {
    /// Connector identifier, e.g. `postgres`.
    pub key: String,
    /// `source` or `sink`.
    #[serde(rename = "type")]
    pub connector_type: ConnectorType,
    /// Human-readable name.
    pub name: String,
    /// What the connector does.
    pub description: String,
    /// True when a live node of the deployment has the plugin installed.
    pub available: bool,
    /// True when the calling key may activate it (has `deployment:connector:manage`).
    pub permitted: bool,
}

/// One page of the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogPage {
    /// The page returned, from 1.
    pub page: u64,
    /// Number of pages at the requested page size (0 when there are no results).
    pub total_pages: u64,
    /// Number of entries matching the filter, over all pages.
    pub total_results: u64,
    /// The entries of this page.
    pub items: Vec<CatalogItem>,
}

/// Body of `POST .../connectors/activate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivateRequest {
    /// Connector identifier, e.g. `postgres`; must be in the catalog.
    pub connector_key: String,
    /// `source` or `sink`.
    pub connector_type: ConnectorType,
    /// Human-readable name; defaults to the connector's catalog name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_name: Option<String>,
    /// Unique key within the deployment; generated (`postgres-sink`, `postgres-sink-2`, ...)
    /// when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_key: Option<String>,
    /// *Extension:* the instance config, stored as version 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
}

/// *Extension:* a versioned instance config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceConfig {
    /// Starts at 1 and grows by one with every stored config.
    pub version: u64,
    /// The config itself (`enabled`, `streams`, `plugin_config`, `transforms`).
    pub values: serde_json::Value,
}

/// One item of `GET /deployments/{dep}/connectors/instances`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceItem {
    /// Instance id, unique across the supervisor.
    pub id: u64,
    /// The deployment the instance belongs to.
    pub deployment_id: u64,
    /// `source` or `sink`.
    pub connector_type: ConnectorType,
    /// Connector identifier.
    pub connector_key: String,
    /// Human-readable name.
    pub name: String,
    /// Unique key within the deployment.
    pub key: String,
    /// Aggregated status over the deployment's live nodes.
    pub status: InstanceStatus,
    /// *Extension:* why the instance failed (`failed`), or why a node does not run it
    /// yet (`pending`: e.g. waiting for a config, or the failure it is retrying).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// *Extension:* the current config.
    pub config: InstanceConfig,
    /// *Extension:* where the instance runs: the nodes it is assigned to, each with its
    /// status there (a source has one node, a sink every live node or as many as its
    /// config's `placement.nodes` asks). Empty while no live node can take it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodePlacement>,
    /// *Extension:* a source's lease: the one node that may run it, and the epoch that
    /// grows each time the source moves to another node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseRef>,
    /// *Extension:* how many restarts were asked for (`POST .../restart`): each one
    /// restarts the instance on its nodes, a failed one included.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub restarts: u64,
    /// *Extension:* what the instance did lately, from its nodes' heartbeats (in users'
    /// lists only, not in a node's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity: Option<InstanceActivity>,
    /// *Extension:* a change of offsets or state for the nodes to apply before the
    /// instance's next start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offsets_request: Option<OffsetsRequest>,
}

/// *Extension:* a short summary of an instance's recent work, over its live nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceActivity {
    /// Messages delivered in about the last minute: since the node's last heartbeat at
    /// least a minute old (or since the supervisor first heard of the instance, when
    /// that is less than a minute ago).
    pub messages_last_minute: u64,
    /// A sink's lag: messages after what it has read, summed over its nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<u64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl SourceCheckpoint {
    /// A checkpoint of `state` saved by `node_id` under lease `epoch`, at `at`.
    pub fn new(node_id: impl Into<String>, epoch: u64, state: &[u8], at: u64) -> Self {
        use base64::Engine;
        SourceCheckpoint {
            node_id: node_id.into(),
            epoch,
            state: base64::engine::general_purpose::STANDARD.encode(state),
            at,
        }
    }

    /// The plugin's state bytes; an error names what is wrong with the encoding.
    pub fn state_bytes(&self) -> Result<Vec<u8>, String> {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(&self.state)
            .map_err(|e| format!("state is not base64: {e}"))
    }
}

/// *Extension:* one node an instance is assigned to, and how it runs there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePlacement {
    /// The node.
    pub node_id: String,
    /// Its status on that node; absent until the node reports one for the current config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<InstanceStatus>,
    /// Why, when the node gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// False when the node's heartbeat expired (a source then moves once its lease ends).
    pub live: bool,
}

/// *Extension:* who holds a source's lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRef {
    /// The node that may run the source.
    pub node_id: String,
    /// Grows by one each time the source is given to a node after another's lease ended.
    pub epoch: u64,
}

/// *Extension:* a lease as a heartbeat's answer renews it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseGrant {
    /// The source instance.
    pub instance_id: u64,
    /// The lease's epoch.
    pub epoch: u64,
    /// How long the lease holds, counted by the node from when it SENT the heartbeat
    /// (so the node's deadline is never later than the supervisor's). The node must
    /// stop the source before then unless a later heartbeat renews it.
    pub valid_for_ms: u64,
    /// No other live node could take the source over: while its checkpoints cannot be
    /// shared (the supervisor is away) the node may go on producing. Otherwise it waits
    /// until the last batch's checkpoint is shared, so a node taking over produces at
    /// most one batch again.
    #[serde(default)]
    pub sole: bool,
}

/// *Extension:* a source's checkpoint as shared between nodes (`.../checkpoint`): the
/// node that takes the source over resumes from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceCheckpoint {
    /// The node that saved it.
    pub node_id: String,
    /// The lease epoch it was saved under; a save with another epoch than the current
    /// lease's is refused (409 `fenced`), so a node that lost the source cannot move the
    /// checkpoint.
    pub epoch: u64,
    /// The plugin's state, as the plugin saved it, base64 (standard alphabet, padded).
    pub state: String,
    /// When the node saved it, milliseconds since the Unix epoch (node clock).
    pub at: u64,
}

/// *Extension:* body of `PUT .../instances/{id}/status`, one node's view of one instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The reporting node.
    pub node_id: String,
    /// The instance's status on that node.
    pub status: InstanceStatus,
    /// Why, when `failed` (or any free text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The config version the node is running.
    pub config_version: u64,
    /// When the node observed this status, milliseconds since the Unix epoch. Reports older
    /// than the one stored are ignored, so retries and reordering are harmless.
    pub at: u64,
}

/// *Extension:* one plugin installed on a node, as reported in a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginInfo {
    /// Connector identifier, e.g. `postgres`.
    pub key: String,
    /// `source` or `sink`.
    #[serde(rename = "type")]
    pub connector_type: ConnectorType,
    /// Human-readable name.
    pub name: String,
    /// What the plugin does.
    #[serde(default)]
    pub description: String,
    /// Plugin version.
    #[serde(default)]
    pub version: String,
    /// The secret fields of the plugin's config: JSON Pointers into `plugin_config`
    /// (`/password`, `/store/secret_access_key`; `*` matches every array item or member),
    /// from the fields its JSON Schema marks `"writeOnly": true, "x-ld-secret": true`.
    /// The supervisor never shows their values except to nodes (`reveal_secrets=true`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_fields: Vec<String>,
}

/// *Extension:* one instance's local status inside a heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalInstanceStatus {
    /// Instance id.
    pub instance_id: u64,
    /// Status on the node.
    pub status: InstanceStatus,
    /// Why, when `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The config version the node is running.
    pub config_version: u64,
    /// *Extension:* messages the instance delivered on this node since it started
    /// there (a counter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<u64>,
    /// *Extension:* a sink's lag on this node: messages after what it has read, over
    /// the partitions it reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<u64>,
    /// *Extension:* a sink's progress on each partition it reads on this node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<PartitionOffsets>,
    /// *Extension:* a source's saved state on this node (base64 of the plugin's bytes),
    /// when it has one and it is at most [`MAX_REPORTED_STATE`] bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_state: Option<String>,
    /// *Extension:* the generation of the last offsets change this node applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offsets_applied: Option<u64>,
}

/// A source's state bytes as the protocol carries them (standard base64).
pub fn state_to_base64(state: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(state)
}

/// The largest source state a node reports with its heartbeats, in bytes.
pub const MAX_REPORTED_STATE: usize = 16 * 1024;

/// *Extension:* a sink's progress on one partition, as its node reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionOffsets {
    /// Stream name.
    pub stream: String,
    /// Topic name.
    pub topic: String,
    /// Partition id.
    pub partition: u32,
    /// The next offset committed for the sink's group: where a restart reads from
    /// (absent until the sink committed on this node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committed: Option<u64>,
    /// The partition's end as last seen (the offset of the next message appended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<u64>,
    /// Messages after what the sink read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<u64>,
}

/// *Extension:* body of `PATCH .../instances/{instance_id}/offsets`, accepted while the
/// instance is stopped and applied by its nodes before its next start.
///
/// A sink: `{"sink": "earliest"}`, `{"sink": "latest"}`, `{"sink": {"offset": 500}}`
/// (every partition), `{"sink": {"timestamp_ms": 1764400000000}}`. A source:
/// `{"source_state": "<base64 of the plugin's state>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OffsetsChange {
    /// Where a sink's group reads from next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink: Option<SinkPosition>,
    /// A source's new saved state (base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_state: Option<String>,
}

/// *Extension:* where a sink's group reads from next, on every partition it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkPosition {
    /// The oldest message still stored.
    Earliest,
    /// Only what comes next.
    Latest,
    /// This offset (the next message read).
    Offset(u64),
    /// The first message at or after this time (milliseconds since the Unix epoch).
    TimestampMs(u64),
}

/// *Extension:* a change of offsets or state that the instance's nodes apply before its
/// next start (`reset`: `DELETE .../offsets`, a sink from its earliest message, a source
/// from no state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetsRequest {
    /// Grows with each request; a node applies each one once.
    pub generation: u64,
    /// A reset.
    #[serde(default)]
    pub reset: bool,
    /// Where a sink reads from next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink: Option<SinkPosition>,
    /// A source's new state (base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_state: Option<String>,
}

/// *Extension:* answer to `GET .../instances/{instance_id}/offsets`: what each live node
/// reported last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceOffsets {
    /// The instance.
    pub instance_id: u64,
    /// `source` or `sink`.
    pub connector_type: ConnectorType,
    /// One entry per live node that reported on the instance.
    pub nodes: Vec<NodeOffsets>,
    /// A change asked for and not yet applied by every node (see each node's
    /// `applied`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested: Option<OffsetsRequest>,
}

/// *Extension:* one node's report of an instance's offsets or state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeOffsets {
    /// The node.
    pub node_id: String,
    /// When the supervisor received it (milliseconds since the Unix epoch).
    pub at: u64,
    /// A sink's partitions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<PartitionOffsets>,
    /// A source's saved state (base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_state: Option<String>,
    /// The generation of the last offsets change the node applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<u64>,
}

/// *Extension:* body of `PUT /deployments/{dep}/nodes/{node_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Version of `ld-connectord` on the node.
    pub runtime_version: String,
    /// Plugins installed on the node; these make catalog entries `available`.
    #[serde(default)]
    pub plugins: Vec<PluginInfo>,
    /// The node's full local view of its instances; replaces what it reported before.
    #[serde(default)]
    pub instances: Vec<LocalInstanceStatus>,
    /// When the node took this view, milliseconds since the Unix epoch on the node's clock
    /// (orders it against the node's status reports).
    pub at: u64,
}

/// *Extension:* answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatAck {
    /// A node that sends no heartbeat for this long counts as gone; send one every
    /// third of it.
    pub ttl_secs: u64,
    /// *Extension:* every source lease the node holds, renewed by this heartbeat; a
    /// lease the node had and that is missing here is gone (stop the source).
    #[serde(default)]
    pub leases: Vec<LeaseGrant>,
}

/// An RFC 7807 problem document (`application/problem+json`), the body of every error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// A URI naming the problem type.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// Short summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// Stable machine-readable code, e.g. `invalid_field`.
    pub code: String,
    /// What went wrong in this request, and where it helps, what to do.
    pub reason: String,
    /// The one input field that was wrong, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// A permission an API key can hold (the seed names the first two; the others are ours).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Permission {
    /// `deployment:connector:manage`: activate, delete, config, stop/start; also lets
    /// its holder read, and makes catalog entries `permitted`.
    #[serde(rename = "deployment:connector:manage")]
    Manage,
    /// `deployment:connector:read`: list the catalog and the instances.
    #[serde(rename = "deployment:connector:read")]
    Read,
    /// `deployment:node`: what a node does (long poll with secret values shown, status
    /// reports, heartbeats).
    #[serde(rename = "deployment:node")]
    Node,
    /// `supervisor:keys:manage`: create, list and revoke API keys.
    #[serde(rename = "supervisor:keys:manage")]
    KeysManage,
}

impl Permission {
    /// Every permission, for a key that may do anything.
    pub const ALL: [Permission; 4] = [
        Permission::Manage,
        Permission::Read,
        Permission::Node,
        Permission::KeysManage,
    ];

    /// The permission's name on the wire and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Manage => "deployment:connector:manage",
            Permission::Read => "deployment:connector:read",
            Permission::Node => "deployment:node",
            Permission::KeysManage => "supervisor:keys:manage",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Permission {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Permission::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown permission `{s}` (use deployment:connector:manage, \
                     deployment:connector:read, deployment:node or supervisor:keys:manage)"
                )
            })
    }
}

/// *Extension:* body of `POST /keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// What the key may do; a caller can only grant permissions it holds.
    pub permissions: Vec<Permission>,
    /// The deployments the key may act on (403 elsewhere); empty or omitted for all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deployments: Vec<u64>,
    /// Expiry, milliseconds since the Unix epoch; after it the key is refused (401).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// Expiry as seconds from now; an alternative to `expires_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_secs: Option<u64>,
    /// A note for operators (what the key is for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// *Extension:* an API key as listed: never the key itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// The key's id (the first 16 hex digits of its SHA-256); revoke it by this.
    pub id: String,
    /// What the key may do.
    pub permissions: Vec<Permission>,
    /// When it was created, milliseconds since the Unix epoch.
    pub created_at: u64,
    /// When it last authenticated a call (to the minute), milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<u64>,
    /// When it expires, milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// The deployments it may act on; empty for all.
    #[serde(default)]
    pub deployments: Vec<u64>,
    /// The operator's note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// *Extension:* answer to `POST /keys`: the key (shown this once) and its listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedKey {
    /// The API key; only its hash is stored, so this is the only time it is visible.
    pub key: String,
    /// The key as `GET /keys` lists it.
    #[serde(flatten)]
    pub info: KeyInfo,
}

/// The query of `GET .../connectors` (the catalog): every part optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogQuery {
    /// Only connectors of this type.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub connector_type: Option<ConnectorType>,
    /// The page, from 1 (the supervisor's default: 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<u64>,
    /// Entries per page, 1 to 100 (the supervisor's default: 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connector_type_round_trips_its_wire_name() {
        for t in [ConnectorType::Source, ConnectorType::Sink] {
            assert_eq!(t.as_str().parse::<ConnectorType>(), Ok(t));
            assert_eq!(
                serde_json::to_value(t).unwrap(),
                serde_json::json!(t.as_str())
            );
        }
        let refused = "both".parse::<ConnectorType>().unwrap_err();
        assert!(refused.contains("source or sink"), "{refused}");
        // Tables print it with a width; `pad` honours it.
        assert_eq!(format!("[{:<7}]", ConnectorType::Sink), "[sink   ]");
    }

    #[test]
    fn permission_round_trips_its_wire_name() {
        for p in Permission::ALL {
            assert_eq!(p.as_str().parse::<Permission>(), Ok(p));
            assert_eq!(
                serde_json::to_value(p).unwrap(),
                serde_json::json!(p.as_str())
            );
        }
        assert!("root".parse::<Permission>().is_err());
    }
}
