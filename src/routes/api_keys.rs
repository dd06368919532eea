//! `/v1/admin/api-keys`: an org's API keys. The key itself is answered once, on
//! creation; only its hash and a short visible prefix are stored.

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use crate::error::{ApiError, ErrorBody};
use crate::http::audit;
use crate::http::auth::AdminCaller;
use crate::http::extract::{parse_list_query, read_json};
use crate::http::responses::{AuthErrors, BodyErrors, InvalidQuery, NotFound};
use crate::page::{Page, PageQuery};
use crate::service::api_keys::{self as service, ApiKeyView, OrgRef, Scope};
use crate::state::State;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    /// A label to recognise the key by (1 to 100 characters).
    #[schema(example = "reporting job")]
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// At least one.
    #[schema(min_items = 1)]
    pub scopes: Vec<Scope>,
    /// When the key stops working (RFC 3339, in the future); none: never.
    #[schema(format = DateTime, example = "2027-06-30T00:00:00Z")]
    pub expires_at: Option<String>,
}

/// The created key: the only response that ever carries `key`.
#[derive(Serialize, ToSchema)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub api_key: ApiKeyView,
    /// The secret; store it now, it is not shown again.
    pub key: String,
}

/// The filters of the key list.
#[derive(Deserialize, Validate, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ApiKeyFilters {
    /// Also list revoked keys (default false).
    pub include_revoked: Option<bool>,
}

/// Create an API key.
#[utoipa::path(post, path = "/v1/admin/api-keys", tag = "admin",
    request_body = CreateApiKeyRequest,
    responses(
        (status = 201, description = "Created; `key` is shown only here", body = CreatedApiKey),
        AuthErrors, BodyErrors,
    ),
    security(("bearer" = [])))]
pub async fn create_api_key(
    state: web::Data<State>,
    admin: AdminCaller,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: CreateApiKeyRequest = read_json(&req, body).await?;
    let created = service::create_expiring(
        &state.store,
        OrgRef::Id(&admin.0.org_id),
        &body.name,
        &body.scopes,
        body.expires_at.as_deref(),
    )
    .await?;
    audit::note(&req, [created.row.id.clone()], None);
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/v1/admin/api-keys/{}", created.row.id),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(CreatedApiKey {
            api_key: ApiKeyView::from(&created.row),
            key: created.key,
        }))
}

/// List the org's API keys, oldest first. The keys themselves are never listed.
#[utoipa::path(get, path = "/v1/admin/api-keys", tag = "admin",
    params(ApiKeyFilters, PageQuery<500>),
    responses(
        (status = 200, description = "A page of keys", body = Page<ApiKeyView>),
        AuthErrors, InvalidQuery,
    ),
    security(("bearer" = [])))]
pub async fn list_api_keys(
    state: web::Data<State>,
    admin: AdminCaller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (filters, page) = parse_list_query::<ApiKeyFilters, 500>(req.query_string())?;
    let include_revoked = filters.include_revoked.unwrap_or(false);
    let page = service::list(&state.store, &admin.0.org_id, include_revoked, page).await?;
    Ok(HttpResponse::Ok().json(page.map(|r| ApiKeyView::from(&r))))
}

/// Revoke an API key; it stops working at once. The organisation's last active
/// admin key cannot be revoked here (409): create another first.
#[utoipa::path(delete, path = "/v1/admin/api-keys/{id}", tag = "admin",
    params(("id" = String, Path, description = "API key id")),
    responses(
        (status = 204, description = "Revoked (also when it already was)"),
        (status = 409, description = "The organisation's last active admin key", body = ErrorBody),
        AuthErrors, NotFound,
    ),
    security(("bearer" = [])))]
pub async fn delete_api_key(
    state: web::Data<State>,
    admin: AdminCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    service::revoke(&state, &admin.0.org_id, &path, true).await?;
    Ok(HttpResponse::NoContent().finish())
}
