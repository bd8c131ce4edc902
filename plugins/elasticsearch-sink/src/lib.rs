//! `elasticsearch` sink: indexes each message as one document of an Elasticsearch
//! (7, 8, 9) or OpenSearch (1, 2) index through the `_bulk` API.
//!
//! A batch is encoded once as NDJSON and sent in one or more `_bulk` requests (split to
//! fit `max_bulk_docs` / `max_bulk_bytes`). Each item's result is read: stored items are
//! done; when part of the batch is stored, the items the server refused for now (429,
//! 5xx) are sent again, alone and in smaller requests, with backoff, for at most
//! `retry_timeout` (the host can only send a batch again whole); when nothing is stored
//! the error goes back to the host at once, which retries the batch with its backoff.
//! Items refused for their content follow `on_document_error`. `consume` returns `Ok` only when every document
//! of the batch is stored or skipped, so the host commits offsets only then.
//!
//! By default each document's `_id` is derived from its stream, topic, partition and
//! offset, so a batch delivered again after a crash overwrites its documents instead of
//! adding copies. See the README for the config and the delivery guarantee.

mod bulk;
mod config;
mod encode;
mod error;
mod pattern;

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use bytes::Bytes;
use ld_plugin_api::{export_plugin, InstanceContext, PluginError, Rejection, Sink, SinkBatch};
use reqwest::{
    header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE},
    Method,
};

pub use bulk::{classify, parse_bulk, server_info, Outcome, ServerInfo};
pub use config::{
    DocumentId, ElasticsearchSinkConfig, NonObjectPayloads, OnDocumentError, OpType, Settings,
};
pub use encode::{offset_id, split, Encoded};
use error::SinkError;
pub use pattern::IndexPattern;

/// The most index names remembered as existing (a `{field:...}` pattern may make many).
const KNOWN_INDICES_LIMIT: usize = 10_000;

/// A live HTTP client for the cluster.
struct Http {
    client: reqwest::Client,
    auth: Option<HeaderValue>,
    /// The node currently used.
    node: usize,
    /// `/_bulk?...`.
    bulk_path: String,
}

/// One answer.
struct Reply {
    status: u16,
    body: Bytes,
    node: String,
}

/// What one `_bulk` request came to.
enum BulkReply {
    Items(Vec<Outcome>),
    /// 413: the request was too large for the server.
    TooLarge(String),
}

/// Indexes batches into Elasticsearch or OpenSearch.
pub struct ElasticsearchSink {
    settings: Settings,
    instance: String,
    http: Option<Http>,
    /// Indices known to exist (checked or created).
    known_indices: HashSet<String>,
    /// The current batch as NDJSON (reused).
    encoded: Encoded,
    stored: u64,
    skipped: u64,
    /// Documents of the current batch handed to the host (`on_document_error =
    /// dead_letter`).
    rejected: Vec<Rejection>,
}

impl ElasticsearchSink {
    fn scrub(&self, text: &str) -> String {
        self.settings.scrub(text)
    }

    fn fail(&self, err: SinkError) -> PluginError {
        err.into_plugin_error(|t| self.scrub(t))
    }

    async fn build_client(&self) -> Result<Http, SinkError> {
        let s = &self.settings;
        let mut builder = reqwest::Client::builder()
            .timeout(s.timeout)
            .connect_timeout(s.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!(
                "ld-connectord-elasticsearch-sink/",
                env!("CARGO_PKG_VERSION")
            ))
            .pool_idle_timeout(Duration::from_secs(50));
        if let Some(path) = &s.ca_file {
            let pem = tokio::fs::read(path)
                .await
                .map_err(|e| SinkError::CaFile(format!("cannot read `{}`: {e}", path.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                SinkError::CaFile(format!(
                    "`{}` is not a PEM certificate file: {e}",
                    path.display()
                ))
            })?;
            if certs.is_empty() {
                return Err(SinkError::CaFile(format!(
                    "`{}` holds no PEM certificate",
                    path.display()
                )));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        if s.tls_skip_verify {
            tracing::warn!("tls_skip_verify = true: server certificates are not checked");
            builder = builder.danger_accept_invalid_certs(true);
        }
        let client = builder
            .build()
            .map_err(|e| SinkError::Client(error::describe(&e)))?;
        let auth = match s.auth.header() {
            Some(value) => {
                let mut value = HeaderValue::from_str(&value).map_err(|_| {
                    SinkError::Client(
                        "the credentials hold characters an HTTP header cannot carry".to_string(),
                    )
                })?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let mut bulk_path = "/_bulk?filter_path=errors,items.*.status,items.*.error".to_string();
        if let Some(p) = &s.pipeline {
            bulk_path.push_str("&pipeline=");
            bulk_path.push_str(&escape(p));
        }
        Ok(Http {
            client,
            auth,
            node: 0,
            bulk_path,
        })
    }

    /// Sends one request, trying the nodes in turn while they cannot be connected to.
    async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<(Bytes, &'static str)>,
    ) -> Result<Reply, SinkError> {
        let nodes = &self.settings.nodes;
        let http = self.http.as_mut().expect("opened before use");
        let mut last = String::new();
        for k in 0..nodes.len() {
            let i = (http.node + k) % nodes.len();
            let base = &nodes[i].base;
            let mut request = http.client.request(method.clone(), format!("{base}{path}"));
            if let Some(auth) = &http.auth {
                request = request.header(AUTHORIZATION, auth.clone());
            }
            if let Some((bytes, content_type)) = &body {
                request = request
                    .header(CONTENT_TYPE, *content_type)
                    .body(bytes.clone());
            }
            match request.send().await {
                Ok(response) => {
                    http.node = i;
                    let status = response.status().as_u16();
                    let body = response.bytes().await.map_err(|e| {
                        http.node = (i + 1) % nodes.len();
                        SinkError::Unreachable {
                            node: base.clone(),
                            reason: format!("the answer broke off: {}", error::describe(&e)),
                        }
                    })?;
                    return Ok(Reply {
                        status,
                        body,
                        node: base.clone(),
                    });
                }
                Err(e) if e.is_connect() => {
                    last = error::describe(&e);
                    if nodes.len() > 1 {
                        tracing::warn!(node = %base, "cannot connect ({}); trying the next node", self.settings.scrub(&last));
                    }
                }
                Err(e) => {
                    // A timeout or a broken connection: the request may have been
                    // applied, so it is not re-sent here; the next try uses the next node.
                    http.node = (i + 1) % nodes.len();
                    return Err(SinkError::Unreachable {
                        node: base.clone(),
                        reason: error::describe(&e),
                    });
                }
            }
        }
        let names: Vec<&str> = nodes.iter().map(|n| n.base.as_str()).collect();
        Err(SinkError::Unreachable {
            node: names.join(", "),
            reason: last,
        })
    }

    /// Turns an unexpected answer into an error.
    fn unexpected(context: &str, reply: &Reply) -> SinkError {
        let reason = bulk::describe_body(&reply.body);
        match reply.status {
            401 => SinkError::Auth {
                node: reply.node.clone(),
                reason,
            },
            403 => SinkError::Forbidden {
                context: context.to_string(),
                node: reply.node.clone(),
                reason,
            },
            status => SinkError::Http {
                context: context.to_string(),
                node: reply.node.clone(),
                status,
                reason,
            },
        }
    }

    /// `GET /`: which server, which version; also proves the credentials.
    async fn hello(&mut self) -> Result<(), SinkError> {
        let reply = self.send(Method::GET, "/", None).await?;
        if reply.status != 200 {
            return Err(Self::unexpected("GET /", &reply));
        }
        match bulk::server_info(&reply.body) {
            Some(info) => {
                tracing::info!(
                    node = %reply.node,
                    flavour = info.flavour,
                    version = %info.version,
                    cluster = %info.cluster,
                    "connected to {} {} (cluster {})",
                    info.flavour,
                    info.version,
                    info.cluster
                );
                let old = match info.flavour {
                    "OpenSearch" => false,
                    _ => info.major.is_some_and(|m| m < 7),
                };
                if old {
                    tracing::warn!(
                        "Elasticsearch {} is older than 7: writes may be refused (mapping types)",
                        info.version
                    );
                }
            }
            None => tracing::warn!(
                node = %reply.node,
                "GET / did not answer like Elasticsearch or OpenSearch: {}",
                bulk::preview(&reply.body)
            ),
        }
        Ok(())
    }

    async fn check_pipeline(&mut self, pipeline: &str) -> Result<(), SinkError> {
        let reply = self
            .send(
                Method::GET,
                &format!("/_ingest/pipeline/{}", escape(pipeline)),
                None,
            )
            .await?;
        match reply.status {
            200 => Ok(()),
            404 => Err(SinkError::MissingPipeline(pipeline.to_string())),
            403 => {
                tracing::warn!(
                    "cannot check that ingest pipeline `{pipeline}` exists (HTTP 403); going on"
                );
                Ok(())
            }
            _ => Err(Self::unexpected("checking the ingest pipeline", &reply)),
        }
    }

    /// Makes sure `index` exists: checks it, and creates it when allowed.
    async fn ensure_index(&mut self, index: &str) -> Result<(), SinkError> {
        if self.known_indices.contains(index) {
            return Ok(());
        }
        let path = format!("/{}", escape(index));
        let reply = self.send(Method::HEAD, &path, None).await?;
        match reply.status {
            200 => {}
            404 if self.settings.create_index => {
                let body = serde_json::to_vec(&self.settings.create_body).expect("JSON");
                let reply = self
                    .send(
                        Method::PUT,
                        &path,
                        Some((Bytes::from(body), "application/json")),
                    )
                    .await?;
                let already = reply.status == 400
                    && bulk::describe_body(&reply.body).contains("resource_already_exists");
                if reply.status == 200 {
                    tracing::info!(index, "created index `{index}`");
                } else if !already {
                    return Err(Self::unexpected(
                        &format!("creating index `{index}`"),
                        &reply,
                    ));
                }
            }
            404 => return Err(SinkError::MissingIndex(index.to_string())),
            403 => {
                // A writer may lack the privilege to look at index metadata.
                tracing::warn!(
                    index,
                    "cannot check that index `{index}` exists (HTTP 403); going on"
                );
            }
            _ => {
                return Err(Self::unexpected(
                    &format!("checking index `{index}`"),
                    &reply,
                ))
            }
        }
        if self.known_indices.len() >= KNOWN_INDICES_LIMIT {
            self.known_indices.clear();
        }
        self.known_indices.insert(index.to_string());
        Ok(())
    }

    /// One `_bulk` request.
    async fn bulk(&mut self, body: Vec<u8>, docs: usize) -> Result<BulkReply, SinkError> {
        let path = self.http.as_ref().expect("opened").bulk_path.clone();
        let reply = self
            .send(
                Method::POST,
                &path,
                Some((Bytes::from(body), "application/x-ndjson")),
            )
            .await?;
        match reply.status {
            200 => bulk::parse_bulk(&reply.body, docs, self.settings.op_type)
                .map(BulkReply::Items)
                .map_err(|reason| SinkError::Http {
                    context: "_bulk".to_string(),
                    node: reply.node.clone(),
                    status: 502,
                    reason,
                }),
            413 => Ok(BulkReply::TooLarge(bulk::describe_body(&reply.body))),
            _ => Err(Self::unexpected("_bulk", &reply)),
        }
    }

    /// A document that cannot be stored for its content: fail, skip, or hand it to the
    /// host (its dead-letter topic).
    fn document_error(
        &mut self,
        batch: &SinkBatch<'_>,
        msg: usize,
        what: &str,
        reason: &str,
    ) -> Result<(), PluginError> {
        let offset = batch.messages()[msg].offset();
        let reason = self.scrub(reason);
        match self.settings.on_document_error {
            OnDocumentError::Fail => Err(PluginError::fatal(format!(
                "the message at offset {offset} ({}/{} partition {}) {what}: {reason} \
                 (on_document_error = fail; set it to skip to skip such documents)",
                batch.stream(),
                batch.topic(),
                batch.partition()
            ))),
            OnDocumentError::Skip => {
                self.skipped += 1;
                tracing::warn!(
                    offset,
                    skipped_total = self.skipped,
                    "skipped the message at offset {offset} ({}/{} partition {}): it {what}: {reason}",
                    batch.stream(),
                    batch.topic(),
                    batch.partition()
                );
                Ok(())
            }
            OnDocumentError::DeadLetter => {
                self.rejected
                    .push(Rejection::new(offset, format!("it {what}: {reason}")));
                Ok(())
            }
        }
    }

    async fn write(&mut self, enc: &Encoded, batch: &SinkBatch<'_>) -> Result<(), PluginError> {
        let started = Instant::now();
        let stored_before = self.stored;
        for (msg, reason) in &enc.rejected {
            self.document_error(batch, *msg, "cannot become a document", reason)?;
        }
        for index in &enc.indices {
            if self.settings.create_index {
                self.ensure_index(index).await.map_err(|e| self.fail(e))?;
            }
        }
        let mut pending: Vec<usize> = (0..enc.docs.len()).collect();
        // Only the refused documents go again, so retries are smaller requests by
        // themselves. They are not cut up further: a full write queue refuses one shard
        // request whatever its size, and more requests would only meet more refusals.
        let max_docs = self.settings.max_bulk_docs;
        let mut max_bytes = self.settings.max_bulk_bytes;
        let mut round = 0u32;
        while !pending.is_empty() {
            let sizes: Vec<usize> = pending.iter().map(|&d| enc.docs[d].range.len()).collect();
            let mut retry = Vec::new();
            let mut last_reason = String::new();
            let mut unreachable = false;
            // A request too large is sent again, split, from here: the host would send
            // it whole again.
            let mut resplit = false;
            for chunk in encode::split(&sizes, max_docs, max_bytes) {
                let docs = &pending[chunk];
                if unreachable {
                    retry.extend_from_slice(docs);
                    continue;
                }
                let body = enc.body(docs);
                let bytes = body.len();
                match self.bulk(body, docs.len()).await {
                    Ok(BulkReply::Items(outcomes)) => {
                        for (&d, outcome) in docs.iter().zip(outcomes) {
                            match outcome {
                                Outcome::Stored | Outcome::AlreadyStored => self.stored += 1,
                                Outcome::Retry(reason) => {
                                    last_reason = reason;
                                    retry.push(d);
                                }
                                Outcome::Rejected(reason) => self.document_error(
                                    batch,
                                    enc.docs[d].msg,
                                    &format!(
                                        "was refused by index `{}`",
                                        enc.indices[enc.docs[d].index as usize]
                                    ),
                                    &reason,
                                )?,
                                Outcome::Fatal(reason) => {
                                    return Err(PluginError::fatal(self.scrub(&format!(
                                        "writing to index `{}`: {reason}",
                                        enc.indices[enc.docs[d].index as usize]
                                    ))))
                                }
                            }
                        }
                    }
                    Ok(BulkReply::TooLarge(reason)) if docs.len() > 1 => {
                        max_bytes = (bytes / 2).max(1);
                        tracing::warn!(
                            "a _bulk request of {bytes} bytes was too large for the server ({}); sending at most {max_bytes} bytes per request",
                            self.scrub(&reason)
                        );
                        retry.extend_from_slice(docs);
                        last_reason = format!("HTTP 413 {reason}");
                        resplit = true;
                        continue;
                    }
                    Ok(BulkReply::TooLarge(reason)) => self.document_error(
                        batch,
                        enc.docs[docs[0]].msg,
                        &format!("is larger ({bytes} bytes) than the server accepts"),
                        &reason,
                    )?,
                    Err(e) if e.is_transient() => {
                        unreachable = matches!(e, SinkError::Unreachable { .. });
                        last_reason = e.to_string();
                        retry.extend_from_slice(docs);
                    }
                    Err(e) => return Err(self.fail(e)),
                }
            }
            if retry.is_empty() {
                break;
            }
            if round == 0 && self.stored == stored_before && !resplit {
                // Nothing of the batch is stored (the cluster is unreachable, or refused
                // every document for now): retrying it whole is the host's job, with its
                // backoff. Only the rest of a partly stored batch is resent from here,
                // which the host cannot do.
                return Err(PluginError::transient(self.scrub(&format!(
                    "none of the {} documents of the batch (offsets {}..={}) is stored yet: {last_reason}",
                    batch.len(),
                    first_offset(batch),
                    last_offset(batch),
                ))));
            }
            let retry = enc.with_followers(retry);
            round += 1;
            let wait = backoff(round);
            if started.elapsed() + wait > self.settings.retry_timeout {
                return Err(PluginError::transient(self.scrub(&format!(
                    "{} of {} documents of the batch (offsets {}..={}) are not stored after {:.1?} of retries; last: {last_reason}",
                    retry.len(),
                    batch.len(),
                    first_offset(batch),
                    last_offset(batch),
                    started.elapsed()
                ))));
            }
            tracing::debug!(
                round,
                documents = retry.len(),
                wait = ?wait,
                "retrying documents the cluster refused for now: {}",
                self.scrub(&last_reason)
            );
            tokio::time::sleep(wait).await;
            pending = retry;
        }
        Ok(())
    }
}

fn first_offset(batch: &SinkBatch<'_>) -> u64 {
    batch.messages().first().map_or(0, |m| m.offset())
}

fn last_offset(batch: &SinkBatch<'_>) -> u64 {
    batch.messages().last().map_or(0, |m| m.offset())
}

/// Wait before retry round `round` (from 1): 100 ms doubling up to 5 s, then a random
/// point in its upper half so that sinks refused together do not come back together.
fn backoff(round: u32) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let full = Duration::from_millis(100)
        .saturating_mul(1u32 << round.saturating_sub(1).min(10))
        .min(Duration::from_secs(5));
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(round);
    let fraction = (hasher.finish() % 1000) as u32;
    full / 2 + full / 2 * fraction / 1000
}

/// Percent-encodes a path segment or query value.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Sink for ElasticsearchSink {
    type Config = ElasticsearchSinkConfig;

    fn new(config: ElasticsearchSinkConfig, ctx: &InstanceContext) -> Result<Self, PluginError> {
        let settings = Settings::from_config(config)?;
        Ok(ElasticsearchSink {
            settings,
            instance: ctx.instance_key().to_string(),
            http: None,
            known_indices: HashSet::new(),
            encoded: Encoded::default(),
            stored: 0,
            skipped: 0,
            rejected: Vec::new(),
        })
    }

    /// Connects (`GET /`, logging the server's flavour and version), checks the ingest
    /// pipeline, and checks or creates a fixed index, so a wrong config fails here.
    async fn open(&mut self) -> Result<(), PluginError> {
        let http = self.build_client().await.map_err(|e| self.fail(e))?;
        self.http = Some(http);
        self.hello().await.map_err(|e| self.fail(e))?;
        if let Some(pipeline) = self.settings.pipeline.clone() {
            self.check_pipeline(&pipeline)
                .await
                .map_err(|e| self.fail(e))?;
        }
        if let Some(index) = self.settings.index.fixed().map(str::to_string) {
            self.ensure_index(&index).await.map_err(|e| self.fail(e))?;
        }
        tracing::info!(
            instance = %self.instance,
            index = %self.settings.index.text(),
            nodes = self.settings.nodes.len(),
            "elasticsearch sink open"
        );
        Ok(())
    }

    async fn consume(&mut self, batch: SinkBatch<'_>) -> Result<(), PluginError> {
        if batch.is_empty() {
            return Ok(());
        }
        if self.http.is_none() {
            self.open().await?;
        }
        // What an earlier, failed attempt rejected comes again with this one.
        self.rejected.clear();
        let mut encoded = std::mem::take(&mut self.encoded);
        encoded.encode(&self.settings, &batch);
        let result = self.write(&encoded, &batch).await;
        self.encoded = encoded;
        result
    }

    fn rejected(&mut self) -> Vec<Rejection> {
        std::mem::take(&mut self.rejected)
    }

    async fn close(&mut self) -> Result<(), PluginError> {
        tracing::info!(
            stored = self.stored,
            skipped = self.skipped,
            "elasticsearch sink closing: {} documents stored, {} skipped",
            self.stored,
            self.skipped
        );
        self.http = None;
        Ok(())
    }
}

export_plugin! {
    key: "elasticsearch",
    name: "Elasticsearch / OpenSearch",
    description: "Indexes messages into Elasticsearch or OpenSearch with the _bulk API (per-item retries, no duplicates on redelivery)",
    sink: ElasticsearchSink,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for round in 1..20 {
            let d = backoff(round);
            assert!(d <= Duration::from_secs(5), "{d:?}");
            assert!(d >= Duration::from_millis(50), "{d:?}");
        }
        assert!(backoff(1) <= Duration::from_millis(100));
        assert!(backoff(4) >= Duration::from_millis(400));
    }

    #[test]
    fn escaping() {
        assert_eq!(escape("logs-2024.02.29"), "logs-2024.02.29");
        assert_eq!(escape("a b/c+d"), "a%20b%2Fc%2Bd");
    }
}
