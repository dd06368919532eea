//! `/v1/admin/api-keys`: an org's API keys. The key itself is answered once, on
//! creation; only its hash and a short visible prefix are stored.

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use crate::auth::{AdminCaller, NewKey, Scope};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{cursor, parse_query, read_json};
use crate::ids;
use crate::startup::AppState;
use crate::store::{api_keys as queries, models::ApiKeyRow, DbConnection, StoreError};

#[derive(Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    /// A label to recognise the key by.
    #[validate(length(min = 1, max = 100, message = "must be 1 to 100 characters"))]
    #[schema(example = "reporting job")]
    pub name: String,
    #[validate(length(min = 1, message = "must hold at least one scope"))]
    pub scopes: Vec<Scope>,
}

#[derive(Serialize, ToSchema)]
pub struct ApiKeyView {
    #[schema(example = "key_01jd2x9v8c0000000000000000")]
    pub id: String,
    pub name: String,
    /// The key's first characters, to tell keys apart.
    #[schema(example = "uck_Ab3dEf9h")]
    pub prefix: String,
    pub scopes: Vec<Scope>,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

/// The created key: the only response that ever carries `key`.
#[derive(Serialize, ToSchema)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub api_key: ApiKeyView,
    /// The secret; store it now, it is not shown again.
    pub key: String,
}

#[derive(Serialize, ToSchema)]
pub struct ApiKeyPage {
    pub data: Vec<ApiKeyView>,
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, Validate, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListApiKeysQuery {
    /// Page size, 1 to 500 (default 50).
    #[validate(range(min = 1, max = 500, message = "must be from 1 to 500"))]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    /// Also list revoked keys (default false).
    pub include_revoked: Option<bool>,
}

impl From<&ApiKeyRow> for ApiKeyView {
    fn from(r: &ApiKeyRow) -> Self {
        ApiKeyView {
            id: r.id.clone(),
            name: r.name.clone(),
            prefix: r.prefix.clone(),
            scopes: r.scopes.split(',').filter_map(Scope::parse).collect(),
            created_at: ids::rfc3339(r.created_at),
            revoked_at: r.revoked_at.map(ids::rfc3339),
        }
    }
}

/// Creates a key for the org; shared by the admin API and `unicontacts keys create`.
pub fn insert_new_key(
    conn: &mut DbConnection,
    org_id: &str,
    name: &str,
    scopes: &[Scope],
) -> Result<(ApiKeyRow, String), StoreError> {
    let key = NewKey::generate();
    let row = ApiKeyRow {
        id: ids::new_id(ids::API_KEY),
        org_id: org_id.to_string(),
        name: name.to_string(),
        prefix: key.prefix.clone(),
        key_hash: key.hash.clone(),
        scopes: Scope::join(scopes),
        created_at: ids::now(),
        revoked_at: None,
    };
    queries::insert_api_key(conn, &row)?;
    Ok((row, key.plaintext))
}

/// Create an API key.
#[utoipa::path(post, path = "/v1/admin/api-keys", tag = "admin",
    request_body = CreateApiKeyRequest,
    responses(
        (status = 201, description = "Created; `key` is shown only here", body = CreatedApiKey),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "The key lacks the `admin` scope", body = ErrorBody),
        (status = 429, description = "Over this key's quota", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn create_api_key(
    state: web::Data<AppState>,
    admin: AdminCaller,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: CreateApiKeyRequest = read_json(&req, body).await?;
    let org_id = admin.0.org_id;
    let name = body.name.trim().to_string();
    let scopes = body.scopes;
    let (row, key) = state
        .store
        .run(move |conn| insert_new_key(conn, &org_id, &name, &scopes))
        .await?;
    tracing::info!(api_key_id = %row.id, prefix = %row.prefix, "API key created");
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/v1/admin/api-keys/{}", row.id)))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(CreatedApiKey {
            api_key: ApiKeyView::from(&row),
            key,
        }))
}

/// List the org's API keys, oldest first. The keys themselves are never listed.
#[utoipa::path(get, path = "/v1/admin/api-keys", tag = "admin",
    params(ListApiKeysQuery),
    responses(
        (status = 200, description = "A page of keys", body = ApiKeyPage),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "The key lacks the `admin` scope", body = ErrorBody),
        (status = 429, description = "Over this key's quota", body = ErrorBody),
        (status = 422, description = "Invalid query parameter", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn list_api_keys(
    state: web::Data<AppState>,
    admin: AdminCaller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: ListApiKeysQuery = parse_query(req.query_string())?;
    let after = q.cursor.as_deref().map(cursor::decode).transpose()?;
    let limit = q.limit.unwrap_or(50) as usize;
    let include_revoked = q.include_revoked.unwrap_or(false);
    let org_id = admin.0.org_id;
    let rows = state
        .store
        .run(move |conn| {
            queries::list_api_keys(
                conn,
                &org_id,
                include_revoked,
                after.as_deref(),
                limit as i64 + 1,
            )
        })
        .await?;
    let (rows, next_cursor) = cursor::page(rows, limit, |r| &r.id);
    Ok(HttpResponse::Ok().json(ApiKeyPage {
        data: rows.iter().map(ApiKeyView::from).collect(),
        next_cursor,
    }))
}

/// Revoke an API key; it stops working at once.
#[utoipa::path(delete, path = "/v1/admin/api-keys/{id}", tag = "admin",
    params(("id" = String, Path, description = "API key id")),
    responses(
        (status = 204, description = "Revoked (also when it already was)"),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "The key lacks the `admin` scope", body = ErrorBody),
        (status = 429, description = "Over this key's quota", body = ErrorBody),
        (status = 404, description = "No such key in this org", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn delete_api_key(
    state: web::Data<AppState>,
    admin: AdminCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let org_id = admin.0.org_id;
    let log_id = id.clone();
    let found = state
        .store
        .run(move |conn| queries::revoke_api_key(conn, &org_id, &id))
        .await?;
    if !found {
        return Err(ApiError::not_found("API key"));
    }
    state.keys.forget_key(&log_id);
    tracing::info!(api_key_id = %log_id, "API key revoked");
    Ok(HttpResponse::NoContent().finish())
}
