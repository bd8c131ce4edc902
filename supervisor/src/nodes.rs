//! Nodes: heartbeats, status reports, liveness, and the catalog they make available.

use crate::api::{CatalogItem, Heartbeat, HeartbeatAck, StatusReport};
use crate::catalog;
use crate::instances::not_found;
use crate::problem::ApiError;
use crate::store::{NodeRecord, NodeReport, StoreError};
use crate::supervisor::now_ms;
use crate::{secrets, validate, Supervisor};

impl Supervisor {
    /// True when `node` was heard from within the node TTL.
    pub fn is_live(&self, node: &NodeRecord) -> bool {
        now_ms().saturating_sub(node.last_seen_ms) <= self.config().node_ttl.as_millis() as u64
    }

    /// The deployment's catalog; `permitted` is what the caller's key allows.
    pub fn catalog(
        &self,
        deployment_id: u64,
        permitted: bool,
    ) -> Result<Vec<CatalogItem>, StoreError> {
        let registered = self.store().catalog_entries()?;
        let nodes = self.store().nodes(deployment_id)?;
        let with_liveness: Vec<(&NodeRecord, bool)> =
            nodes.iter().map(|n| (n, self.is_live(n))).collect();
        Ok(catalog::build(&registered, &with_liveness, permitted))
    }

    /// Records a heartbeat: the node is live, its plugins and its full local view of its
    /// instances replace what it sent before (except reports newer than the heartbeat).
    pub fn heartbeat(
        &self,
        deployment_id: u64,
        node_id: &str,
        beat: Heartbeat,
    ) -> Result<HeartbeatAck, ApiError> {
        validate::key_like("node_id", node_id)?;
        for (i, plugin) in beat.plugins.iter().enumerate() {
            validate::key_like(&format!("plugins[{i}].key"), &plugin.key)?;
            if plugin.secret_fields.len() > secrets::MAX_SECRET_FIELDS {
                return Err(ApiError::invalid_field(
                    format!("plugins[{i}].secret_fields"),
                    format!(
                        "plugins[{i}].secret_fields lists more than {} fields",
                        secrets::MAX_SECRET_FIELDS
                    ),
                ));
            }
            for (j, pointer) in plugin.secret_fields.iter().enumerate() {
                secrets::check_pointer(pointer).map_err(|reason| {
                    let field = format!("plugins[{i}].secret_fields[{j}]");
                    ApiError::invalid_field(field.clone(), format!("{field}: {reason}"))
                })?;
            }
        }
        let guard = self.write_lock();
        let mut new_secrets = false;
        for plugin in &beat.plugins {
            if !plugin.secret_fields.is_empty() {
                new_secrets |= self.store().add_secret_fields(
                    &plugin.key,
                    plugin.connector_type,
                    &plugin.secret_fields,
                )?;
            }
        }
        let previous = self.store().node(deployment_id, node_id)?;
        let mut reports = std::collections::BTreeMap::new();
        let received = now_ms();
        for local in &beat.instances {
            if !local.partitions.is_empty()
                || local.source_state.is_some()
                || local.offsets_applied.is_some()
            {
                self.activity().record_offsets(
                    deployment_id,
                    local.instance_id,
                    ld_protocol::NodeOffsets {
                        node_id: node_id.to_string(),
                        at: received,
                        partitions: local.partitions.clone(),
                        source_state: local.source_state.clone(),
                        applied: local.offsets_applied,
                    },
                );
            }
            if let Some(messages) = local.messages {
                self.activity().record(
                    deployment_id,
                    local.instance_id,
                    node_id,
                    received,
                    messages,
                    local.lag,
                );
            }
        }
        for local in beat.instances {
            reports.insert(
                local.instance_id,
                NodeReport {
                    status: local.status,
                    reason: local.reason,
                    config_version: local.config_version,
                    at: beat.at,
                },
            );
        }
        // A status PUT sent after this heartbeat was taken but received before it is newer.
        if let Some(prev) = &previous {
            for (id, report) in &prev.reports {
                if report.at > beat.at && reports.contains_key(id) {
                    reports.insert(*id, report.clone());
                }
            }
        }
        let record = NodeRecord {
            deployment_id,
            node_id: node_id.to_string(),
            runtime_version: beat.runtime_version,
            plugins: beat.plugins,
            reports,
            last_seen_ms: now_ms(),
        };
        let changed = previous.as_ref().map(|p| (&p.plugins, &p.reports))
            != Some((&record.plugins, &record.reports))
            || previous.as_ref().is_none_or(|p| !self.is_live(p))
            || new_secrets;
        self.store().put_node(&record)?;
        drop(guard);
        if changed {
            tracing::debug!(deployment_id, node_id, "node changed");
            // A node that came or changed may take sources whose lease ended.
            let records = self.store().instances(deployment_id)?;
            let nodes = self.store().nodes(deployment_id)?;
            self.place(deployment_id, &records, &nodes)?;
            self.changes().notify(deployment_id);
        }
        Ok(HeartbeatAck {
            ttl_secs: self.config().node_ttl.as_secs().max(1),
            leases: self.renew_leases(deployment_id, node_id)?,
        })
    }

    /// Records one node's status of one instance. Idempotent; a report older (by the
    /// node's `at`) than the stored one is ignored. A report also counts as a sign of life.
    pub fn report_status(
        &self,
        deployment_id: u64,
        id: u64,
        report: StatusReport,
    ) -> Result<(), ApiError> {
        validate::key_like("node_id", &report.node_id)?;
        let guard = self.write_lock();
        if self.store().instance(deployment_id, id)?.is_none() {
            return Err(not_found(deployment_id, id));
        }
        let mut node = self
            .store()
            .node(deployment_id, &report.node_id)?
            .unwrap_or_else(|| NodeRecord {
                deployment_id,
                node_id: report.node_id.clone(),
                runtime_version: String::new(),
                plugins: Vec::new(),
                reports: Default::default(),
                last_seen_ms: 0,
            });
        let was_live = self.is_live(&node);
        let incoming = NodeReport {
            status: report.status,
            reason: report.reason,
            config_version: report.config_version,
            at: report.at,
        };
        let changed = match node.reports.get(&id) {
            Some(stored) if stored.at > incoming.at => false,
            Some(stored) => *stored != incoming,
            None => true,
        };
        if changed {
            node.reports.insert(id, incoming);
        }
        node.last_seen_ms = now_ms();
        self.store().put_node(&node)?;
        drop(guard);
        if changed || !was_live {
            self.changes().notify(deployment_id);
        }
        Ok(())
    }
}
