//! `AdapterError`: what went wrong talking to a provider, classified so callers
//! (and the retry loop) know whether trying again can help.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AdapterError {
    /// The provider has no such contact.
    #[error("not found upstream")]
    NotFound,
    /// The provider refused the connection's credentials (401/403).
    #[error("the provider refused the credentials (HTTP {status})")]
    Unauthorized { status: u16 },
    /// The provider does not know the connection's session (the Gateway's 404
    /// `session not found`): the connection is wrong, not the record asked for.
    #[error("the provider has no such session: {message}")]
    SessionMissing { message: String },
    /// Still throttled after the retries allowed.
    #[error("rate limited upstream; retry after {retry_after:?}")]
    RateLimited { retry_after: Option<Duration> },
    /// No answer within the deadline.
    #[error("the provider did not answer in time")]
    Timeout,
    /// The provider could not be reached at all (connection refused, DNS, TLS).
    #[error("the provider is unreachable: {message}")]
    Unreachable { message: String },
    /// Any other error answer, with the provider's own code and message.
    #[error("the provider answered HTTP {status}: {code:?} {message}")]
    Upstream {
        status: u16,
        code: Option<String>,
        message: String,
    },
    /// The provider rejected the input (its validation error), with per-field details.
    #[error("the provider rejected the input: {message}")]
    Rejected {
        status: u16,
        message: String,
        fields: serde_json::Value,
    },
    /// A body we could not read, naming what was wrong.
    #[error("unexpected response body: {detail}")]
    Decode { detail: String },
    /// The provider cannot do this operation.
    #[error("the provider does not support {operation}")]
    Unsupported { operation: &'static str },
    /// The request could not be built (an id or input the provider cannot take).
    #[error("invalid request: {0}")]
    InvalidInput(String),
}

impl AdapterError {
    /// Worth retrying later (throttling and transient faults), as opposed to a client error.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::RateLimited { .. } | Self::Timeout | Self::Unreachable { .. } => true,
            Self::Upstream { status, .. } => *status >= 500,
            _ => false,
        }
    }

    /// The same error, reported with the status the provider actually sent
    /// (for answers classified as another status would be).
    pub fn with_status(self, actual: u16) -> Self {
        match self {
            Self::Rejected {
                message, fields, ..
            } => Self::Rejected {
                status: actual,
                message,
                fields,
            },
            Self::Unauthorized { .. } => Self::Unauthorized { status: actual },
            Self::Upstream { code, message, .. } => Self::Upstream {
                status: actual,
                code,
                message,
            },
            other => other,
        }
    }

    pub fn decode(detail: impl Into<String>) -> Self {
        Self::Decode {
            detail: detail.into(),
        }
    }
}

/// Deserializes `value` into `T`, naming the JSON path that failed.
pub fn from_value<T: serde::de::DeserializeOwned>(
    what: &str,
    value: serde_json::Value,
) -> Result<T, AdapterError> {
    serde_path_to_error::deserialize(value)
        .map_err(|e| AdapterError::decode(format!("{what}: at `{}`: {}", e.path(), e.inner())))
}

/// Parses a body as JSON, naming what was expected when it is not.
pub fn parse_json(what: &str, body: &[u8]) -> Result<serde_json::Value, AdapterError> {
    serde_json::from_slice(body).map_err(|e| {
        let preview: String = String::from_utf8_lossy(&body[..body.len().min(80)]).into();
        AdapterError::decode(format!("{what}: not JSON ({e}); body starts {preview:?}"))
    })
}

/// Parses a body straight into `T` (no JSON tree in between), naming what was
/// expected and where it did not fit.
pub fn parse_typed<T: serde::de::DeserializeOwned>(
    what: &str,
    body: &[u8],
) -> Result<T, AdapterError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        if e.inner().is_syntax() || e.inner().is_eof() {
            let preview: String = String::from_utf8_lossy(&body[..body.len().min(80)]).into();
            AdapterError::decode(format!(
                "{what}: not JSON ({}); body starts {preview:?}",
                e.inner()
            ))
        } else {
            AdapterError::decode(format!("{what}: at `{}`: {}", e.path(), e.inner()))
        }
    })
}

/// Maps every item of a list, naming the failing item's index in a decode error.
pub fn map_items<T>(
    list: &str,
    items: Vec<serde_json::Value>,
    mut map: impl FnMut(serde_json::Value) -> Result<T, AdapterError>,
) -> Result<Vec<T>, AdapterError> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, raw)| {
            map(raw).map_err(|e| match e {
                AdapterError::Decode { detail } => {
                    AdapterError::decode(format!("{list}[{i}]: {detail}"))
                }
                other => other,
            })
        })
        .collect()
}

/// What a provider's error body said, read by each provider from its own shape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ErrorReport {
    pub code: Option<String>,
    pub message: Option<String>,
    /// Per-field details, when the provider gives them.
    pub fields: serde_json::Value,
}

/// The one mapping of an error answer, whichever provider sent it: 401/403 →
/// `Unauthorized`, 404 → `NotFound`, 400/422 → `Rejected` (with the fields), any
/// other status → `Upstream`. A body without a message is quoted (200 bytes).
pub fn classify(status: u16, body: &[u8], report: ErrorReport) -> AdapterError {
    let message = report
        .message
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
    match status {
        401 | 403 => AdapterError::Unauthorized { status },
        404 => AdapterError::NotFound,
        400 | 422 => AdapterError::Rejected {
            status,
            message,
            fields: report.fields,
        },
        status => AdapterError::Upstream {
            status,
            code: report.code,
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_map_by_status_and_keep_the_providers_words() {
        let report = |m: &str| ErrorReport {
            code: Some("X".into()),
            message: Some(m.into()),
            fields: serde_json::json!({"phone": "taken"}),
        };
        assert_eq!(
            classify(403, b"", report("no")),
            AdapterError::Unauthorized { status: 403 }
        );
        assert_eq!(classify(404, b"", report("gone")), AdapterError::NotFound);
        assert!(matches!(
            classify(422, b"", report("bad")),
            AdapterError::Rejected { status: 422, ref message, .. } if message == "bad"
        ));
        assert!(matches!(
            classify(503, b"down for maintenance", ErrorReport::default()),
            AdapterError::Upstream { status: 503, ref message, .. } if message == "down for maintenance"
        ));
    }
}
