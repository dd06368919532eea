//! `/v1/admin/webhooks`: where the org's events are POSTed, their delivery log,
//! replay and recovery.

use actix_web::{http::header, web, HttpRequest, HttpResponse, HttpResponseBuilder};
use serde::Deserialize;
use utoipa::IntoParams;
use validator::Validate;

use crate::error::ApiError;
use crate::http::audit;
use crate::http::auth::AdminCaller;
use crate::http::extract::{parse_list_query, read_json};
use crate::http::responses::{AuthErrors, BodyErrors, InvalidQuery, NotFound};
use crate::page::{NoFilters, Page, PageQuery};
use crate::service::webhooks::{
    self as service, CreateWebhook, DeliveryView, RecoverRequest, Recovery, UpdateWebhook,
    WebhookView, WebhookWithSecret,
};
use crate::state::State;
use crate::store::models::DeliveryStatus;

/// `response` with the endpoint and its secret, never stored by a cache (nor
/// kept for an `Idempotency-Key` replay).
fn with_secret(
    webhook: WebhookView,
    secret: String,
    mut response: HttpResponseBuilder,
) -> HttpResponse {
    response
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(WebhookWithSecret { webhook, secret })
}

/// Add a webhook endpoint. It receives the events that happen from now on,
/// signed with the secret answered here (and only here).
#[utoipa::path(post, path = "/v1/admin/webhooks", tag = "webhooks",
    request_body = CreateWebhook,
    responses(
        (status = 201, description = "Created; `secret` is shown only here", body = WebhookWithSecret),
        (status = 409, description = "The org has the most endpoints it may have", body = crate::error::ErrorBody),
        AuthErrors, BodyErrors,
    ),
    security(("bearer" = [])))]
pub async fn create_webhook(
    state: web::Data<State>,
    admin: AdminCaller,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: CreateWebhook = read_json(&req, body).await?;
    let (row, secret) = service::create(&state, &admin.0.org_id, body).await?;
    audit::note(&req, [row.id.clone()], None);
    let mut created = HttpResponse::Created();
    created.insert_header((header::LOCATION, format!("/v1/admin/webhooks/{}", row.id)));
    Ok(with_secret(service::view(&state, &row)?, secret, created))
}

/// The org's webhook endpoints, oldest first.
#[utoipa::path(get, path = "/v1/admin/webhooks", tag = "webhooks",
    params(PageQuery<500>),
    responses(
        (status = 200, description = "A page of endpoints", body = Page<WebhookView>),
        AuthErrors, InvalidQuery,
    ),
    security(("bearer" = [])))]
pub async fn list_webhooks(
    state: web::Data<State>,
    admin: AdminCaller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (_, page) = parse_list_query::<NoFilters, 500>(req.query_string())?;
    let page = service::list(&state, &admin.0.org_id, page).await?;
    Ok(HttpResponse::Ok().json(page.try_map(|r| service::view(&state, &r))?))
}

/// One endpoint, with where its delivery stands.
#[utoipa::path(get, path = "/v1/admin/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Endpoint id")),
    responses(
        (status = 200, description = "The endpoint", body = WebhookView),
        AuthErrors, NotFound,
    ),
    security(("bearer" = [])))]
pub async fn get_webhook(
    state: web::Data<State>,
    admin: AdminCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let row = service::get(&state, &admin.0.org_id, &path).await?;
    Ok(HttpResponse::Ok().json(service::view(&state, &row)?))
}

/// Change an endpoint. Enabling a disabled one resumes its delivery where it stopped.
#[utoipa::path(patch, path = "/v1/admin/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Endpoint id")),
    request_body = UpdateWebhook,
    responses(
        (status = 200, description = "The updated endpoint", body = WebhookView),
        AuthErrors, NotFound, BodyErrors,
    ),
    security(("bearer" = [])))]
pub async fn update_webhook(
    state: web::Data<State>,
    admin: AdminCaller,
    path: web::Path<String>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    service::get(&state, &admin.0.org_id, &path).await?;
    let body: UpdateWebhook = read_json(&req, body).await?;
    let row = service::update(&state, &admin.0.org_id, &path, body).await?;
    Ok(HttpResponse::Ok().json(service::view(&state, &row)?))
}

/// Delete an endpoint and its delivery log; nothing more is sent to it.
#[utoipa::path(delete, path = "/v1/admin/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Endpoint id")),
    responses((status = 204, description = "Deleted"), AuthErrors, NotFound),
    security(("bearer" = [])))]
pub async fn delete_webhook(
    state: web::Data<State>,
    admin: AdminCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    service::delete(&state, &admin.0.org_id, &path).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A new signing secret. For 24 hours the old one signs too: each delivery
/// carries both signatures, so receivers can switch without missing one.
#[utoipa::path(post, path = "/v1/admin/webhooks/{id}/rotate-secret", tag = "webhooks",
    params(("id" = String, Path, description = "Endpoint id")),
    responses(
        (status = 200, description = "The endpoint and its new secret, shown only here", body = WebhookWithSecret),
        AuthErrors, NotFound,
    ),
    security(("bearer" = [])))]
pub async fn rotate_secret(
    state: web::Data<State>,
    admin: AdminCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (row, secret) = service::rotate_secret(&state, &admin.0.org_id, &path).await?;
    Ok(with_secret(
        service::view(&state, &row)?,
        secret,
        HttpResponse::Ok(),
    ))
}

/// The delivery log's filter.
#[derive(Deserialize, Validate, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryFilters {
    pub status: Option<DeliveryStatus>,
}

/// The endpoint's deliveries, newest first: attempts, the last status code,
/// latency and error, and when the next attempt is due.
#[utoipa::path(get, path = "/v1/admin/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "Endpoint id"), DeliveryFilters, PageQuery<500>),
    responses(
        (status = 200, description = "A page of deliveries", body = Page<DeliveryView>),
        AuthErrors, NotFound, InvalidQuery,
    ),
    security(("bearer" = [])))]
pub async fn list_deliveries(
    state: web::Data<State>,
    admin: AdminCaller,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (filters, page) = parse_list_query::<DeliveryFilters, 500>(req.query_string())?;
    let page =
        service::list_deliveries(&state, &admin.0.org_id, &path, filters.status, page).await?;
    Ok(HttpResponse::Ok().json(page.map(|r| DeliveryView::from(&r))))
}

/// Send a delivery's event again, now (once; the endpoint's order is kept for
/// the other events). Answers the delivery after the attempt.
#[utoipa::path(post, path = "/v1/admin/webhooks/{id}/deliveries/{delivery_id}/replay", tag = "webhooks",
    params(
        ("id" = String, Path, description = "Endpoint id"),
        ("delivery_id" = String, Path, description = "Delivery id"),
    ),
    responses(
        (status = 200, description = "The delivery after the attempt", body = DeliveryView),
        (status = 409, description = "The event is no longer in the feed", body = crate::error::ErrorBody),
        AuthErrors, NotFound,
    ),
    security(("bearer" = [])))]
pub async fn replay_delivery(
    state: web::Data<State>,
    admin: AdminCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, delivery_id) = path.into_inner();
    let row = service::replay(&state, &admin.0.org_id, &id, &delivery_id).await?;
    Ok(HttpResponse::Ok().json(DeliveryView::from(&row)))
}

/// Re-send every event since a time (still in the feed), in order, before the
/// events not yet sent.
#[utoipa::path(post, path = "/v1/admin/webhooks/{id}/recover", tag = "webhooks",
    params(("id" = String, Path, description = "Endpoint id")),
    request_body = RecoverRequest,
    responses(
        (status = 202, description = "Delivery goes again from the answered point", body = Recovery),
        AuthErrors, NotFound, BodyErrors,
    ),
    security(("bearer" = [])))]
pub async fn recover(
    state: web::Data<State>,
    admin: AdminCaller,
    path: web::Path<String>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    service::get(&state, &admin.0.org_id, &path).await?;
    let body: RecoverRequest = read_json(&req, body).await?;
    let recovery = service::recover(&state, &admin.0.org_id, &path, body).await?;
    Ok(HttpResponse::Accepted().json(recovery))
}
