//! The per-request middleware: request ids, one access-log line per request, the
//! key's `X-RateLimit-*` figures, and the error envelope for errors actix answers
//! by itself (unknown methods, say).

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse};
use tracing::Instrument;

use crate::error::{ApiError, ErrorCode};
use crate::http::audit::RequestId;
use crate::limits::RateInfo;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A client's request id is echoed when it is short and plain; otherwise we make one.
fn request_id(req: &ServiceRequest) -> String {
    req.headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_string)
        .unwrap_or_else(|| ulid::Ulid::new().to_string().to_lowercase())
}

pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let id = request_id(&req);
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.path());
    let started = Instant::now();
    req.extensions_mut().insert(RequestId(id.clone()));
    let res = match crate::http::extract::control_characters_in_request(req.request()) {
        // Refused before routing: no handler, and no database, sees a NUL.
        Some(e) => {
            crate::telemetry::with_request_id(id.clone(), async move { req.error_response(e) })
                .await
        }
        // The provider's trace id of a failed upstream call goes into the error.
        None => crate::telemetry::with_request_id(
            id.clone(),
            unicontacts_adapters::upstream::with_trace_scope(next.call(req)),
        )
        .instrument(span.clone())
        .await?
        .map_into_boxed_body(),
    };
    let mut res = into_envelope(res, &id);
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, v);
    }
    let rate = res.request().extensions().get::<RateInfo>().copied();
    if let Some(rate) = rate {
        let headers = res.headers_mut();
        for (name, value) in [
            ("x-ratelimit-limit", u64::from(rate.limit)),
            ("x-ratelimit-remaining", u64::from(rate.remaining)),
            ("x-ratelimit-reset", rate.reset),
        ] {
            headers.insert(HeaderName::from_static(name), HeaderValue::from(value));
        }
    }
    let status = res.status().as_u16();
    let route = res.request().match_pattern();
    crate::metrics::http_request(
        res.request().method().as_str(),
        route.as_deref().unwrap_or("unmatched"),
        status,
        started.elapsed(),
    );
    span.in_scope(|| {
        tracing::info!(
            status,
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "request done"
        );
    });
    Ok(res)
}

/// Rewrites an error answered without our JSON body (actix's 404/405, say) into the envelope.
fn into_envelope(res: ServiceResponse<BoxBody>, request_id: &str) -> ServiceResponse<BoxBody> {
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return res;
    }
    let code = ErrorCode::for_status(status);
    let (method, path) = (res.request().method(), res.request().path());
    let message = match code {
        ErrorCode::NotFound => format!("no route for {method} {path}"),
        ErrorCode::MethodNotAllowed => format!("method {method} is not allowed on {path}"),
        ErrorCode::Internal => "internal error".to_string(),
        _ => res
            .response()
            .error()
            .map(|e| e.to_string())
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string()),
    };
    let (req, old) = res.into_parts();
    let mut body = ApiError::new(code, message).body();
    body.error.request_id = Some(request_id.to_string());
    let mut fresh = HttpResponse::build(status).json(body);
    for (name, value) in old.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            fresh.headers_mut().insert(name.clone(), value.clone());
        }
    }
    ServiceResponse::new(req, fresh)
}
