//! `GET /v1/admin/audit-events`: the org's audit log, newest first.

use actix_web::{web, HttpRequest, HttpResponse};

use crate::error::ApiError;
use crate::http::auth::AdminCaller;
use crate::http::extract::parse_list_query;
use crate::http::responses::{AuthErrors, InvalidQuery};
use crate::page::{Page, PageQuery};
use crate::service::audit::{self as service, AuditEventView, AuditFilters};
use crate::state::State;

/// The org's audit events (every write through the API), newest first.
#[utoipa::path(get, path = "/v1/admin/audit-events", tag = "admin",
    params(AuditFilters, PageQuery<500>),
    responses(
        (status = 200, description = "A page of events", body = Page<AuditEventView>),
        AuthErrors, InvalidQuery,
    ),
    security(("bearer" = [])))]
pub async fn list_audit_events(
    state: web::Data<State>,
    admin: AdminCaller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (filters, page) = parse_list_query::<AuditFilters, 500>(req.query_string())?;
    let page = service::list(&state, &admin.0.org_id, filters, page).await?;
    Ok(HttpResponse::Ok().json(page.map(|r| AuditEventView::from(&r))))
}
