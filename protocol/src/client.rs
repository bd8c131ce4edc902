//! The typed client of the supervisor: every call of the Main API, the Supervisor API
//! and its extensions, one method each, over `reqwest`.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use reqwest::header::{ETAG, IF_NONE_MATCH};
use reqwest::{Certificate, Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;

use crate::routes::{self, Scope};
use crate::types::{
    ActivateRequest, CatalogPage, CatalogQuery, CreateKeyRequest, CreatedKey, Heartbeat,
    HeartbeatAck, InstanceItem, KeyInfo, Problem, SourceCheckpoint, StatusReport, API_KEY_HEADER,
};

/// How long a call may take unless the builder says otherwise; a long poll gets its wait
/// on top.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long connecting may take: a supervisor that does not accept within this is down
/// as far as a node is concerned, and the node retries.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What went wrong talking to the supervisor.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No answer: down, refused, timed out, or a TLS handshake that failed. The text holds
    /// the whole cause chain (reqwest's own says only "error sending request"; the causes
    /// say why: refused, timed out, an untrusted certificate).
    #[error("supervisor unreachable: {0}")]
    Unreachable(String),
    /// The supervisor refused the call: an error status and its RFC 7807 problem document.
    /// An error answer that carries no problem document (a proxy's page, say) becomes an
    /// `about:blank` problem with an empty `code` and the body's start as `reason`.
    #[error("supervisor answered {status}: {}", .problem.reason)]
    Refused {
        /// The HTTP status.
        status: StatusCode,
        /// The problem document.
        problem: Box<Problem>,
    },
    /// An answer that does not parse as what the call promises.
    #[error("supervisor sent a bad answer: {0}")]
    BadAnswer(String),
    /// The client could not be set up (a CA file that cannot be read or holds no
    /// certificate, a TLS backend that cannot start).
    #[error("cannot set up the supervisor client: {0}")]
    Setup(String),
}

impl ClientError {
    /// The HTTP status of a refusal.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The problem document of a refusal.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            ClientError::Refused { problem, .. } => Some(problem),
            _ => None,
        }
    }
}

/// The transport error with its causes, as one line.
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

/// An API key. Its `Debug` does not show it, so a client can be logged.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// A key.
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into())
    }

    /// The key itself, for the header that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<String> for ApiKey {
    fn from(key: String) -> Self {
        ApiKey(key)
    }
}

impl From<&str> for ApiKey {
    fn from(key: &str) -> Self {
        ApiKey(key.to_string())
    }
}

impl From<&String> for ApiKey {
    fn from(key: &String) -> Self {
        ApiKey(key.clone())
    }
}

/// One answer of the instance list.
#[derive(Debug)]
pub enum Assignment {
    /// The instance list changed (or this is the first answer).
    Changed {
        /// Its ETag, to send back as `If-None-Match`.
        etag: Option<String>,
        /// The instances of the deployment.
        instances: Vec<InstanceItem>,
    },
    /// Nothing changed during the wait (304).
    Unchanged,
}

/// How to ask for the instance list.
#[derive(Debug, Clone, Copy, Default)]
pub struct ListQuery<'a> {
    /// The ETag of the list the caller has: the answer is [`Assignment::Unchanged`] while
    /// the list still has it.
    pub if_none_match: Option<&'a str>,
    /// With `if_none_match`, how long to wait for a change before answering `Unchanged`
    /// (whole seconds; the supervisor caps it at [`crate::MAX_WAIT_SECS`]).
    pub wait: Option<Duration>,
    /// Show secret config values (needs `deployment:node`): what a node running the
    /// instances asks for; every other caller sees masks.
    pub reveal_secrets: bool,
    /// Only the instances assigned to this node (what a node running them asks for).
    pub node_id: Option<&'a str>,
}

/// Builds a [`SupervisorClient`].
#[derive(Debug)]
pub struct ClientBuilder {
    base: String,
    deployment_id: u64,
    api_key: ApiKey,
    roots: Vec<Certificate>,
    timeout: Duration,
}

impl ClientBuilder {
    /// The key sent with every call.
    pub fn api_key(mut self, key: impl Into<ApiKey>) -> Self {
        self.api_key = key.into();
        self
    }

    /// Trusts `certs` for TLS, in addition to the system's roots (a private CA).
    pub fn root_certificates(mut self, certs: &[Certificate]) -> Self {
        self.roots.extend_from_slice(certs);
        self
    }

    /// Trusts the PEM certificates of `path` for TLS, in addition to the system's roots.
    pub fn ca_file(mut self, path: &Path) -> Result<Self, ClientError> {
        let pem = std::fs::read(path)
            .map_err(|e| ClientError::Setup(format!("cannot read {}: {e}", path.display())))?;
        let certs = Certificate::from_pem_bundle(&pem)
            .ok()
            .filter(|certs| !certs.is_empty())
            .ok_or_else(|| {
                ClientError::Setup(format!("{} holds no PEM certificate", path.display()))
            })?;
        self.roots.extend(certs);
        Ok(self)
    }

    /// How long one call may take (a long poll gets its wait on top); default
    /// [`DEFAULT_TIMEOUT`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The client.
    pub fn build(self) -> Result<SupervisorClient, ClientError> {
        let mut http = reqwest::Client::builder().connect_timeout(CONNECT_TIMEOUT);
        for cert in self.roots {
            http = http.add_root_certificate(cert);
        }
        let http = http
            .build()
            .map_err(|e| ClientError::Setup(format!("HTTP client: {e}")))?;
        Ok(SupervisorClient {
            http,
            base: self.base,
            deployment_id: self.deployment_id,
            api_key: self.api_key,
            timeout: self.timeout,
        })
    }
}

/// A client of one deployment on one supervisor. Cloning is cheap (the connection pool
/// is shared).
#[derive(Debug, Clone)]
pub struct SupervisorClient {
    http: reqwest::Client,
    base: String,
    deployment_id: u64,
    api_key: ApiKey,
    timeout: Duration,
}

impl SupervisorClient {
    /// A builder for a client of `deployment_id` at `base` (e.g.
    /// `https://supervisor.example:8443`; a trailing `/` is ignored).
    pub fn builder(base: &str, deployment_id: u64) -> ClientBuilder {
        ClientBuilder {
            base: base.trim_end_matches('/').to_string(),
            deployment_id,
            api_key: ApiKey::default(),
            roots: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// A client for `base` with `api_key`, trusting the system's roots and `extra_roots`
    /// for TLS.
    ///
    /// # Panics
    ///
    /// When the TLS backend cannot be initialised, like `reqwest::Client::new`; use
    /// [`SupervisorClient::builder`] to get that as an error.
    pub fn new(
        base: &str,
        deployment_id: u64,
        api_key: impl Into<ApiKey>,
        extra_roots: &[Certificate],
    ) -> Self {
        Self::builder(base, deployment_id)
            .api_key(api_key)
            .root_certificates(extra_roots)
            .build()
            .expect("the HTTP client (TLS backend) initialises")
    }

    /// The same client for another deployment.
    pub fn for_deployment(&self, deployment_id: u64) -> Self {
        Self {
            deployment_id,
            ..self.clone()
        }
    }

    /// The same client calling with another key.
    pub fn with_api_key(&self, api_key: impl Into<ApiKey>) -> Self {
        Self {
            api_key: api_key.into(),
            ..self.clone()
        }
    }

    /// The deployment this client addresses.
    pub fn deployment_id(&self) -> u64 {
        self.deployment_id
    }

    /// The full URL of `path` (a route built by [`crate::routes`]), for a caller that
    /// has to send a request of its own (a test of the HTTP layer itself).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, self.url(path))
            .header(API_KEY_HEADER, self.api_key.expose())
            .timeout(self.timeout)
    }

    async fn send(request: RequestBuilder) -> Result<Response, ClientError> {
        request.send().await.map_err(unreachable)
    }

    /// The refusal an error answer means.
    async fn refused(response: Response) -> ClientError {
        let status = response.status();
        let body = response.bytes().await.unwrap_or_default();
        let problem = serde_json::from_slice::<Problem>(&body).unwrap_or_else(|_| Problem {
            problem_type: "about:blank".to_string(),
            title: status.canonical_reason().unwrap_or_default().to_string(),
            status: status.as_u16(),
            code: String::new(),
            reason: String::from_utf8_lossy(&body).chars().take(200).collect(),
            field: None,
        });
        ClientError::Refused {
            status,
            problem: Box::new(problem),
        }
    }

    /// A successful answer's JSON body as `T`; `what` names the answer in a bad-answer
    /// error.
    async fn json<T: DeserializeOwned>(response: Response, what: &str) -> Result<T, ClientError> {
        if !response.status().is_success() {
            return Err(Self::refused(response).await);
        }
        let body = response.bytes().await.map_err(unreachable)?;
        serde_json::from_slice(&body).map_err(|e| ClientError::BadAnswer(format!("{what}: {e}")))
    }

    /// A successful answer whose body does not matter.
    async fn done(response: Response) -> Result<(), ClientError> {
        if response.status().is_success() {
            Ok(())
        } else {
            Err(Self::refused(response).await)
        }
    }

    // --- Supervisor API: what a node calls -----------------------------------------

    /// The instance list as node `node_id` asks for it: only what is assigned to it,
    /// secret values shown, and with an ETag a long poll that waits up to `wait` for a
    /// change.
    pub async fn instances(
        &self,
        node_id: &str,
        etag: Option<&str>,
        wait: Duration,
    ) -> Result<Assignment, ClientError> {
        self.list(&ListQuery {
            if_none_match: etag,
            wait: Some(wait),
            reveal_secrets: true,
            node_id: Some(node_id),
        })
        .await
    }

    /// The instance list, conditional on an ETag and long-polled as `query` says.
    pub async fn list(&self, query: &ListQuery<'_>) -> Result<Assignment, ClientError> {
        let wait = query.wait.unwrap_or_default();
        let mut request = self
            .request(Method::GET, &routes::instances(self.deployment_id))
            .timeout(self.timeout + wait);
        if query.reveal_secrets {
            request = request.query(&[("reveal_secrets", "true")]);
        }
        if let Some(node_id) = query.node_id {
            request = request.query(&[("node_id", node_id)]);
        }
        if let Some(etag) = query.if_none_match {
            // A wait of 0 would answer at once; a long poll waits at least a second.
            request = request
                .header(IF_NONE_MATCH, etag)
                .query(&[("wait", wait.as_secs().max(1))]);
        }
        let response = Self::send(request).await?;
        if response.status() == StatusCode::NOT_MODIFIED {
            return Ok(Assignment::Unchanged);
        }
        let etag = response
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let instances = Self::json(response, "instance list").await?;
        Ok(Assignment::Changed { etag, instances })
    }

    /// Reports one instance's status on this node. An instance the supervisor no longer
    /// knows (404) counts as acknowledged: there is nobody left to tell.
    pub async fn report_status(
        &self,
        instance_id: u64,
        report: &StatusReport,
    ) -> Result<(), ClientError> {
        let path = routes::instance_status(self.deployment_id, instance_id);
        let response = Self::send(self.request(Method::PUT, &path).json(report)).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(());
        }
        Self::done(response).await
    }

    /// Sends this node's heartbeat; the answer renews the node's source leases.
    pub async fn heartbeat(
        &self,
        node_id: &str,
        heartbeat: &Heartbeat,
    ) -> Result<HeartbeatAck, ClientError> {
        let path = routes::node(self.deployment_id, node_id);
        let response = Self::send(self.request(Method::PUT, &path).json(heartbeat)).await?;
        Self::json(response, "heartbeat answer").await
    }

    /// The checkpoint a source's last lease holder shared, if any.
    pub async fn checkpoint(
        &self,
        instance_id: u64,
    ) -> Result<Option<SourceCheckpoint>, ClientError> {
        let path = routes::instance_checkpoint(self.deployment_id, instance_id);
        let response = Self::send(self.request(Method::GET, &path)).await?;
        if response.status() == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        Self::json(response, "checkpoint").await.map(Some)
    }

    /// Shares a source's checkpoint. Refused (409, code `fenced`) unless
    /// `checkpoint.node_id` holds the source's lease at `checkpoint.epoch`.
    pub async fn save_checkpoint(
        &self,
        instance_id: u64,
        checkpoint: &SourceCheckpoint,
    ) -> Result<(), ClientError> {
        let path = routes::instance_checkpoint(self.deployment_id, instance_id);
        Self::done(Self::send(self.request(Method::PUT, &path).json(checkpoint)).await?).await
    }

    // --- Supervisor API and extensions: what users call ------------------------------

    /// The instance list as users see it (secret values masked).
    pub async fn list_instances(&self) -> Result<Vec<InstanceItem>, ClientError> {
        match self.list(&ListQuery::default()).await? {
            Assignment::Changed { instances, .. } => Ok(instances),
            Assignment::Unchanged => Err(ClientError::BadAnswer(
                "304 Not Modified to a list without If-None-Match".to_string(),
            )),
        }
    }

    /// One instance of the list (there is no route for a single instance).
    pub async fn instance(&self, instance_id: u64) -> Result<Option<InstanceItem>, ClientError> {
        Ok(self
            .list_instances()
            .await?
            .into_iter()
            .find(|i| i.id == instance_id))
    }

    /// Deletes an instance; every node stops it and forgets its local state.
    pub async fn delete_instance(&self, instance_id: u64) -> Result<(), ClientError> {
        let path = routes::instance(self.deployment_id, instance_id);
        Self::done(Self::send(self.request(Method::DELETE, &path)).await?).await
    }

    /// Stores `config` as the instance's next config version; returns the instance.
    pub async fn set_config(
        &self,
        instance_id: u64,
        config: &serde_json::Value,
    ) -> Result<InstanceItem, ClientError> {
        let path = routes::instance_config(self.deployment_id, instance_id);
        let response = Self::send(self.request(Method::PUT, &path).json(config)).await?;
        Self::json(response, "config answer").await
    }

    /// Stops an instance (`inactive`); returns it.
    pub async fn stop(&self, instance_id: u64) -> Result<InstanceItem, ClientError> {
        let path = routes::instance_stop(self.deployment_id, instance_id);
        Self::json(
            Self::send(self.request(Method::POST, &path)).await?,
            "stop answer",
        )
        .await
    }

    /// Starts a stopped instance; returns it.
    pub async fn start(&self, instance_id: u64) -> Result<InstanceItem, ClientError> {
        let path = routes::instance_start(self.deployment_id, instance_id);
        Self::json(
            Self::send(self.request(Method::POST, &path)).await?,
            "start answer",
        )
        .await
    }

    /// Restarts an instance on every node it runs on (a failed one included); returns it.
    pub async fn restart(&self, instance_id: u64) -> Result<InstanceItem, ClientError> {
        let path = routes::instance_restart(self.deployment_id, instance_id);
        Self::json(
            Self::send(self.request(Method::POST, &path)).await?,
            "restart answer",
        )
        .await
    }

    /// A sink's offsets per partition, or a source's saved state, as the nodes last
    /// reported them.
    pub async fn offsets(&self, instance_id: u64) -> Result<crate::InstanceOffsets, ClientError> {
        let path = routes::instance_offsets(self.deployment_id, instance_id);
        Self::json(
            Self::send(self.request(Method::GET, &path)).await?,
            "offsets answer",
        )
        .await
    }

    /// Sets a stopped instance's offsets or state for its next start (`None`: resets
    /// them); returns the instance.
    pub async fn change_offsets(
        &self,
        instance_id: u64,
        change: Option<&crate::OffsetsChange>,
    ) -> Result<InstanceItem, ClientError> {
        let path = routes::instance_offsets(self.deployment_id, instance_id);
        let request = match change {
            Some(change) => self.request(Method::PATCH, &path).json(change),
            None => self.request(Method::DELETE, &path),
        };
        Self::json(Self::send(request).await?, "offsets answer").await
    }

    /// Restarts every running instance of the deployment, or only the failed ones;
    /// returns those restarted.
    pub async fn restart_all(&self, only_failed: bool) -> Result<Vec<InstanceItem>, ClientError> {
        let path = routes::instances_restart(self.deployment_id);
        Self::json(
            Self::send(
                self.request(Method::POST, &path)
                    .query(&[("only_failed", only_failed)]),
            )
            .await?,
            "restart answer",
        )
        .await
    }

    // --- Main API --------------------------------------------------------------------

    /// One page of the deployment's connector catalog.
    pub async fn catalog(
        &self,
        scope: &Scope,
        query: &CatalogQuery,
    ) -> Result<CatalogPage, ClientError> {
        let path = routes::catalog(scope, self.deployment_id);
        let response = Self::send(self.request(Method::GET, &path).query(query)).await?;
        Self::json(response, "catalog page").await
    }

    /// Activates a connector: a new instance, `pending` until the nodes run it.
    pub async fn activate(
        &self,
        scope: &Scope,
        request: &ActivateRequest,
    ) -> Result<InstanceItem, ClientError> {
        let path = routes::activate(scope, self.deployment_id);
        let response = Self::send(self.request(Method::POST, &path).json(request)).await?;
        Self::json(response, "activate answer").await
    }

    // --- API keys (extension) --------------------------------------------------------

    /// Creates a key; the answer is the only time the key itself is visible.
    pub async fn create_key(&self, request: &CreateKeyRequest) -> Result<CreatedKey, ClientError> {
        let response = Self::send(self.request(Method::POST, routes::KEYS).json(request)).await?;
        Self::json(response, "created key").await
    }

    /// Every key, without the keys themselves.
    pub async fn list_keys(&self) -> Result<Vec<KeyInfo>, ClientError> {
        Self::json(
            Self::send(self.request(Method::GET, routes::KEYS)).await?,
            "key list",
        )
        .await
    }

    /// Revokes the key with id `key_id`.
    pub async fn revoke_key(&self, key_id: &str) -> Result<(), ClientError> {
        let path = routes::key(key_id);
        Self::done(Self::send(self.request(Method::DELETE, &path)).await?).await
    }
}
