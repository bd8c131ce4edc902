//! The Supervisor API client: the long-polled instance list, status reports and
//! heartbeats.

use std::time::Duration;

use ld_supervisor::api::{Heartbeat, InstanceItem, StatusReport, API_KEY_HEADER};
use reqwest::StatusCode;

use crate::config::Secret;

/// What went wrong talking to the supervisor.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No answer (down, refused, timed out).
    #[error("supervisor unreachable: {0}")]
    Unreachable(String),
    /// An error status, with the problem's reason when it sent one.
    #[error("supervisor answered {status}: {reason}")]
    Status {
        /// HTTP status.
        status: StatusCode,
        /// The problem's reason, or the body's start.
        reason: String,
    },
    /// An answer that does not parse.
    #[error("supervisor sent a bad answer: {0}")]
    BadAnswer(String),
}

/// The error with its causes (reqwest's own text says only "error sending request";
/// the cause says why: refused, timed out, an untrusted certificate).
fn unreachable(error: reqwest::Error) -> ClientError {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    ClientError::Unreachable(text)
}

/// One answer of the long poll.
#[derive(Debug)]
pub enum Assignment {
    /// The instance list changed (or this is the first answer).
    Changed {
        /// Its ETag, to send back as `If-None-Match`.
        etag: Option<String>,
        /// The instances of the deployment.
        instances: Vec<InstanceItem>,
    },
    /// Nothing changed during the wait.
    Unchanged,
}

/// A client of one deployment's Supervisor API.
#[derive(Clone)]
pub struct SupervisorClient {
    http: reqwest::Client,
    base: String,
    deployment_id: u64,
    api_key: Secret,
}

impl SupervisorClient {
    /// A client for `base` (e.g. `https://supervisor.example:8443`), trusting the
    /// system's roots and `extra_roots` for TLS.
    pub fn new(
        base: &str,
        deployment_id: u64,
        api_key: Secret,
        extra_roots: &[reqwest::Certificate],
    ) -> Self {
        let mut http = reqwest::Client::builder().connect_timeout(Duration::from_secs(5));
        for cert in extra_roots {
            http = http.add_root_certificate(cert.clone());
        }
        Self {
            http: http.build().expect("HTTP client"),
            base: base.trim_end_matches('/').to_string(),
            deployment_id,
            api_key,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/deployments/{}{path}", self.base, self.deployment_id)
    }

    async fn problem(response: reqwest::Response) -> ClientError {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        let reason = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("reason").and_then(|r| r.as_str()).map(str::to_string))
            .unwrap_or_else(|| body.chars().take(200).collect());
        ClientError::Status { status, reason }
    }

    /// The instance list; with an ETag, waits up to `wait` for a change.
    pub async fn instances(
        &self,
        etag: Option<&str>,
        wait: Duration,
    ) -> Result<Assignment, ClientError> {
        let mut request = self
            .http
            .get(self.url("/connectors/instances"))
            // The node runs the instances: it needs the secret values the list masks.
            .query(&[("reveal_secrets", "true")])
            .header(API_KEY_HEADER, self.api_key.expose())
            .timeout(wait + Duration::from_secs(10));
        if let Some(etag) = etag {
            request = request
                .header(reqwest::header::IF_NONE_MATCH, etag)
                .query(&[("wait", wait.as_secs().max(1))]);
        }
        let response = request.send().await.map_err(unreachable)?;
        match response.status() {
            StatusCode::NOT_MODIFIED => Ok(Assignment::Unchanged),
            StatusCode::OK => {
                let etag = response
                    .headers()
                    .get(reqwest::header::ETAG)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let body = response.bytes().await.map_err(unreachable)?;
                let instances: Vec<InstanceItem> = serde_json::from_slice(&body)
                    .map_err(|e| ClientError::BadAnswer(format!("instance list: {e}")))?;
                Ok(Assignment::Changed { etag, instances })
            }
            _ => Err(Self::problem(response).await),
        }
    }

    /// Reports one instance's status on this node. An instance the supervisor no longer
    /// knows counts as acknowledged.
    pub async fn report_status(
        &self,
        instance_id: u64,
        report: &StatusReport,
    ) -> Result<(), ClientError> {
        let response = self
            .http
            .put(self.url(&format!("/connectors/instances/{instance_id}/status")))
            .header(API_KEY_HEADER, self.api_key.expose())
            .timeout(Duration::from_secs(10))
            .json(report)
            .send()
            .await
            .map_err(unreachable)?;
        if response.status().is_success() || response.status() == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(Self::problem(response).await)
        }
    }

    /// Sends this node's heartbeat.
    pub async fn heartbeat(&self, node_id: &str, heartbeat: &Heartbeat) -> Result<(), ClientError> {
        let response = self
            .http
            .put(self.url(&format!("/nodes/{node_id}")))
            .header(API_KEY_HEADER, self.api_key.expose())
            .timeout(Duration::from_secs(10))
            .json(heartbeat)
            .send()
            .await
            .map_err(unreachable)?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(Self::problem(response).await)
        }
    }
}
