//! `/v1/contacts`: canonical contacts from the store, across all the caller's connections.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use unicontacts_adapters::canonical::CanonicalContact;
use utoipa::IntoParams;
use validator::Validate;

use crate::error::ApiError;
use crate::http::auth::{Authorized, ReadScope};
use crate::http::conditional;
use crate::http::extract::{parse_list_query, parse_query};
use crate::http::responses::{AuthErrors, InvalidQuery, NotFound};
use crate::page::{Page, PageQuery};
use crate::service::contacts::{self as service, ContactFilters};
use crate::state::State;

#[derive(Deserialize, Validate, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GetContactQuery {
    /// `remote_data` adds the provider's raw object.
    #[param(pattern = "^(remote_data)?$")]
    pub include: Option<String>,
}

/// List contacts, oldest first, filtered.
#[utoipa::path(get, path = "/v1/contacts", tag = "contacts",
    params(ContactFilters, PageQuery<500>),
    responses(
        (status = 200, description = "A page of contacts", body = Page<CanonicalContact>),
        AuthErrors, InvalidQuery,
    ),
    security(("bearer" = [])))]
pub async fn list_contacts(
    state: web::Data<State>,
    caller: Authorized<ReadScope>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (filters, page) = parse_list_query::<ContactFilters, 500>(req.query_string())?;
    let body = service::list(&state, &caller.0.org_id, filters, page).await?;
    Ok(HttpResponse::Ok()
        .content_type(actix_web::http::header::ContentType::json())
        .body(body))
}

/// Get one stored contact.
#[utoipa::path(get, path = "/v1/contacts/{id}", tag = "contacts",
    params(("id" = String, Path, description = "Contact id (`ctc_…`)"), GetContactQuery),
    responses(
        (status = 200, description = "The contact, with its `ETag` (from its content: the same while the contact is)", body = CanonicalContact),
        (status = 304, description = "Not modified: `If-None-Match` names the current `ETag`"),
        AuthErrors, NotFound, InvalidQuery,
    ),
    security(("bearer" = [])))]
pub async fn get_contact(
    state: web::Data<State>,
    caller: Authorized<ReadScope>,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: GetContactQuery = parse_query(req.query_string())?;
    let include_remote = service::parse_include(q.include.as_deref())?;
    let (body, etag) = service::get_served(&state, &caller.0.org_id, &path, include_remote).await?;
    Ok(conditional::stored(&req, &etag, body))
}
