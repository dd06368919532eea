//! `GET /v1/admin/identity/overshared`: the identifiers too many contacts share
//! to link them into one person.

use actix_web::{web, HttpRequest, HttpResponse};

use crate::error::ApiError;
use crate::http::auth::AdminCaller;
use crate::http::extract::parse_list_query;
use crate::http::responses::{AuthErrors, InvalidQuery};
use crate::page::{NoFilters, Page, PageQuery};
use crate::service::people::{self as service, OversharedIdentifier};
use crate::state::State;

/// The org's phones and LIDs that more live contacts hold than the
/// `max_contacts_per_identifier` setting: each links none of them (a
/// switchboard number); in `id` order.
#[utoipa::path(get, path = "/v1/admin/identity/overshared", tag = "admin",
    params(PageQuery<500>),
    responses(
        (status = 200, description = "A page of identifiers, with how many live contacts hold each", body = Page<OversharedIdentifier>),
        AuthErrors, InvalidQuery,
    ),
    security(("bearer" = [])))]
pub async fn list_overshared(
    state: web::Data<State>,
    admin: AdminCaller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (_, page) = parse_list_query::<NoFilters, 500>(req.query_string())?;
    let page = service::overshared(&state, &admin.0.org_id, page).await?;
    Ok(HttpResponse::Ok().json(page))
}
