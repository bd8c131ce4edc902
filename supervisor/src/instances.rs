//! Connector instances: activate, list, delete, config versions, stop/start.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::api::{
    ActivateRequest, InstanceConfig, InstanceItem, InstanceStatus, LeaseRef, NodePlacement,
};
use crate::problem::ApiError;
use crate::status::{aggregate, LiveReport};
use crate::store::{InstanceRecord, NodeRecord, StoreError};
use crate::supervisor::now_ms;
use crate::{secrets, validate, Supervisor};

/// Who reads an instance: whether secret config values are shown or masked.
///
/// Only the instance list fetched with the node permission (`deployment:node`) shows the
/// real values: nodes need them to run the instances. Every other answer (activate,
/// config, stop/start, the list for users) shows each secret as [`secrets::MASK`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Secrets masked: every answer to users.
    Masked,
    /// Secrets shown: the instance list for a key with the node permission.
    Node,
}

/// A deployment's instances as the list call answers them.
#[derive(Debug, Clone)]
pub struct InstanceList {
    /// The items, in id order.
    pub items: Vec<InstanceItem>,
    /// Strong ETag of the serialized items, quoted.
    pub etag: String,
    /// When the first live node's heartbeat expires, which may change a status without
    /// any request; a long poll re-checks then.
    pub next_expiry: Option<Duration>,
}

impl Supervisor {
    /// The deployment's instances with their aggregated statuses, secrets as `view` says.
    pub fn list_instances(
        &self,
        deployment_id: u64,
        view: View,
    ) -> Result<InstanceList, StoreError> {
        self.list_instances_for(deployment_id, view, None)
    }

    /// The list; with `node`, only the instances assigned to that node (what a node
    /// asks for). Places the instances first (see [`Supervisor::place`]).
    pub fn list_instances_for(
        &self,
        deployment_id: u64,
        view: View,
        node: Option<&str>,
    ) -> Result<InstanceList, StoreError> {
        let records = self.store().instances(deployment_id)?;
        let secret_fields = match view {
            View::Masked => self.store().secret_fields()?,
            View::Node => Default::default(),
        };
        let no_fields = Default::default();
        let nodes = self.store().nodes(deployment_id)?;
        let mut placement = self.place(deployment_id, &records, &nodes)?;
        let now = now_ms();
        let ttl = self.config().node_ttl.as_millis() as u64;
        let live: BTreeMap<&str, &NodeRecord> = nodes
            .iter()
            .filter(|n| now.saturating_sub(n.last_seen_ms) <= ttl)
            .map(|n| (n.node_id.as_str(), n))
            .collect();
        let next_expiry = live
            .values()
            .map(|n| Duration::from_millis((n.last_seen_ms + ttl + 1).saturating_sub(now)))
            .chain(placement.next_change)
            .min();
        let items: Vec<InstanceItem> = records
            .into_iter()
            .filter_map(|record| {
                let assigned = placement.nodes.remove(&record.id).unwrap_or_default();
                if node.is_some_and(|n| !assigned.iter().any(|a| a == n)) {
                    return None;
                }
                let reports: Vec<LiveReport> = assigned
                    .iter()
                    .filter_map(|a| live.get(a.as_str()))
                    .map(|n| (n.node_id.as_str(), n.reports.get(&record.id)))
                    .collect();
                let (status, mut reason) = aggregate(record.stopped, &record.config, &reports);
                let lease = placement.leases.remove(&record.id);
                if let (Some(l), InstanceStatus::Pending, None) = (&lease, status, &reason) {
                    if !live.contains_key(l.node_id.as_str()) {
                        reason = Some(format!(
                            "node {} is gone (no heartbeat); the source moves to another node \
                             once its lease has ended",
                            l.node_id
                        ));
                    }
                }
                let version = record.config.version;
                let placed = assigned
                    .iter()
                    .map(|a| {
                        let node = live.get(a.as_str());
                        let report = nodes
                            .iter()
                            .find(|n| &n.node_id == a)
                            .and_then(|n| n.reports.get(&record.id))
                            .filter(|r| r.config_version == version);
                        NodePlacement {
                            node_id: a.clone(),
                            status: report.map(|r| r.status),
                            reason: report.and_then(|r| r.reason.clone()),
                            live: node.is_some(),
                        }
                    })
                    .collect();
                let mut item = item(record, status, reason);
                // Users see what it did lately; nodes get a list that changes only when
                // their work does.
                if view == View::Masked {
                    let live_nodes: Vec<&str> = assigned
                        .iter()
                        .map(String::as_str)
                        .filter(|a| live.contains_key(a))
                        .collect();
                    item.activity =
                        self.activity()
                            .summary(deployment_id, item.id, &live_nodes, now);
                }
                item.nodes = placed;
                item.lease = lease.map(|l| LeaseRef {
                    node_id: l.node_id,
                    epoch: l.epoch,
                });
                if view == View::Masked {
                    let fields = secret_fields
                        .get(&(item.connector_key.clone(), item.connector_type))
                        .unwrap_or(&no_fields);
                    secrets::mask_config(&mut item.config.values, fields);
                }
                Some(item)
            })
            .collect();
        let body = serde_json::to_vec(&items).expect("items serialize");
        let etag = format!("\"{}\"", &hex::encode(Sha256::digest(&body))[..32]);
        Ok(InstanceList {
            items,
            etag,
            next_expiry,
        })
    }

    /// One instance as the list shows it to users (secrets masked).
    pub fn instance_item(&self, deployment_id: u64, id: u64) -> Result<InstanceItem, ApiError> {
        self.list_instances(deployment_id, View::Masked)?
            .items
            .into_iter()
            .find(|i| i.id == id)
            .ok_or_else(|| not_found(deployment_id, id))
    }

    /// Activates a connector: stores a new `pending` instance (config version 1).
    pub fn activate(
        &self,
        deployment_id: u64,
        req: ActivateRequest,
    ) -> Result<InstanceItem, ApiError> {
        validate::key_like("connector_key", &req.connector_key)?;
        if let Some(key) = &req.instance_key {
            validate::key_like("instance_key", key)?;
        }
        if let Some(name) = &req.instance_name {
            validate::name("instance_name", name)?;
        }
        let mut values = req
            .config
            .unwrap_or_else(|| Value::Object(Default::default()));
        validate::config("config", &values)?;
        secrets::restore("config", &mut values, None)?;
        let catalog = self.catalog(deployment_id, false)?;
        let Some(entry) = catalog
            .iter()
            .find(|c| c.key == req.connector_key && c.connector_type == req.connector_type)
        else {
            let other_type = catalog.iter().find(|c| c.key == req.connector_key);
            let reason = match other_type {
                Some(c) => format!(
                    "connector_type: connector `{}` is a {}, not a {}",
                    req.connector_key, c.connector_type, req.connector_type
                ),
                None => format!(
                    "connector_key: unknown connector `{}` ({}); list the catalog with GET .../connectors",
                    req.connector_key, req.connector_type
                ),
            };
            return Err(ApiError::BadRequest {
                code: "unknown_connector",
                reason,
                field: Some(
                    if other_type.is_some() {
                        "connector_type"
                    } else {
                        "connector_key"
                    }
                    .into(),
                ),
            });
        };

        let _guard = self.write_lock();
        let existing = self.store().instances(deployment_id)?;
        let taken = |key: &str| existing.iter().any(|i| i.key == key);
        let key = match req.instance_key {
            Some(key) if taken(&key) => {
                return Err(ApiError::Conflict {
                    reason: format!(
                        "instance key `{key}` is already taken in deployment {deployment_id}"
                    ),
                    field: Some("instance_key".into()),
                })
            }
            Some(key) => key,
            None => {
                let base = format!("{}-{}", req.connector_key, req.connector_type);
                (1u64..)
                    .map(|n| {
                        if n == 1 {
                            base.clone()
                        } else {
                            format!("{base}-{n}")
                        }
                    })
                    .find(|k| !taken(k))
                    .expect("an unused suffix exists")
            }
        };
        let record = InstanceRecord {
            id: self.store().next_instance_id()?,
            deployment_id,
            connector_type: req.connector_type,
            connector_key: req.connector_key,
            name: req.instance_name.unwrap_or_else(|| entry.name.clone()),
            key,
            config: InstanceConfig { version: 1, values },
            stopped: false,
            restarts: 0,
            offsets_request: None,
        };
        self.store().put_instance(&record)?;
        tracing::info!(deployment_id, id = record.id, key = %record.key, connector = %record.connector_key, "instance activated");
        self.changes().notify(deployment_id);
        drop(_guard);
        self.instance_item(deployment_id, record.id)
    }

    /// Deletes an instance; every node stops it on its next poll.
    pub fn delete_instance(&self, deployment_id: u64, id: u64) -> Result<(), ApiError> {
        let _guard = self.write_lock();
        if !self.store().remove_instance(deployment_id, id)? {
            return Err(not_found(deployment_id, id));
        }
        tracing::info!(deployment_id, id, "instance deleted");
        self.activity().forget(deployment_id, id);
        self.changes().notify(deployment_id);
        Ok(())
    }

    /// Stores `values` as the instance's next config version.
    pub fn set_config(
        &self,
        deployment_id: u64,
        id: u64,
        mut values: Value,
    ) -> Result<InstanceItem, ApiError> {
        validate::config("config", &values)?;
        self.update(deployment_id, id, |record| {
            // The mask sent back for a secret keeps the stored value.
            secrets::restore("config", &mut values, Some(&record.config.values))?;
            record.config = InstanceConfig {
                version: record.config.version + 1,
                values,
            };
            Ok(())
        })
    }

    /// Stops (`inactive`) or starts an instance.
    pub fn set_stopped(
        &self,
        deployment_id: u64,
        id: u64,
        stopped: bool,
    ) -> Result<InstanceItem, ApiError> {
        self.update(deployment_id, id, |record| {
            record.stopped = stopped;
            Ok(())
        })
    }

    /// A sink's offsets per partition, or a source's saved state, as the live nodes
    /// last reported them.
    pub fn instance_offsets(
        &self,
        deployment_id: u64,
        id: u64,
    ) -> Result<ld_protocol::InstanceOffsets, ApiError> {
        let record = self
            .store()
            .instance(deployment_id, id)?
            .ok_or_else(|| not_found(deployment_id, id))?;
        let now = now_ms();
        let ttl = self.config().node_ttl.as_millis() as u64;
        let nodes = self.store().nodes(deployment_id)?;
        let live: Vec<&str> = nodes
            .iter()
            .filter(|n| now.saturating_sub(n.last_seen_ms) <= ttl)
            .map(|n| n.node_id.as_str())
            .collect();
        Ok(ld_protocol::InstanceOffsets {
            instance_id: id,
            connector_type: record.connector_type,
            nodes: self.activity().offsets(deployment_id, id, &live),
            requested: record.offsets_request,
        })
    }

    /// Sets (`Some`) or resets (`None`) a stopped instance's offsets or state for its
    /// next start; refused with 409 while it runs. A source's shared checkpoint follows,
    /// so a node that takes it over resumes from the change too.
    pub fn change_offsets(
        &self,
        deployment_id: u64,
        id: u64,
        change: Option<ld_protocol::OffsetsChange>,
    ) -> Result<InstanceItem, ApiError> {
        use ld_protocol::ConnectorType;
        let mut source_state: Option<Vec<u8>> = None;
        let item = self.update(deployment_id, id, |record| {
            if !record.stopped {
                return Err(ApiError::Conflict {
                    reason: format!(
                        "instance {id} is running: stop it (POST .../stop) before changing its offsets or state"
                    ),
                    field: None,
                });
            }
            let (sink, state) = match (&change, record.connector_type) {
                (None, _) => (None, None),
                (Some(c), ConnectorType::Sink) => {
                    if c.source_state.is_some() {
                        return Err(ApiError::invalid_field(
                            "source_state",
                            "source_state: this instance is a sink; give `sink` (earliest, latest, {\"offset\": n} or {\"timestamp_ms\": t})",
                        ));
                    }
                    let position = c.sink.ok_or_else(|| {
                        ApiError::invalid_field("sink", "sink: missing (where the sink reads from next)")
                    })?;
                    (Some(position), None)
                }
                (Some(c), ConnectorType::Source) => {
                    if c.sink.is_some() {
                        return Err(ApiError::invalid_field(
                            "sink",
                            "sink: this instance is a source; give `source_state` (base64)",
                        ));
                    }
                    let state = c.source_state.clone().ok_or_else(|| {
                        ApiError::invalid_field("source_state", "source_state: missing (base64 of the source's state)")
                    })?;
                    let checkpoint = ld_protocol::SourceCheckpoint {
                        node_id: String::new(),
                        epoch: 0,
                        state: state.clone(),
                        at: 0,
                    };
                    source_state = Some(checkpoint.state_bytes().map_err(|e| {
                        ApiError::invalid_field("source_state", format!("source_state: {e}"))
                    })?);
                    (None, Some(state))
                }
            };
            let generation = record.offsets_request.as_ref().map_or(0, |r| r.generation) + 1;
            record.offsets_request = Some(ld_protocol::OffsetsRequest {
                generation,
                reset: change.is_none(),
                sink,
                source_state: state,
            });
            Ok(())
        })?;
        if item.connector_type == ConnectorType::Source {
            // The shared checkpoint now says the same: the supervisor's, at the current
            // lease epoch, so a node taking the source over resumes from it.
            let epoch = self
                .store()
                .lease(deployment_id, id)?
                .map_or(0, |l| l.epoch);
            match source_state {
                Some(state) => self.store().put_checkpoint(
                    deployment_id,
                    id,
                    &ld_protocol::SourceCheckpoint::new("supervisor", epoch, &state, now_ms()),
                )?,
                None => self.store().remove_checkpoint(deployment_id, id)?,
            }
        }
        Ok(item)
    }

    /// Asks every node that runs the instance to restart it (a failed one too).
    pub fn restart(&self, deployment_id: u64, id: u64) -> Result<InstanceItem, ApiError> {
        self.update(deployment_id, id, |record| {
            if record.stopped {
                return Err(ApiError::Conflict {
                    reason: format!(
                        "instance {id} is stopped: start it (POST .../start) instead of restarting it"
                    ),
                    field: None,
                });
            }
            record.restarts += 1;
            Ok(())
        })
    }

    /// Restarts every instance of the deployment that runs (is not stopped), or only
    /// those whose status is `failed`; returns them.
    pub fn restart_all(
        &self,
        deployment_id: u64,
        only_failed: bool,
    ) -> Result<Vec<InstanceItem>, ApiError> {
        let chosen: Vec<u64> = self
            .list_instances(deployment_id, View::Masked)?
            .items
            .into_iter()
            .filter(|i| i.status != crate::api::InstanceStatus::Inactive)
            .filter(|i| !only_failed || i.status == crate::api::InstanceStatus::Failed)
            .map(|i| i.id)
            .collect();
        let mut restarted = Vec::with_capacity(chosen.len());
        for id in chosen {
            match self.restart(deployment_id, id) {
                Ok(item) => restarted.push(item),
                // Stopped or deleted meanwhile: not restarted.
                Err(ApiError::Conflict { .. } | ApiError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(restarted)
    }

    fn update(
        &self,
        deployment_id: u64,
        id: u64,
        change: impl FnOnce(&mut InstanceRecord) -> Result<(), ApiError>,
    ) -> Result<InstanceItem, ApiError> {
        let guard = self.write_lock();
        let mut record = self
            .store()
            .instance(deployment_id, id)?
            .ok_or_else(|| not_found(deployment_id, id))?;
        change(&mut record)?;
        self.store().put_instance(&record)?;
        tracing::info!(
            deployment_id,
            id,
            version = record.config.version,
            stopped = record.stopped,
            "instance updated"
        );
        self.changes().notify(deployment_id);
        drop(guard);
        self.instance_item(deployment_id, id)
    }
}

fn item(
    record: InstanceRecord,
    status: crate::api::InstanceStatus,
    reason: Option<String>,
) -> InstanceItem {
    InstanceItem {
        id: record.id,
        deployment_id: record.deployment_id,
        connector_type: record.connector_type,
        connector_key: record.connector_key,
        name: record.name,
        key: record.key,
        status,
        reason,
        config: record.config,
        nodes: Vec::new(),
        lease: None,
        restarts: record.restarts,
        activity: None,
        offsets_request: record.offsets_request,
    }
}

pub(crate) fn not_found(deployment_id: u64, id: u64) -> ApiError {
    ApiError::NotFound(format!("no instance {id} in deployment {deployment_id}"))
}
