//! `GET /v1/admin/audit-events`: the org's audit log, newest first.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::http::auth::AdminCaller;
use crate::http::extract::parse_list_query;
use crate::http::responses::{AuthErrors, InvalidQuery};
use crate::ids;
use crate::page::{Page, PageQuery};
use crate::service::audit::{self as service, AuditFilters};
use crate::state::State;
use crate::store::audit::AuditEventRow;

/// One write through the API.
#[derive(Serialize, ToSchema)]
pub struct AuditEventView {
    #[schema(example = "aud_01jd2x9v8c0000000000000000")]
    pub id: String,
    #[schema(format = DateTime)]
    pub at: String,
    /// The key that made it (its id and its first characters; never the key).
    pub api_key_id: Option<String>,
    #[schema(example = "uck_3f9a")]
    pub api_key_prefix: Option<String>,
    #[schema(example = "contact.create")]
    pub action: String,
    /// The ids it named or made: connection, contact, API key, sync run.
    pub target_ids: Vec<String>,
    pub provider: Option<String>,
    /// The HTTP status it was answered with.
    pub status: u16,
    pub request_id: String,
}

impl From<&AuditEventRow> for AuditEventView {
    fn from(r: &AuditEventRow) -> Self {
        AuditEventView {
            id: r.id.clone(),
            at: ids::rfc3339(r.at),
            api_key_id: r.api_key_id.clone(),
            api_key_prefix: r.api_key_prefix.clone(),
            action: r.action.clone(),
            target_ids: r.targets(),
            provider: r.provider.clone(),
            status: u16::try_from(r.status).unwrap_or(0),
            request_id: r.request_id.clone(),
        }
    }
}

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
