//! `/healthz` (the process is up), `/readyz` (the database answers) and
//! `/metrics` (Prometheus figures).

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::service::health;
use crate::state::State;

#[derive(Serialize, ToSchema)]
pub struct HealthStatus {
    #[schema(example = "ok")]
    pub status: String,
}

/// Liveness: answers as long as the process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is up", body = HealthStatus)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(HealthStatus {
        status: "ok".into(),
    })
}

/// Readiness: 200 when the database answers within a second, else 503.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready to serve", body = HealthStatus),
        (status = 503, description = "The database is unreachable", body = ErrorBody),
    ))]
pub async fn readyz(state: web::Data<State>) -> Result<HttpResponse, ApiError> {
    health::ready(&state).await?;
    Ok(HttpResponse::Ok().json(HealthStatus {
        status: "ready".into(),
    }))
}

/// Prometheus figures in the text format: HTTP requests by route template,
/// upstream calls, quota waits and 429s by provider, the live-read cache, sync
/// runs, the database pool, webhook deliveries. With `metrics_token` set it
/// requires `Authorization: Bearer <token>`.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "The figures (Prometheus text format 0.0.4)", content_type = "text/plain", body = String),
        (status = 401, description = "`metrics_token` is set and the request does not carry it", body = ErrorBody),
    ))]
pub async fn metrics(state: web::Data<State>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    if let Some(token) = &state.settings.metrics_token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        // Digests compared, so the time taken says nothing about the token.
        if Sha256::digest(given.as_bytes()) != Sha256::digest(token.0.as_bytes()) {
            return Err(ApiError::unauthorized(
                "the metrics need `Authorization: Bearer <metrics_token>`",
            ));
        }
    }
    let body = crate::service::health::metrics_text(&state).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body))
}
