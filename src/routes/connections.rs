//! `/v1/admin/connections`: an org's provider connections. Credentials are
//! write-only: responses show at most the last four characters of the API key.

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Deserializer, Serialize};
use unicontacts_adapters::{CredentialField, ProviderKind};
use utoipa::{IntoParams, ToSchema};
use validator::{Validate, ValidationError};

use crate::auth::AdminCaller;
use crate::error::{ApiError, ErrorBody, FieldErrors};
use crate::extract::{cursor, parse_query, read_json};
use crate::ids;
use crate::startup::AppState;
use crate::store::connections::{self as queries, Connection, ConnectionSettings, Credentials};

// ---- request bodies -------------------------------------------------------

/// A new connection to a provider.
#[derive(Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConnectionRequest {
    pub provider: ProviderKind,
    #[validate(custom(function = "valid_name"))]
    #[schema(example = "Sales team Periskope")]
    pub name: String,
    /// Optional for Periskope (defaults to `https://api.periskope.app/v1`); required for `wacr` and `gateway`.
    #[validate(custom(function = "valid_base_url"))]
    pub base_url: Option<String>,
    #[validate(nested)]
    pub credentials: CredentialsInput,
    #[serde(default)]
    #[validate(nested)]
    pub settings: SettingsInput,
}

/// Credentials per provider: Periskope `api_key` + `phone`; WA.cr `api_key`; Gateway `api_key` + `session`.
#[derive(Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialsInput {
    #[validate(length(min = 1, max = 1024, message = "must be 1 to 1024 characters"))]
    pub api_key: Option<String>,
    /// Periskope `x-phone`: the connected phone's number (any written form) or its `phone-…` id.
    #[validate(custom(function = "valid_phone"))]
    #[schema(example = "+91 98745 32456")]
    pub phone: Option<String>,
    #[validate(length(min = 1, max = 200, message = "must be 1 to 200 characters"))]
    pub session: Option<String>,
}

impl std::fmt::Debug for CredentialsInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialsInput").finish_non_exhaustive()
    }
}

/// Settings; omitted ones keep their current value (defaults on create).
#[derive(Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsInput {
    /// ISO 3166-1 alpha-2 region for phones without a country code; `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[validate(custom(function = "valid_country"))]
    #[schema(value_type = Option<String>, example = "IN")]
    pub default_country: Option<Option<String>>,
    #[validate(range(min = 1, max = 1000, message = "must be from 1 to 1000"))]
    pub rate_limit_per_second: Option<u32>,
    #[validate(range(min = 60, max = 604800, message = "must be from 60 to 604800 seconds"))]
    pub sync_interval_seconds: Option<u64>,
    #[validate(range(max = 86400, message = "must be from 0 to 86400 seconds"))]
    pub cache_ttl_seconds: Option<u64>,
}

/// Changes to a connection; omitted fields stay as they are. Credentials merge
/// field by field, so a key can be rotated alone.
#[derive(Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateConnectionRequest {
    /// Cannot change; accepted only when equal to the current provider.
    pub provider: Option<ProviderKind>,
    #[validate(custom(function = "valid_name"))]
    pub name: Option<String>,
    /// `null` resets to the provider default (Periskope only).
    #[serde(default, deserialize_with = "double_option")]
    #[validate(custom(function = "valid_base_url"))]
    #[schema(value_type = Option<String>)]
    pub base_url: Option<Option<String>>,
    #[validate(nested)]
    pub credentials: Option<CredentialsInput>,
    #[validate(nested)]
    pub settings: Option<SettingsInput>,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
fn double_option<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

fn error(code: &'static str, message: &'static str) -> ValidationError {
    ValidationError::new(code).with_message(message.into())
}

fn valid_name(name: &str) -> Result<(), ValidationError> {
    let n = name.trim().chars().count();
    if n == 0 || n > 100 || name.chars().any(char::is_control) {
        return Err(error("name", "must be 1 to 100 printable characters"));
    }
    Ok(())
}

fn valid_base_url(raw: &str) -> Result<(), ValidationError> {
    let url = url::Url::parse(raw).map_err(|_| error("url", "must be an absolute http(s) URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(error("url", "must be an absolute http(s) URL"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(error(
            "url",
            "must not embed credentials; put them in `credentials`",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(error("url", "must not have a query or fragment"));
    }
    Ok(())
}

fn valid_country(code: &str) -> Result<(), ValidationError> {
    if code.len() == 2 && code.bytes().all(|b| b.is_ascii_alphabetic()) {
        Ok(())
    } else {
        Err(error(
            "country",
            "must be an ISO 3166-1 alpha-2 code such as IN or BR",
        ))
    }
}

fn valid_phone(raw: &str) -> Result<(), ValidationError> {
    normalize_phone(raw).map(|_| ()).ok_or_else(|| {
        error(
            "phone",
            "must be a phone number with country code, or a `phone-…` id",
        )
    })
}

/// Periskope's `x-phone` wants digits only (`+91 98745 32456` → `919874532456`) or a `phone-…` id.
fn normalize_phone(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if let Some(id) = raw.strip_prefix("phone-") {
        return (!id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()))
            .then(|| raw.to_string());
    }
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    let only_separators = raw
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')' | '.'));
    (only_separators && (7..=15).contains(&digits.len())).then_some(digits)
}

// ---- responses ------------------------------------------------------------

/// A connection as answered: credentials redacted.
#[derive(Serialize, ToSchema)]
pub struct ConnectionView {
    #[schema(example = "con_01jd2x9v8c0000000000000000")]
    pub id: String,
    pub provider: ProviderKind,
    pub name: String,
    pub base_url: String,
    pub credentials: CredentialsView,
    pub settings: ConnectionSettings,
    pub created_at: String,
    pub updated_at: String,
}

/// Credentials as shown: the API key reduced to its last four characters.
#[derive(Serialize, ToSchema)]
pub struct CredentialsView {
    #[schema(example = "…a1b2")]
    pub api_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ConnectionPage {
    pub data: Vec<ConnectionView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// `…` and the last four characters, only when the key is long enough that they give nothing away.
fn redact(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() >= 16 {
        format!("…{}", chars[chars.len() - 4..].iter().collect::<String>())
    } else {
        "…".to_string()
    }
}

impl From<&Connection> for ConnectionView {
    fn from(c: &Connection) -> Self {
        ConnectionView {
            id: c.id.clone(),
            provider: c.provider,
            name: c.name.clone(),
            base_url: c.base_url.clone(),
            credentials: CredentialsView {
                api_key: redact(&c.credentials.api_key),
                phone: c.credentials.phone.clone(),
                session: c.credentials.session.clone(),
            },
            settings: c.settings.clone(),
            created_at: ids::rfc3339(c.created_at),
            updated_at: ids::rfc3339(c.updated_at),
        }
    }
}

#[derive(Deserialize, Validate, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListConnectionsQuery {
    /// Page size, 1 to 500 (default 50).
    #[validate(range(min = 1, max = 500, message = "must be from 1 to 500"))]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Only connections of this provider.
    pub provider: Option<ProviderKind>,
}

// ---- rules shared by create and update ------------------------------------

fn input_value(c: &CredentialsInput, field: CredentialField) -> Option<&String> {
    match field {
        CredentialField::ApiKey => c.api_key.as_ref(),
        CredentialField::Phone => c.phone.as_ref(),
        CredentialField::Session => c.session.as_ref(),
    }
}

/// Applies credential input onto `creds`, refusing fields the provider does not use.
fn merge_credentials(
    provider: ProviderKind,
    input: &CredentialsInput,
    creds: &mut Credentials,
    errors: &mut FieldErrors,
) {
    for field in CredentialField::ALL {
        if input_value(input, field).is_some() && !provider.credential_fields().contains(&field) {
            errors.add(
                format!("credentials.{}", field.as_str()),
                format!("is not used by provider `{provider}`"),
            );
        }
    }
    if let Some(k) = &input.api_key {
        creds.api_key = k.clone();
    }
    if let Some(p) = &input.phone {
        creds.phone = normalize_phone(p);
    }
    if let Some(s) = &input.session {
        creds.session = Some(s.trim().to_string());
    }
}

fn require_credentials(provider: ProviderKind, creds: &Credentials, errors: &mut FieldErrors) {
    for field in provider.credential_fields() {
        let present = match field {
            CredentialField::ApiKey => !creds.api_key.is_empty(),
            CredentialField::Phone => creds.phone.is_some(),
            CredentialField::Session => creds.session.is_some(),
        };
        if !present {
            errors.add(
                format!("credentials.{}", field.as_str()),
                format!("is required for provider `{provider}`"),
            );
        }
    }
}

fn merge_settings(input: &SettingsInput, s: &mut ConnectionSettings) {
    if let Some(c) = &input.default_country {
        s.default_country = c.as_ref().map(|c| c.to_ascii_uppercase());
    }
    if let Some(v) = input.rate_limit_per_second {
        s.rate_limit_per_second = v;
    }
    if let Some(v) = input.sync_interval_seconds {
        s.sync_interval_seconds = v;
    }
    if let Some(v) = input.cache_ttl_seconds {
        s.cache_ttl_seconds = v;
    }
}

fn resolve_base_url(
    provider: ProviderKind,
    given: Option<&str>,
    errors: &mut FieldErrors,
) -> String {
    match given.or(provider.default_base_url()) {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => {
            errors.add("base_url", format!("is required for provider `{provider}`"));
            String::new()
        }
    }
}

// ---- handlers -------------------------------------------------------------

/// Create a connection.
#[utoipa::path(post, path = "/v1/admin/connections", tag = "admin",
    request_body = CreateConnectionRequest,
    responses(
        (status = 201, description = "Created", body = ConnectionView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "The key lacks the `admin` scope", body = ErrorBody),
        (status = 429, description = "Over this key's quota", body = ErrorBody),
        (status = 409, description = "A connection with this name exists", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn create_connection(
    state: web::Data<AppState>,
    admin: AdminCaller,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: CreateConnectionRequest = read_json(&req, body).await?;
    let mut errors = FieldErrors::new();
    let mut credentials = Credentials::default();
    merge_credentials(
        body.provider,
        &body.credentials,
        &mut credentials,
        &mut errors,
    );
    require_credentials(body.provider, &credentials, &mut errors);
    let base_url = resolve_base_url(body.provider, body.base_url.as_deref(), &mut errors);
    let mut settings = ConnectionSettings::default();
    merge_settings(&body.settings, &mut settings);
    errors.into_result()?;

    let now = ids::now();
    let connection = Connection {
        id: ids::new_id(ids::CONNECTION),
        org_id: admin.0.org_id,
        provider: body.provider,
        name: body.name.trim().to_string(),
        base_url,
        credentials,
        settings,
        created_at: now,
        updated_at: now,
    };
    let saved = connection.clone();
    state
        .store
        .run(move |conn| queries::insert_connection(conn, &saved))
        .await?;
    tracing::info!(connection_id = %connection.id, provider = %connection.provider, "connection created");
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/v1/admin/connections/{}", connection.id),
        ))
        .json(ConnectionView::from(&connection)))
}

/// List the org's connections, oldest first.
#[utoipa::path(get, path = "/v1/admin/connections", tag = "admin",
    params(ListConnectionsQuery),
    responses(
        (status = 200, description = "A page of connections", body = ConnectionPage),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "The key lacks the `admin` scope", body = ErrorBody),
        (status = 429, description = "Over this key's quota", body = ErrorBody),
        (status = 422, description = "Invalid query parameter", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn list_connections(
    state: web::Data<AppState>,
    admin: AdminCaller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: ListConnectionsQuery = parse_query(req.query_string())?;
    let after = q.cursor.as_deref().map(cursor::decode).transpose()?;
    let limit = q.limit.unwrap_or(50) as usize;
    let org_id = admin.0.org_id;
    let rows = state
        .store
        .run(move |conn| {
            queries::list_connections(
                conn,
                &org_id,
                q.provider,
                after.as_deref(),
                limit as i64 + 1,
            )
        })
        .await?;
    let (rows, next_cursor) = cursor::page(rows, limit, |c| &c.id);
    Ok(HttpResponse::Ok().json(ConnectionPage {
        data: rows.iter().map(ConnectionView::from).collect(),
        next_cursor,
    }))
}

async fn load(state: &AppState, org_id: String, id: String) -> Result<Connection, ApiError> {
    state
        .store
        .run(move |conn| queries::find_connection(conn, &org_id, &id))
        .await?
        .ok_or_else(|| ApiError::not_found("connection"))
}

/// Get one connection.
#[utoipa::path(get, path = "/v1/admin/connections/{id}", tag = "admin",
    params(("id" = String, Path, description = "Connection id")),
    responses(
        (status = 200, description = "The connection", body = ConnectionView),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "The key lacks the `admin` scope", body = ErrorBody),
        (status = 429, description = "Over this key's quota", body = ErrorBody),
        (status = 404, description = "No such connection in this org", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn get_connection(
    state: web::Data<AppState>,
    admin: AdminCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let c = load(&state, admin.0.org_id, path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(ConnectionView::from(&c)))
}

/// Change a connection's name, base URL, credentials or settings.
#[utoipa::path(patch, path = "/v1/admin/connections/{id}", tag = "admin",
    params(("id" = String, Path, description = "Connection id")),
    request_body = UpdateConnectionRequest,
    responses(
        (status = 200, description = "The updated connection", body = ConnectionView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "The key lacks the `admin` scope", body = ErrorBody),
        (status = 429, description = "Over this key's quota", body = ErrorBody),
        (status = 404, description = "No such connection in this org", body = ErrorBody),
        (status = 409, description = "A connection with this name exists", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn update_connection(
    state: web::Data<AppState>,
    admin: AdminCaller,
    path: web::Path<String>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let mut c = load(&state, admin.0.org_id, path.into_inner()).await?;
    let body: UpdateConnectionRequest = read_json(&req, body).await?;
    let mut errors = FieldErrors::new();
    if body.provider.is_some_and(|p| p != c.provider) {
        errors.add(
            "provider",
            "cannot be changed; create a new connection instead",
        );
    }
    if let Some(name) = &body.name {
        c.name = name.trim().to_string();
    }
    if let Some(base_url) = &body.base_url {
        c.base_url = resolve_base_url(c.provider, base_url.as_deref(), &mut errors);
    }
    if let Some(input) = &body.credentials {
        merge_credentials(c.provider, input, &mut c.credentials, &mut errors);
    }
    if let Some(input) = &body.settings {
        merge_settings(input, &mut c.settings);
    }
    errors.into_result()?;
    c.updated_at = ids::now();
    let saved = c.clone();
    let found = state
        .store
        .run(move |conn| queries::update_connection(conn, &saved))
        .await?;
    if !found {
        return Err(ApiError::not_found("connection"));
    }
    state.live.forget(&c.id);
    tracing::info!(connection_id = %c.id, "connection updated");
    Ok(HttpResponse::Ok().json(ConnectionView::from(&c)))
}

/// Delete a connection.
#[utoipa::path(delete, path = "/v1/admin/connections/{id}", tag = "admin",
    params(("id" = String, Path, description = "Connection id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "The key lacks the `admin` scope", body = ErrorBody),
        (status = 429, description = "Over this key's quota", body = ErrorBody),
        (status = 404, description = "No such connection in this org", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn delete_connection(
    state: web::Data<AppState>,
    admin: AdminCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let org_id = admin.0.org_id;
    let log_id = id.clone();
    let found = state
        .store
        .run(move |conn| queries::delete_connection(conn, &org_id, &id))
        .await?;
    if !found {
        return Err(ApiError::not_found("connection"));
    }
    state.live.forget(&log_id);
    tracing::info!(connection_id = %log_id, "connection deleted");
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_normalize_to_digits_or_keep_a_phone_id() {
        assert_eq!(
            normalize_phone("+91 98745 32456").as_deref(),
            Some("919874532456")
        );
        assert_eq!(
            normalize_phone("phone-abc123").as_deref(),
            Some("phone-abc123")
        );
        assert_eq!(normalize_phone("12"), None);
        assert_eq!(normalize_phone("call me"), None);
    }

    #[test]
    fn only_long_keys_show_their_last_four() {
        assert_eq!(redact("pk_live_0123456789abcdef"), "…cdef");
        assert_eq!(redact("short"), "…");
    }
}
