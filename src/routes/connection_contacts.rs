//! `/v1/connections/{connection_id}/contacts/{remote_id}`: a live read through the
//! cache to the provider, written to the store on the way back.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use unicontacts_adapters::canonical::CanonicalContact;
use utoipa::IntoParams;
use validator::Validate;

use crate::error::{ApiError, ErrorBody};
use crate::http::auth::{Authorized, ReadScope};
use crate::http::conditional;
use crate::http::extract::parse_query;
use crate::http::responses::AuthErrors;
use crate::service::contacts::{self as service, CacheStatus};
use crate::state::State;

#[derive(Deserialize, Validate, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LiveReadQuery {
    /// Skip the cache and ask the provider now.
    pub fresh: Option<bool>,
    /// `remote_data` adds the provider's raw object.
    #[param(pattern = "^(remote_data)?$")]
    pub include: Option<String>,
}

/// Read one contact live from its provider (cached).
#[utoipa::path(get, path = "/v1/connections/{connection_id}/contacts/{remote_id}", tag = "contacts",
    params(
        ("connection_id" = String, Path, description = "Connection id"),
        ("remote_id" = String, Path, description = "The provider's id in any usual form: Periskope `919537851844`, `919537851844@c.us` or `+91 95378 51844`; WA.cr `42`; Gateway `205227043110953` or `205227043110953@lid`"),
        LiveReadQuery,
    ),
    responses(
        (status = 200, description = "The contact; `X-Cache` says HIT, MISS or STALE (with `Age`); `X-Partial: chats` when the provider gave the contact but not its chat (Periskope), whose fields are then as stored", body = CanonicalContact),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 404, description = "No such connection in this org, or no such contact at the provider", body = ErrorBody),
        (status = 422, description = "A remote id the provider cannot have", body = ErrorBody),
        (status = 502, description = "The provider failed or refused the credentials", body = ErrorBody),
        (status = 503, description = "The provider's quota is spent or calls are paused", body = ErrorBody),
        (status = 504, description = "The provider did not answer in time", body = ErrorBody),
        AuthErrors,
    ),
    security(("bearer" = [])))]
pub async fn get_connection_contact(
    state: web::Data<State>,
    caller: Authorized<ReadScope>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: LiveReadQuery = parse_query(req.query_string())?;
    let include_remote_data = service::parse_include(q.include.as_deref())?;
    let (connection_id, raw_remote_id) = path.into_inner();
    let read = service::read_live(
        &state,
        &caller.0.org_id,
        &connection_id,
        &raw_remote_id,
        q.fresh.unwrap_or(false),
        include_remote_data,
    )
    .await?;
    let contact = &read.contact;
    let mut res = HttpResponse::Ok();
    res.insert_header(("X-Cache", read.status.as_str()));
    if !contact.partial.is_empty() {
        // The provider would not give these parts: their fields are as stored.
        res.insert_header(("X-Partial", contact.partial.join(",")));
    }
    if read.status == CacheStatus::Stale {
        let age = (chrono::Utc::now() - contact.fetched_at)
            .num_seconds()
            .max(0);
        res.insert_header((header::AGE, age.to_string()));
        res.insert_header((header::CACHE_CONTROL, "private, max-age=0"));
    } else {
        res.insert_header((
            header::CACHE_CONTROL,
            format!("private, max-age={}", read.cache_ttl.as_secs()),
        ));
    }
    Ok(conditional::tagged(
        &req,
        res,
        &contact.etag,
        contact.body.clone(),
    ))
}
