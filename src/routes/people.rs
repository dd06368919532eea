//! `/v1/people`: contacts linked across providers into people, each with a merged
//! view that says which connection each merged value came from.

use actix_web::{web, HttpRequest, HttpResponse};

use crate::error::ApiError;
use crate::http::auth::{Authorized, ReadScope};
use crate::http::conditional;
use crate::http::extract::parse_list_query;
use crate::http::responses::{AuthErrors, InvalidQuery, NotFound};
use crate::page::{Page, PageQuery};
use crate::service::people::{self as service, PeopleFilters, PersonView};
use crate::state::State;

/// One person: the merged view and its contacts.
#[utoipa::path(get, path = "/v1/people/{id}", tag = "contacts",
    params(("id" = String, Path, description = "Person id (`per_…`)")),
    responses(
        (status = 200, description = "The person, with its `ETag` (from its content: the same while the person and its contacts are)", body = PersonView),
        (status = 304, description = "Not modified: `If-None-Match` names the current `ETag`"),
        AuthErrors, NotFound,
    ),
    security(("bearer" = [])))]
pub async fn get_person(
    state: web::Data<State>,
    caller: Authorized<ReadScope>,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let person = service::get(&state, &caller.0.org_id, &path).await?;
    conditional::json(&req, &person)
}

/// People, oldest first, filtered by phone or text.
#[utoipa::path(get, path = "/v1/people", tag = "contacts",
    params(PeopleFilters, PageQuery<200>),
    responses(
        (status = 200, description = "A page of people", body = Page<PersonView>),
        AuthErrors, InvalidQuery,
    ),
    security(("bearer" = [])))]
pub async fn list_people(
    state: web::Data<State>,
    caller: Authorized<ReadScope>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (filters, page) = parse_list_query::<PeopleFilters, 200>(req.query_string())?;
    let page = service::list(&state, &caller.0.org_id, filters, page).await?;
    Ok(HttpResponse::Ok().json(page))
}
