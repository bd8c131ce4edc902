//! Errors as RFC 7807 problem documents (`application/problem+json`).
//!
//! Every failing call, including axum's own rejections and unknown routes, answers with a
//! [`Problem`] so clients parse one error shape.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::api::Problem;
use crate::store::StoreError;

pub use ld_protocol::PROBLEM_JSON;

/// An error a handler answers with; turns into a problem document.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request was malformed; `field` names the input at fault when there is one.
    #[error("{reason}")]
    BadRequest {
        /// Stable code, e.g. `invalid_field`, `malformed_json`.
        code: &'static str,
        /// What was wrong.
        reason: String,
        /// The field at fault.
        field: Option<String>,
    },
    /// No `ld-api-key` header, or an unknown key.
    #[error("{0}")]
    Unauthorized(String),
    /// The key lacks the permission the call needs.
    #[error("{0}")]
    Forbidden(String),
    /// The addressed resource does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The method is not served on this path.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The request conflicts with stored state (e.g. an instance key already taken).
    #[error("{reason}")]
    Conflict {
        /// What conflicts.
        reason: String,
        /// The field at fault.
        field: Option<String>,
    },
    /// A node that no longer holds a source's lease tried to act for it (code `fenced`).
    #[error("{0}")]
    Fenced(String),
    /// The body is larger than the server accepts.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// Too many failed authentications from the caller's address.
    #[error("{reason}")]
    TooManyRequests {
        /// What to do.
        reason: String,
        /// Seconds until a call may succeed again (`Retry-After`).
        retry_after_secs: u64,
    },
    /// The store failed; the details are logged, not sent.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl ApiError {
    /// A 400 naming the field at fault.
    pub fn invalid_field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code: "invalid_field",
            reason: reason.into(),
            field: Some(field.into()),
        }
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } | ApiError::Fenced(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. } => code,
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::Conflict { .. } => "conflict",
            ApiError::Fenced(_) => "fenced",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::TooManyRequests { .. } => "too_many_requests",
            ApiError::Store(_) => "internal",
        }
    }

    /// The problem document for this error.
    pub fn to_problem(&self) -> Problem {
        let status = self.status();
        let field = match self {
            ApiError::BadRequest { field, .. } | ApiError::Conflict { field, .. } => field.clone(),
            _ => None,
        };
        let reason = match self {
            // Store details may name paths on the server; keep them in the log.
            ApiError::Store(_) => "the supervisor's store failed; see its log".to_string(),
            other => other.to_string(),
        };
        let code = self.code();
        Problem {
            problem_type: format!("https://docs.laserdata.cloud/problems/{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            code: code.to_string(),
            reason,
            field,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Store(err) = &self {
            tracing::error!(error = %err, "store failure");
        }
        let status = self.status();
        let mut response = (status, Json(self.to_problem())).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let ApiError::TooManyRequests {
            retry_after_secs, ..
        } = &self
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
        response
    }
}
