//! `/v1/contacts`: canonical contacts from the store, across all the caller's connections.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use unicontacts_adapters::canonical::CanonicalContact;
use unicontacts_adapters::{phone, ProviderKind};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use crate::auth::{Authorized, ReadScope};
use crate::error::{ApiError, ErrorBody, FieldErrors};
use crate::extract::{cursor, parse_query};
use crate::startup::AppState;
use crate::store::contacts::{self as queries, ContactFilter};

#[derive(Deserialize, Validate, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListContactsQuery {
    pub provider: Option<ProviderKind>,
    pub connection_id: Option<String>,
    /// Case-insensitive substring of a name, phone or email.
    #[validate(length(min = 1, max = 200, message = "must be 1 to 200 characters"))]
    pub q: Option<String>,
    /// Any written form (`+91 95378 51844`, `919537851844`, `919537851844@c.us`); matched as E.164.
    pub phone: Option<String>,
    pub label: Option<String>,
    /// A group or list remote id (`120363…@g.us`, `5`).
    pub membership: Option<String>,
    /// RFC 3339; contacts whose stored copy changed after it.
    pub modified_after: Option<String>,
    /// Also contacts gone upstream (default false).
    pub include_deleted: Option<bool>,
    /// Page size, 1 to 500 (default 50).
    #[validate(range(min = 1, max = 500, message = "must be from 1 to 500"))]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Deserialize, Validate, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GetContactQuery {
    /// `remote_data` adds the provider's raw object.
    pub include: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ContactPage {
    pub data: Vec<CanonicalContact>,
    pub next_cursor: Option<String>,
}

fn invalid(field: &str, message: &str) -> ApiError {
    let mut f = FieldErrors::new();
    f.add(field, message);
    ApiError::validation(f)
}

/// A phone in any written form as E.164, or the 422 naming `field`.
pub fn phone_param(raw: &str, field: &str) -> Result<String, ApiError> {
    let parsed = if raw.contains('@') {
        phone::phone_from_jid(raw)
    } else {
        Some(phone::phone_from_text(raw, None))
    };
    parsed.and_then(|p| p.e164).ok_or_else(|| {
        invalid(field, "is not a phone number with a country code (such as +91 95378 51844 or 919537851844@c.us)")
    })
}

/// List contacts, oldest first, filtered.
#[utoipa::path(get, path = "/v1/contacts", tag = "contacts",
    params(ListContactsQuery),
    responses(
        (status = 200, description = "A page of contacts", body = ContactPage),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "The key lacks `contacts:read`", body = ErrorBody),
        (status = 422, description = "Invalid filter", body = ErrorBody),
        (status = 429, description = "Over this key's quota", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn list_contacts(
    state: web::Data<AppState>,
    caller: Authorized<ReadScope>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: ListContactsQuery = parse_query(req.query_string())?;
    let limit = q.limit.unwrap_or(50) as usize;
    let filter = ContactFilter {
        org_id: caller.0.org_id,
        provider: q.provider.map(|p| p.as_str().to_string()),
        connection_id: q.connection_id,
        q: q.q
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty()),
        phone: q
            .phone
            .as_deref()
            .map(|p| phone_param(p, "phone"))
            .transpose()?,
        label: q.label.map(|l| l.trim().to_lowercase()),
        membership: q.membership,
        modified_after: q
            .modified_after
            .as_deref()
            .map(|t| {
                chrono::DateTime::parse_from_rfc3339(t)
                    .map(|t| t.naive_utc())
                    .map_err(|_| {
                        invalid(
                            "modified_after",
                            "is not an RFC 3339 timestamp such as 2025-01-31T12:00:00Z",
                        )
                    })
            })
            .transpose()?,
        include_deleted: q.include_deleted.unwrap_or(false),
        after: q.cursor.as_deref().map(cursor::decode).transpose()?,
        limit: limit as i64 + 1,
    };
    let rows = state
        .store
        .run(move |conn| queries::list_contacts(conn, &filter))
        .await?;
    let (rows, next_cursor) = cursor::page(rows, limit, |r| &r.id);
    let data = rows
        .iter()
        .map(|r| queries::to_canonical(r, false))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HttpResponse::Ok().json(ContactPage { data, next_cursor }))
}

/// Get one stored contact.
#[utoipa::path(get, path = "/v1/contacts/{id}", tag = "contacts",
    params(("id" = String, Path, description = "Contact id (`ctc_…`)"), GetContactQuery),
    responses(
        (status = 200, description = "The contact", body = CanonicalContact),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "The key lacks `contacts:read`", body = ErrorBody),
        (status = 404, description = "No such contact in this org", body = ErrorBody),
        (status = 422, description = "Invalid query parameter", body = ErrorBody),
        (status = 429, description = "Over this key's quota", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn get_contact(
    state: web::Data<AppState>,
    caller: Authorized<ReadScope>,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: GetContactQuery = parse_query(req.query_string())?;
    let include_remote = match q.include.as_deref() {
        None | Some("") => false,
        Some("remote_data") => true,
        Some(_) => return Err(invalid("include", "the only include is `remote_data`")),
    };
    let (org_id, id) = (caller.0.org_id, path.into_inner());
    let row = state
        .store
        .run(move |conn| queries::find_contact(conn, &org_id, &id))
        .await?
        .ok_or_else(|| ApiError::not_found("contact"))?;
    Ok(HttpResponse::Ok().json(queries::to_canonical(&row, include_remote)?))
}
