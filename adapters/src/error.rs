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
