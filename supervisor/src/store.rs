//! Durable state in `sled`: instances, nodes, API keys and registered catalog entries.
//!
//! Values are JSON so the data directory stays readable with any sled tool and records can
//! gain optional fields without a migration. Keys that are scanned by deployment start with
//! the deployment id in big-endian, so a prefix scan returns one deployment in id order.
//! Every write is flushed before the call answers: an instance a client saw accepted must
//! survive a crash of the supervisor.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::api::{ConnectorType, InstanceConfig, InstanceStatus, PluginInfo, SourceCheckpoint};
use crate::auth::Permission;
use crate::placement::LeaseRecord;

/// A failure of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed (I/O, corruption, or the directory is locked by another process).
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    /// A stored value did not decode.
    #[error("corrupt record in tree {tree}: {source}")]
    Corrupt {
        /// The tree holding the record.
        tree: &'static str,
        /// The decoding error.
        source: serde_json::Error,
    },
}

/// One connector instance as stored: the desired state, not the nodes' view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceRecord {
    /// Unique id.
    pub id: u64,
    /// Owning deployment.
    pub deployment_id: u64,
    /// `source` or `sink`.
    pub connector_type: ConnectorType,
    /// Connector identifier.
    pub connector_key: String,
    /// Human-readable name.
    pub name: String,
    /// Unique key within the deployment.
    pub key: String,
    /// Current config.
    pub config: InstanceConfig,
    /// Stopped by a user (`POST .../stop`).
    #[serde(default)]
    pub stopped: bool,
    /// Restarts asked for (`POST .../restart`); each one restarts it on its nodes.
    #[serde(default)]
    pub restarts: u64,
    /// The last change of offsets or state asked for (`PATCH`/`DELETE .../offsets`).
    #[serde(default)]
    pub offsets_request: Option<ld_protocol::OffsetsRequest>,
}

/// One node's report on one instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeReport {
    /// Status on the node.
    pub status: InstanceStatus,
    /// Why, when failed.
    #[serde(default)]
    pub reason: Option<String>,
    /// Config version the node runs.
    pub config_version: u64,
    /// Node clock, ms since the epoch, used only to order this node's own reports.
    pub at: u64,
}

/// A node of a deployment as last heard from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Owning deployment.
    pub deployment_id: u64,
    /// Node id as the node names itself.
    pub node_id: String,
    /// `ld-connectord` version.
    pub runtime_version: String,
    /// Plugins installed on the node.
    pub plugins: Vec<PluginInfo>,
    /// The node's view of each instance, by instance id.
    pub reports: BTreeMap<u64, NodeReport>,
    /// Supervisor clock, ms since the epoch, of the last heartbeat or report.
    pub last_seen_ms: u64,
}

/// An API key as stored under its SHA-256: the key itself is never kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// What the key may do.
    pub permissions: Vec<Permission>,
    /// Supervisor clock, ms since the epoch.
    pub created_at_ms: u64,
    /// After this (ms since the epoch) the key is refused like an unknown one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
    /// The deployments the key may act on; empty for all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deployments: Vec<u64>,
    /// A note for operators (what the key is for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// When the key last authenticated a call (ms since the epoch, to the minute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_ms: Option<u64>,
}

/// A connector known to the supervisor without any node having reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogEntry {
    /// Connector identifier, e.g. `postgres`.
    pub key: String,
    /// `source` or `sink`.
    #[serde(rename = "type")]
    pub connector_type: ConnectorType,
    /// Human-readable name.
    pub name: String,
    /// What the connector does.
    #[serde(default)]
    pub description: String,
}

/// The secret fields nodes reported for one connector, accumulated over every report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretFieldsRecord {
    /// Connector identifier.
    pub key: String,
    /// `source` or `sink`.
    #[serde(rename = "type")]
    pub connector_type: ConnectorType,
    /// JSON Pointers into `plugin_config`.
    pub fields: BTreeSet<String>,
}

/// Secret-field pointers by connector key and type.
pub type SecretFieldMap = HashMap<(String, ConnectorType), BTreeSet<String>>;

/// The sled database and its trees.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    instances: sled::Tree,
    nodes: sled::Tree,
    keys: sled::Tree,
    catalog: sled::Tree,
    meta: sled::Tree,
    secret_fields: sled::Tree,
    leases: sled::Tree,
    checkpoints: sled::Tree,
}

const NEXT_INSTANCE_ID: &[u8] = b"next_instance_id";

fn deployment_key(deployment_id: u64, tail: &[u8]) -> Vec<u8> {
    let mut key = deployment_id.to_be_bytes().to_vec();
    key.extend_from_slice(tail);
    key
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Our records are plain structs with string keys: serializing cannot fail.
    serde_json::to_vec(value).expect("records serialize to JSON")
}

fn decode<T: DeserializeOwned>(tree: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt { tree, source })
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::open(dir)?;
        Ok(Store {
            instances: db.open_tree("instances")?,
            nodes: db.open_tree("nodes")?,
            keys: db.open_tree("keys")?,
            catalog: db.open_tree("catalog")?,
            meta: db.open_tree("meta")?,
            secret_fields: db.open_tree("secret_fields")?,
            leases: db.open_tree("leases")?,
            checkpoints: db.open_tree("checkpoints")?,
            db,
        })
    }

    /// Makes every write so far durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// A fresh instance id, never handed out before (ids start at 1).
    pub fn next_instance_id(&self) -> Result<u64, StoreError> {
        let next = self.meta.update_and_fetch(NEXT_INSTANCE_ID, |old| {
            let current = old
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            Some((current + 1).to_be_bytes().to_vec())
        })?;
        let bytes = next.expect("update_and_fetch stored a value");
        Ok(u64::from_be_bytes(
            <[u8; 8]>::try_from(bytes.as_ref()).expect("8-byte counter"),
        ))
    }

    /// The deployment's instances, in id order.
    pub fn instances(&self, deployment_id: u64) -> Result<Vec<InstanceRecord>, StoreError> {
        self.instances
            .scan_prefix(deployment_id.to_be_bytes())
            .map(|kv| decode("instances", &kv?.1))
            .collect()
    }

    /// One instance of a deployment.
    pub fn instance(
        &self,
        deployment_id: u64,
        id: u64,
    ) -> Result<Option<InstanceRecord>, StoreError> {
        let key = deployment_key(deployment_id, &id.to_be_bytes());
        self.instances
            .get(key)?
            .map(|v| decode("instances", &v))
            .transpose()
    }

    /// Inserts or replaces an instance.
    pub fn put_instance(&self, record: &InstanceRecord) -> Result<(), StoreError> {
        let key = deployment_key(record.deployment_id, &record.id.to_be_bytes());
        self.instances.insert(key, encode(record))?;
        self.flush()
    }

    /// Removes an instance; false when there was none.
    pub fn remove_instance(&self, deployment_id: u64, id: u64) -> Result<bool, StoreError> {
        let key = deployment_key(deployment_id, &id.to_be_bytes());
        let existed = self.instances.remove(&key)?.is_some();
        self.leases.remove(&key)?;
        self.checkpoints.remove(&key)?;
        self.flush()?;
        Ok(existed)
    }

    /// The deployment's source leases, by instance id.
    pub fn leases(&self, deployment_id: u64) -> Result<BTreeMap<u64, LeaseRecord>, StoreError> {
        self.leases
            .scan_prefix(deployment_id.to_be_bytes())
            .map(|kv| {
                let (k, v) = kv?;
                let id = k
                    .get(8..16)
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map_or(0, u64::from_be_bytes);
                Ok((id, decode("leases", &v)?))
            })
            .collect()
    }

    /// One source's lease.
    pub fn lease(&self, deployment_id: u64, id: u64) -> Result<Option<LeaseRecord>, StoreError> {
        let key = deployment_key(deployment_id, &id.to_be_bytes());
        self.leases
            .get(key)?
            .map(|v| decode("leases", &v))
            .transpose()
    }

    /// Stores a source's lease. A new holder is flushed before the call answers; a
    /// renewal is not (after a restart the supervisor counts every lease as renewed at
    /// its start, so a lost renewal never shortens a lease).
    pub fn put_lease(
        &self,
        deployment_id: u64,
        id: u64,
        lease: &LeaseRecord,
        flush: bool,
    ) -> Result<(), StoreError> {
        let key = deployment_key(deployment_id, &id.to_be_bytes());
        self.leases.insert(key, encode(lease))?;
        if flush {
            self.flush()?;
        }
        Ok(())
    }

    /// A source's shared checkpoint.
    pub fn checkpoint(
        &self,
        deployment_id: u64,
        id: u64,
    ) -> Result<Option<SourceCheckpoint>, StoreError> {
        let key = deployment_key(deployment_id, &id.to_be_bytes());
        self.checkpoints
            .get(key)?
            .map(|v| decode("checkpoints", &v))
            .transpose()
    }

    /// Stores a source's shared checkpoint (made durable by sled's periodic flush, every
    /// half second: a checkpoint lost in a crash of the supervisor costs a few batches
    /// produced again, never a gap).
    pub fn put_checkpoint(
        &self,
        deployment_id: u64,
        id: u64,
        checkpoint: &SourceCheckpoint,
    ) -> Result<(), StoreError> {
        let key = deployment_key(deployment_id, &id.to_be_bytes());
        self.checkpoints.insert(key, encode(checkpoint))?;
        Ok(())
    }

    /// Removes a source's shared checkpoint.
    pub fn remove_checkpoint(&self, deployment_id: u64, id: u64) -> Result<(), StoreError> {
        let key = deployment_key(deployment_id, &id.to_be_bytes());
        self.checkpoints.remove(key)?;
        Ok(())
    }

    /// The deployment's nodes, live or not.
    pub fn nodes(&self, deployment_id: u64) -> Result<Vec<NodeRecord>, StoreError> {
        self.nodes
            .scan_prefix(deployment_id.to_be_bytes())
            .map(|kv| decode("nodes", &kv?.1))
            .collect()
    }

    /// One node of a deployment.
    pub fn node(
        &self,
        deployment_id: u64,
        node_id: &str,
    ) -> Result<Option<NodeRecord>, StoreError> {
        let key = deployment_key(deployment_id, node_id.as_bytes());
        self.nodes
            .get(key)?
            .map(|v| decode("nodes", &v))
            .transpose()
    }

    /// Inserts or replaces a node.
    pub fn put_node(&self, record: &NodeRecord) -> Result<(), StoreError> {
        let key = deployment_key(record.deployment_id, record.node_id.as_bytes());
        self.nodes.insert(key, encode(record))?;
        self.flush()
    }

    /// The key stored under a hash, with the hash as stored.
    pub fn key(&self, hash: &str) -> Result<Option<(String, KeyRecord)>, StoreError> {
        match self.keys.get(hash)? {
            Some(v) => Ok(Some((hash.to_string(), decode("keys", &v)?))),
            None => Ok(None),
        }
    }

    /// Every key as (hash, record), in hash order.
    pub fn keys(&self) -> Result<Vec<(String, KeyRecord)>, StoreError> {
        self.keys
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                Ok((
                    String::from_utf8_lossy(&k).into_owned(),
                    decode("keys", &v)?,
                ))
            })
            .collect()
    }

    /// The hashes of the keys whose hash starts with `prefix` (a key id).
    pub fn key_hashes_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.keys
            .scan_prefix(prefix.as_bytes())
            .keys()
            .map(|k| Ok(String::from_utf8_lossy(&k?).into_owned()))
            .collect()
    }

    /// Removes the key stored under `hash`; false when there was none.
    pub fn remove_key(&self, hash: &str) -> Result<bool, StoreError> {
        let existed = self.keys.remove(hash)?.is_some();
        self.flush()?;
        Ok(existed)
    }

    /// Notes that the key under `hash` was used at `now_ms`, unless it was removed
    /// meanwhile (atomic, so a revoked key is never written back). Not flushed: a lost
    /// last-use time costs nothing.
    pub fn touch_key(&self, hash: &str, now_ms: u64) -> Result<(), StoreError> {
        self.keys.fetch_and_update(hash, |old| {
            let old = old?;
            match serde_json::from_slice::<KeyRecord>(old) {
                Ok(mut record) => {
                    record.last_used_ms = Some(now_ms);
                    Some(encode(&record))
                }
                Err(_) => Some(old.to_vec()),
            }
        })?;
        Ok(())
    }

    /// Stores a key under its hash.
    pub fn put_key(&self, hash: &str, record: &KeyRecord) -> Result<(), StoreError> {
        self.keys.insert(hash, encode(record))?;
        self.flush()
    }

    /// Number of stored keys.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Registered catalog entries, by key then type.
    pub fn catalog_entries(&self) -> Result<Vec<CatalogEntry>, StoreError> {
        self.catalog
            .iter()
            .map(|kv| decode("catalog", &kv?.1))
            .collect()
    }

    /// Registers (or replaces) a catalog entry.
    pub fn put_catalog_entry(&self, entry: &CatalogEntry) -> Result<(), StoreError> {
        let key = format!("{}\0{}", entry.key, entry.connector_type);
        self.catalog.insert(key, encode(entry))?;
        self.flush()
    }

    /// Every connector's reported secret fields.
    pub fn secret_fields(&self) -> Result<SecretFieldMap, StoreError> {
        self.secret_fields
            .iter()
            .map(|kv| {
                let record: SecretFieldsRecord = decode("secret_fields", &kv?.1)?;
                Ok(((record.key, record.connector_type), record.fields))
            })
            .collect()
    }

    /// Adds reported secret fields of a connector to those already known (never removes
    /// one: a field once secret stays masked). True when something was new.
    pub fn add_secret_fields(
        &self,
        key: &str,
        connector_type: ConnectorType,
        fields: &[String],
    ) -> Result<bool, StoreError> {
        let tree_key = format!("{key}\0{connector_type}");
        let mut record = match self.secret_fields.get(&tree_key)? {
            Some(bytes) => decode("secret_fields", &bytes)?,
            None => SecretFieldsRecord {
                key: key.to_string(),
                connector_type,
                fields: BTreeSet::new(),
            },
        };
        let before = record.fields.len();
        record.fields.extend(fields.iter().cloned());
        if record.fields.len() == before {
            return Ok(false);
        }
        self.secret_fields.insert(tree_key, encode(&record))?;
        self.flush()?;
        Ok(true)
    }
}
