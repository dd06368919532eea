//! `GET /v1/events`: the change feed.

use actix_web::{web, HttpRequest, HttpResponse};

use crate::error::ApiError;
use crate::http::auth::{Authorized, ReadScope};
use crate::http::extract::parse_list_query;
use crate::http::responses::{AuthErrors, InvalidQuery};
use crate::page::Page;
use crate::service::events::{self as service, Event, EventFilters, EventPage};
use crate::state::State;

/// The org's events in the order they happened: every change to a contact or a
/// person, and every finished sync run. Follow `next_cursor` (or pass the last
/// event id you processed as `after`) to see each event exactly once, also while
/// a sync is writing; an empty page with `next_cursor: null` means you are
/// caught up (ask again later with `after`).
#[utoipa::path(get, path = "/v1/events", tag = "contacts",
    params(EventFilters, EventPage),
    responses(
        (status = 200, description = "A page of events, oldest first", body = Page<Event>),
        AuthErrors, InvalidQuery,
    ),
    security(("bearer" = [])))]
pub async fn list_events(
    state: web::Data<State>,
    caller: Authorized<ReadScope>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (filters, page) = parse_list_query::<EventFilters, 500>(req.query_string())?;
    let page = service::list(&state, &caller.0.org_id, filters, page).await?;
    Ok(HttpResponse::Ok().json(page))
}
