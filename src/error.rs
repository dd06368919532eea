//! `ApiError`, the one error type that becomes an HTTP response, and the JSON
//! envelope every error is answered with: `{"error": {"code", "message", "details"}}`.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use unicontacts_adapters::AdapterError;

use crate::providers::Unusable;
use crate::store::StoreError;
use crate::sync::BeginError;

/// Every error code of the API (the `code` of the error envelope), each with its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
    UnsupportedByProvider,
    RateLimited,
    Internal,
    UpstreamError,
    /// The provider does not know the connection's session.
    ConnectionSessionMissing,
    ServiceUnavailable,
    UpstreamUnavailable,
    UpstreamTimeout,
    IdempotencyKeyReused,
    IdempotencyInProgress,
    /// The contact holds an identifier of an erased person.
    Suppressed,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict => "conflict",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::ValidationFailed => "validation_failed",
            Self::UnsupportedByProvider => "unsupported_by_provider",
            Self::RateLimited => "rate_limited",
            Self::Internal => "internal",
            Self::UpstreamError => "upstream_error",
            Self::ConnectionSessionMissing => "connection_session_missing",
            Self::ServiceUnavailable => "service_unavailable",
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::IdempotencyInProgress => "idempotency_in_progress",
            Self::Suppressed => "suppressed",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict | Self::IdempotencyInProgress | Self::Suppressed => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::ValidationFailed | Self::UnsupportedByProvider | Self::IdempotencyKeyReused => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::UpstreamError | Self::ConnectionSessionMissing => StatusCode::BAD_GATEWAY,
            Self::ServiceUnavailable | Self::UpstreamUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The code for a status that reached us without one (actix's own 404/405, say).
    pub fn for_status(status: StatusCode) -> Self {
        match status.as_u16() {
            401 => Self::Unauthorized,
            403 => Self::Forbidden,
            404 => Self::NotFound,
            405 => Self::MethodNotAllowed,
            409 => Self::Conflict,
            413 => Self::PayloadTooLarge,
            415 => Self::UnsupportedMediaType,
            422 => Self::ValidationFailed,
            429 => Self::RateLimited,
            502 => Self::UpstreamError,
            503 => Self::ServiceUnavailable,
            504 => Self::UpstreamTimeout,
            s if (400..500).contains(&s) => Self::BadRequest,
            _ => Self::Internal,
        }
    }
}

/// The error envelope, as documented in the OpenAPI spec.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// `details` of an error: what its code needs (the provider and operation of
/// `unsupported_by_provider`, the running run of a 409, …).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetails {
    /// For `validation_failed`: every field that is wrong, by its path
    /// (`settings.default_country`, `contacts[3].phone`, `(body)`), with what is
    /// wrong with it.
    #[schema(example = json!({"name": ["is required"]}))]
    fields: Option<std::collections::BTreeMap<String, Vec<String>>>,
    /// For `unsupported_by_provider`: the operation, the provider, the fields it
    /// cannot write and those it can.
    operation: Option<String>,
    #[schema(value_type = Option<unicontacts_adapters::ProviderKind>)]
    provider: Option<String>,
    unsupported_fields: Option<Vec<String>>,
    writable: Option<Vec<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable code, e.g. `not_found`, `validation_failed`.
    #[schema(example = "not_found")]
    pub code: String,
    /// Human-readable explanation.
    #[schema(example = "connection not found")]
    pub message: String,
    /// Structured details; for `validation_failed`, `fields`.
    #[schema(value_type = ErrorDetails)]
    pub details: Value,
    /// The request's id (as in its `x-request-id` header): quote it when asking
    /// about the request; the logs carry it too.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "01jd2x9v8c0000000000000000")]
    pub request_id: Option<String>,
}

/// An error answered to the client. The cause chain, when there is one, goes to
/// the log only; the body carries the code and a message meant for clients.
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub details: Value,
    pub retry_after: Option<u64>,
    cause: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: json!({}),
            retry_after: None,
            cause: None,
        }
    }

    /// Keeps `cause` for the log (never the body).
    pub fn with_cause(mut self, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.cause = Some(Box::new(cause));
        self
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds.max(1));
        self
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    /// 422 with a map of field path → messages.
    pub fn validation(fields: FieldErrors) -> Self {
        Self::new(ErrorCode::ValidationFailed, fields.summary()).with_details(fields.into_json())
    }

    /// 500: a bug on our side. The cause is logged, never sent.
    pub fn internal(cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            cause: Some(Box::new(cause)),
            ..Self::new(ErrorCode::Internal, "internal error")
        }
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.as_str().to_string(),
                message: self.message.clone(),
                details: self.details.clone(),
                request_id: crate::telemetry::request_id(),
            },
        }
    }
}

impl std::fmt::Debug for ApiError {
    // Debug prints the whole cause chain for the logs (zero2prod's `error_chain_fmt`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)?;
        let mut cause: Option<&(dyn std::error::Error + 'static)> = self
            .cause
            .as_deref()
            .map(|c| c as &(dyn std::error::Error + 'static));
        while let Some(c) = cause {
            write!(f, "\n  caused by: {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|c| c as &(dyn std::error::Error + 'static))
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        if self.code == ErrorCode::Internal {
            tracing::error!(error = ?self, "request failed with an internal error");
        } else if self.cause.is_some() {
            tracing::warn!(error = ?self, "request failed");
        }
        let mut res = HttpResponse::build(self.status_code());
        if let Some(secs) = self.retry_after {
            res.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if self.code == ErrorCode::Unauthorized {
            res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        res.json(self.body())
    }
}

impl From<StoreError> for ApiError {
    /// An unreachable database is a 503 with `Retry-After`; a broken uniqueness
    /// rule a 409 with its message; anything else (a corrupt row, a failed query)
    /// is a bug on our side: a 500, logged with its cause.
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => {
                Self::new(ErrorCode::ServiceUnavailable, "the database is unavailable")
                    .with_retry_after(1)
                    .with_cause(e)
            }
            StoreError::Conflict(msg) => Self::conflict(msg),
            StoreError::ConnectionGone => Self::not_found("connection"),
            StoreError::Suppressed => Self::new(
                ErrorCode::Suppressed,
                "the contact holds an identifier of a person who was erased; it is not stored (lift the suppression with DELETE /v1/admin/suppressions/{id} to allow it)",
            ),
            StoreError::Refused {
                status,
                message,
                details,
            } => Self::new(
                ErrorCode::for_status(StatusCode::from_u16(status).unwrap_or(StatusCode::CONFLICT)),
                message,
            )
            .with_details(details),
            other => Self::internal(other),
        }
    }
}

impl From<AdapterError> for ApiError {
    /// What a provider's failure means to our client. The provider's own words go
    /// to the log with the cause; the body says what happened in our terms.
    fn from(e: AdapterError) -> Self {
        let err = match &e {
            AdapterError::NotFound => Self::new(ErrorCode::NotFound, "not found at the provider"),
            AdapterError::InvalidInput(m) => Self::new(ErrorCode::ValidationFailed, m.clone()),
            AdapterError::Unauthorized { .. } => Self::new(
                ErrorCode::UpstreamError,
                "the provider refused this connection's credentials; update them with PATCH /v1/admin/connections/{id}",
            ),
            AdapterError::SessionMissing { .. } => Self::new(
                ErrorCode::ConnectionSessionMissing,
                "the provider does not know this connection's session; set the right one with \
                 PATCH /v1/admin/connections/{id} (credentials.session)",
            ),
            AdapterError::Timeout => {
                Self::new(ErrorCode::UpstreamTimeout, "the provider did not answer in time")
            }
            AdapterError::RateLimited { retry_after } => Self::new(
                ErrorCode::UpstreamUnavailable,
                "the provider's rate limit for this connection is exhausted",
            )
            .with_retry_after(
                retry_after
                    .map(|d| d.as_secs_f64().ceil() as u64)
                    .unwrap_or(1),
            ),
            AdapterError::Unreachable { .. } => Self::new(
                ErrorCode::UpstreamUnavailable,
                "the provider cannot be reached",
            ),
            AdapterError::Upstream { status, .. } => Self::new(
                ErrorCode::UpstreamError,
                format!("the provider answered HTTP {status}"),
            ),
            AdapterError::Decode { .. } => Self::new(
                ErrorCode::UpstreamError,
                "the provider's answer could not be read",
            ),
            AdapterError::Rejected { message, .. } => Self::new(
                ErrorCode::UpstreamError,
                format!("the provider rejected the request: {message}"),
            ),
            AdapterError::Unsupported { operation } => Self::new(
                ErrorCode::UnsupportedByProvider,
                format!("the provider does not support {operation}"),
            )
            .with_details(json!({ "operation": operation })),
        };
        err.with_upstream_trace().with_cause(e)
    }
}

impl ApiError {
    /// Adds the provider's trace id of the failed call behind this error, when
    /// it sent one, as `details.upstream_trace_id` (to quote to the provider).
    pub fn with_upstream_trace(mut self) -> Self {
        if let Some(id) = unicontacts_adapters::upstream::last_trace_id() {
            if !self.details.is_object() {
                self.details = json!({});
            }
            self.details["upstream_trace_id"] = Value::String(id);
        }
        self
    }
}

impl From<Unusable> for ApiError {
    /// The stored connection cannot be used: 502, in the words of `Unusable`.
    fn from(e: Unusable) -> Self {
        Self::new(ErrorCode::UpstreamError, e.to_string()).with_cause(e)
    }
}

impl From<BeginError> for ApiError {
    /// Why a sync run did not begin: 409 while another runs (naming it), 502 when
    /// the stored connection cannot be used (its failed run is recorded).
    fn from(e: BeginError) -> Self {
        match e {
            BeginError::Busy(run) => ApiError::conflict(format!(
                "a sync of this connection is already running ({run})"
            )),
            BeginError::NotDue => ApiError::conflict("the connection was synced moments ago"),
            BeginError::Unusable(run) => ApiError::new(
                ErrorCode::UpstreamError,
                run.error
                    .unwrap_or_else(|| "the connection cannot be used".into()),
            ),
            BeginError::Store(e) => e.into(),
        }
    }
}

/// Per-field validation messages, keyed by dotted field path (`settings.default_country`).
#[derive(Debug, Default)]
pub struct FieldErrors(std::collections::BTreeMap<String, Vec<String>>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.entry(field.into()).or_default().push(message.into());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every message, in field order.
    pub fn messages(&self) -> Vec<String> {
        self.0.values().flatten().cloned().collect()
    }

    /// Whether `field` has a message already.
    pub fn has(&self, field: &str) -> bool {
        self.0.contains_key(field)
    }

    /// The fields with messages, in order.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// What `value`'s `validator` rules find (nothing: empty).
    pub fn of<T: validator::Validate>(value: &T) -> Self {
        let mut fields = Self::new();
        if let Err(errors) = value.validate() {
            fields.extend_from("", &errors);
        }
        fields
    }

    /// One field's message, as the whole 422.
    pub fn single(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        let mut f = Self::new();
        f.add(field, message);
        ApiError::validation(f)
    }

    /// Keeps the fields `keep` says yes to.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.0.retain(|field, _| keep(field));
    }

    /// Adds every message of `other`.
    pub fn merge(&mut self, other: FieldErrors) {
        for (field, messages) in other.0 {
            self.0.entry(field).or_default().extend(messages);
        }
    }

    /// `Ok(())` when nothing was added, else the 422 to answer.
    pub fn into_result(self) -> Result<(), ApiError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(ApiError::validation(self))
        }
    }

    /// Fold in what the `validator` crate found, flattening nested structs to dotted paths.
    pub fn extend_from(&mut self, prefix: &str, errors: &validator::ValidationErrors) {
        use validator::ValidationErrorsKind;
        for (field, kind) in errors.errors() {
            let path = if prefix.is_empty() {
                field.to_string()
            } else {
                format!("{prefix}.{field}")
            };
            match kind {
                ValidationErrorsKind::Field(list) => {
                    for e in list {
                        let msg = e
                            .message
                            .as_ref()
                            .map(|m| m.to_string())
                            .unwrap_or_else(|| format!("is invalid ({})", e.code));
                        self.add(path.clone(), msg);
                    }
                }
                ValidationErrorsKind::Struct(inner) => self.extend_from(&path, inner),
                ValidationErrorsKind::List(items) => {
                    for (i, inner) in items {
                        self.extend_from(&format!("{path}[{i}]"), inner);
                    }
                }
            }
        }
    }

    fn summary(&self) -> String {
        let fields: Vec<&str> = self.0.keys().map(String::as_str).collect();
        format!("invalid value for {}", fields.join(", "))
    }

    fn into_json(self) -> Value {
        json!({ "fields": self.0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_maps_back_from_its_status() {
        for code in [
            ErrorCode::BadRequest,
            ErrorCode::Unauthorized,
            ErrorCode::Forbidden,
            ErrorCode::NotFound,
            ErrorCode::MethodNotAllowed,
            ErrorCode::Conflict,
            ErrorCode::PayloadTooLarge,
            ErrorCode::UnsupportedMediaType,
            ErrorCode::ValidationFailed,
            ErrorCode::RateLimited,
            ErrorCode::Internal,
            ErrorCode::UpstreamError,
            ErrorCode::ServiceUnavailable,
            ErrorCode::UpstreamTimeout,
        ] {
            assert_eq!(ErrorCode::for_status(code.status()), code, "{code:?}");
        }
    }

    #[test]
    fn internal_errors_keep_their_cause_out_of_the_body() {
        let err = ApiError::internal(std::io::Error::other("disk on fire at /var/secret"));
        let body = serde_json::to_string(&err.body()).expect("json");
        assert!(!body.contains("disk on fire"), "{body}");
        assert!(format!("{err:?}").contains("disk on fire"));
    }
}
