//! Request extractors that answer bad input with a problem document naming the field.
//!
//! axum's stock `Json`, `Path` and `Query` reject with plain-text bodies and, for JSON,
//! with 415/422; the API promises `application/problem+json` and 400 for every bad input,
//! so these extractors take the raw parts and do the parsing themselves.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::problem::ApiError;

/// A JSON body of type `T`. The `Content-Type` header is not checked (curl's `-d` sends a
/// form type by default); the body must parse as `T`, within the body limit.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(
                    "request body is larger than the supervisor accepts (1 MiB by default)"
                        .to_string(),
                )
            } else {
                ApiError::BadRequest {
                    code: "malformed_body",
                    reason: format!("could not read the request body: {}", rejection.body_text()),
                    field: None,
                }
            }
        })?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses `bytes` as `T`, naming the field at fault on a type error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest {
            code: "malformed_json",
            reason: "the request body is empty; send a JSON object".to_string(),
            field: None,
        });
    }
    // serde would read a struct from a JSON array too; every body of this API is an object.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        if let Err(err) = serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
            return Err(malformed(&err));
        }
        return Err(ApiError::BadRequest {
            code: "invalid_body",
            reason: "the request body must be a JSON object".to_string(),
            field: None,
        });
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_data() && path != "." {
            ApiError::invalid_field(path.clone(), format!("{path}: {}", strip_position(&inner)))
        } else if inner.is_data() {
            // serde reports a missing or unknown field at the parent; take its name from
            // the message.
            ApiError::BadRequest {
                code: "invalid_field",
                field: missing_field(&inner.to_string()),
                reason: strip_position(&inner),
            }
        } else {
            malformed(&inner)
        }
    })?;
    de.end().map_err(|e| malformed(&e))?;
    Ok(value)
}

fn malformed(err: &serde_json::Error) -> ApiError {
    ApiError::BadRequest {
        code: "malformed_json",
        reason: format!("the request body is not valid JSON: {err}"),
        field: None,
    }
}

fn strip_position(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

fn missing_field(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("missing field `")
        .or_else(|| message.strip_prefix("unknown field `"))?;
    rest.split('`').next().map(str::to_string)
}

/// The query string as name → value (the last one wins when a name repeats).
pub struct QueryMap(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryMap {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(query).map_err(|e| ApiError::BadRequest {
                code: "malformed_query",
                reason: format!("the query string does not parse: {e}"),
                field: None,
            })?;
        Ok(QueryMap(pairs.into_iter().collect()))
    }
}

impl QueryMap {
    /// An optional boolean parameter: `true` or `false`.
    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.0.get(name).map(String::as_str) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(raw) => Err(ApiError::invalid_field(
                name,
                format!("{name} must be `true` or `false`, got `{raw}`"),
            )),
        }
    }

    /// An optional unsigned integer parameter within `min..=max`.
    pub fn u64_in(&self, name: &str, min: u64, max: u64) -> Result<Option<u64>, ApiError> {
        let Some(raw) = self.0.get(name) else {
            return Ok(None);
        };
        let value: u64 = raw.parse().map_err(|_| {
            ApiError::invalid_field(name, format!("{name} must be a whole number, got `{raw}`"))
        })?;
        if !(min..=max).contains(&value) {
            return Err(ApiError::invalid_field(
                name,
                format!("{name} must be between {min} and {max}, got {value}"),
            ));
        }
        Ok(Some(value))
    }

    /// An optional string parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// The ids in a route's path, parsed: numeric ids must be 64-bit unsigned integers.
#[derive(Debug)]
pub struct Ids {
    /// `{deployment_id}`.
    pub deployment_id: u64,
    /// `{instance_id}`, on instance routes.
    pub instance_id: Option<u64>,
    /// `{node_id}`, on node routes.
    pub node_id: Option<String>,
}

impl Ids {
    /// The instance id; routes without one never call this.
    pub fn instance(&self) -> u64 {
        self.instance_id.expect("route has {instance_id}")
    }
}

fn parse_id(name: &str, raw: &str) -> Result<u64, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::invalid_field(
            name,
            format!("{name} must be a 64-bit unsigned integer, got `{raw}`"),
        )
    })
}

impl<S: Send + Sync> FromRequestParts<S> for Ids {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest {
                code: "invalid_path",
                reason: format!("the path does not parse: {}", e.body_text()),
                field: None,
            })?;
        let mut ids = Ids {
            deployment_id: 0,
            instance_id: None,
            node_id: None,
        };
        for (name, value) in &params {
            match name {
                "deployment_id" => ids.deployment_id = parse_id(name, value)?,
                "instance_id" => ids.instance_id = Some(parse_id(name, value)?),
                "node_id" => {
                    crate::validate::key_like(name, value)?;
                    ids.node_id = Some(value.to_string());
                }
                // Tenant, division and environment only scope the Main API's paths here, but
                // they must still be ids.
                "tenant_id" | "division_id" | "environment_id" => {
                    crate::validate::key_like(name, value)?
                }
                _ => {}
            }
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ActivateRequest;

    fn field_of(body: &str) -> (String, Option<String>) {
        match parse_json::<ActivateRequest>(body.as_bytes()) {
            Err(ApiError::BadRequest { code, field, .. }) => (code.to_string(), field),
            other => panic!("expected 400, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            field_of(r#"{"connector_key": 5, "connector_type": "sink"}"#),
            ("invalid_field".into(), Some("connector_key".into()))
        );
        assert_eq!(
            field_of(r#"{"connector_key": "pg", "connector_type": "tap"}"#),
            ("invalid_field".into(), Some("connector_type".into()))
        );
        assert_eq!(
            field_of(r#"{"connector_type": "sink"}"#),
            ("invalid_field".into(), Some("connector_key".into()))
        );
        assert_eq!(field_of("{"), ("malformed_json".into(), None));
        assert_eq!(field_of(""), ("malformed_json".into(), None));
        assert_eq!(
            field_of(r#"{"connector_key": "pg", "connector_type": "sink"} x"#),
            ("malformed_json".into(), None)
        );
    }
}
