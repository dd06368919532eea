//! Contacts written through to their provider: `POST /v1/connections/{id}/contacts`,
//! `PATCH` and `DELETE /v1/contacts/{id}`, and the two batches (scope
//! `contacts:write`).

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use unicontacts_adapters::canonical::CanonicalContact;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::http::audit;
use crate::http::auth::{Authorized, WriteScope};
use crate::http::extract::{read_json, read_json_checked};
use crate::http::idempotency::write_options;
use crate::http::responses::{AuthErrors, BodyErrors, NotFound};
use crate::service::contact_writes::{self as service, BatchResult, ContactWrite};
use crate::state::State;

/// Up to 100 contacts to create.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchCreateRequest {
    #[schema(min_items = 1, max_items = 100)]
    pub contacts: Vec<ContactWrite>,
}

/// Up to 100 of the connection's contacts to delete, by our id (`ctc_…`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchDeleteRequest {
    #[schema(min_items = 1, max_items = 100)]
    pub ids: Vec<String>,
}

/// Create a contact at the connection's provider.
#[utoipa::path(post, path = "/v1/connections/{connection_id}/contacts", tag = "contacts",
    params(("connection_id" = String, Path, description = "Connection id")),
    request_body = ContactWrite,
    responses(
        (status = 201, description = "Created at the provider and stored; `Location` is the stored contact", body = CanonicalContact),
        (status = 409, description = "The provider holds this contact already (`details.existing_contact_id` when known); or `suppressed`: its phone or email is an erased person's (nothing sent)", body = ErrorBody),
        (status = 502, description = "The provider failed or refused the credentials; nothing stored", body = ErrorBody),
        (status = 503, description = "The provider's quota is spent", body = ErrorBody),
        (status = 504, description = "No answer in time: `details.outcome` is `unknown`", body = ErrorBody),
        AuthErrors, NotFound, BodyErrors,
    ),
    security(("bearer" = [])))]
pub async fn create_contact(
    state: web::Data<State>,
    caller: Authorized<WriteScope>,
    path: web::Path<String>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: ContactWrite = read_json_checked(&req, body).await?;
    let contact =
        service::create(&state, &caller.0.org_id, &path, &body, write_options(&req)).await?;
    audit::note(&req, [contact.id.clone()], Some(contact.provider));
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/v1/contacts/{}", contact.id)))
        .json(contact))
}

/// Change a contact at its provider.
#[utoipa::path(patch, path = "/v1/contacts/{id}", tag = "contacts",
    params(("id" = String, Path, description = "Contact id (`ctc_…`)")),
    request_body = ContactWrite,
    responses(
        (status = 200, description = "The contact after the write", body = CanonicalContact),
        (status = 409, description = "Another contact at the provider has this phone or email; or `suppressed`: it is an erased person's (nothing sent)", body = ErrorBody),
        (status = 502, description = "The provider failed or refused the credentials", body = ErrorBody),
        (status = 503, description = "The provider's quota is spent", body = ErrorBody),
        (status = 504, description = "No answer in time", body = ErrorBody),
        AuthErrors, NotFound, BodyErrors,
    ),
    security(("bearer" = [])))]
pub async fn update_contact(
    state: web::Data<State>,
    caller: Authorized<WriteScope>,
    path: web::Path<String>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: ContactWrite = read_json_checked(&req, body).await?;
    let contact = service::update(&state, &caller.0.org_id, &path, &body).await?;
    audit::note(&req, [], Some(contact.provider));
    Ok(HttpResponse::Ok().json(contact))
}

/// Delete a contact at its provider; the stored copy is marked deleted upstream.
#[utoipa::path(delete, path = "/v1/contacts/{id}", tag = "contacts",
    params(("id" = String, Path, description = "Contact id (`ctc_…`)")),
    responses(
        (status = 204, description = "Deleted at the provider"),
        (status = 422, description = "The provider cannot delete contacts (`unsupported_by_provider`)", body = ErrorBody),
        (status = 502, description = "The provider failed or refused the credentials", body = ErrorBody),
        (status = 503, description = "The provider's quota is spent", body = ErrorBody),
        (status = 504, description = "No answer in time", body = ErrorBody),
        AuthErrors, NotFound,
    ),
    security(("bearer" = [])))]
pub async fn delete_contact(
    state: web::Data<State>,
    caller: Authorized<WriteScope>,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let provider = service::delete(&state, &caller.0.org_id, &path).await?;
    audit::note(&req, [], Some(provider));
    Ok(HttpResponse::NoContent().finish())
}

/// Create up to 100 contacts at the connection's provider, each answered alone.
#[utoipa::path(post, path = "/v1/connections/{connection_id}/contacts/batch", tag = "contacts",
    params(("connection_id" = String, Path, description = "Connection id")),
    request_body = BatchCreateRequest,
    responses(
        (status = 200, description = "Each item's outcome (`status` 201 or an error) and a summary", body = BatchResult),
        AuthErrors, NotFound, BodyErrors,
    ),
    security(("bearer" = [])))]
pub async fn batch_create(
    state: web::Data<State>,
    caller: Authorized<WriteScope>,
    path: web::Path<String>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: BatchCreateRequest = read_json(&req, body).await?;
    let result = service::batch_create(&state, &caller.0.org_id, &path, &body.contacts).await?;
    let created = result
        .results
        .iter()
        .filter_map(|r| r.contact.as_ref().map(|c| c.id.clone()));
    audit::note(&req, created.collect::<Vec<_>>(), Some(result.provider));
    Ok(HttpResponse::Ok().json(result))
}

/// Delete up to 100 of the connection's contacts at its provider, each answered alone.
#[utoipa::path(post, path = "/v1/connections/{connection_id}/contacts/batch-delete", tag = "contacts",
    params(("connection_id" = String, Path, description = "Connection id")),
    request_body = BatchDeleteRequest,
    responses(
        (status = 200, description = "Each item's outcome (`status` 204 or an error) and a summary", body = BatchResult),
        AuthErrors, NotFound, BodyErrors,
    ),
    security(("bearer" = [])))]
pub async fn batch_delete(
    state: web::Data<State>,
    caller: Authorized<WriteScope>,
    path: web::Path<String>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: BatchDeleteRequest = read_json(&req, body).await?;
    let result = service::batch_delete(&state, &caller.0.org_id, &path, &body.ids).await?;
    audit::note(&req, body.ids.iter().cloned(), Some(result.provider));
    Ok(HttpResponse::Ok().json(result))
}
