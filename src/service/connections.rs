//! Connections to providers: the rules of creating and changing one (fields
//! checked all at once, credentials merged field by field and checked against
//! what the provider needs, the base URL defaulted per provider, Periskope's phone
//! in its `x-phone` form), and reading, listing and deleting an org's connections.

use std::sync::Arc;

use serde::{Deserialize, Deserializer};
use unicontacts_adapters::quota::QuotaReport;
use unicontacts_adapters::{phone, AdapterError, CredentialField, ProviderKind};

use crate::cache::OncePer;
use crate::store::Store;
use utoipa::ToSchema;
use validator::{Validate, ValidationError};

use crate::change::{self, Scope};
use crate::error::{ApiError, FieldErrors};
use crate::ids;
use crate::notices::Notice;
use crate::page::{Page, PageRequest};
use crate::state::State;
pub use crate::store::connection_status::Health;
use crate::store::connection_status::{self as status_queries, StatusRow};
use crate::store::connections::{self as queries, Connection, ConnectionSettings, Credentials};
use crate::store::deletion_holds::HoldRow;
use crate::store::events;
use crate::store::models::SyncRunRow;

// ---- request bodies -------------------------------------------------------

/// A new connection to a provider.
#[derive(Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConnectionRequest {
    pub provider: ProviderKind,
    #[validate(custom(function = "valid_name"))]
    #[schema(example = "Sales team Periskope")]
    #[schema(min_length = 1, max_length = 100)]
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
    #[schema(min_length = 1, max_length = 1024)]
    pub api_key: Option<String>,
    /// Periskope `x-phone`: the connected phone's number (any written form) or its `phone-…` id.
    #[validate(custom(function = "valid_phone"))]
    #[schema(example = "+91 98745 32456")]
    pub phone: Option<String>,
    #[validate(length(min = 1, max = 200, message = "must be 1 to 200 characters"))]
    #[schema(min_length = 1, max_length = 200)]
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
    #[schema(minimum = 1, maximum = 1000)]
    pub rate_limit_per_second: Option<u32>,
    #[validate(range(min = 60, max = 604800, message = "must be from 60 to 604800 seconds"))]
    #[schema(minimum = 60, maximum = 604800)]
    pub sync_interval_seconds: Option<u64>,
    #[validate(range(max = 86400, message = "must be from 0 to 86400 seconds"))]
    #[schema(maximum = 86400)]
    pub cache_ttl_seconds: Option<u64>,
    /// Records per list page when syncing, at most the provider's own maximum
    /// (Periskope 2000, WA.cr 100, Gateway 200); `null` goes back to that maximum.
    #[serde(default, deserialize_with = "double_option")]
    #[validate(range(min = 1, max = 2000, message = "must be from 1 to 2000"))]
    #[schema(minimum = 1, maximum = 2000)]
    #[schema(value_type = Option<u32>)]
    pub page_size: Option<Option<u32>>,
    /// The status, source and kind a created contact gets when its body does not
    /// say (WA.cr requires all three); `null` clears one.
    #[serde(default, deserialize_with = "double_option")]
    #[validate(range(min = 1, message = "must be a positive id"))]
    #[schema(minimum = 1)]
    #[schema(value_type = Option<i64>)]
    pub default_status_id: Option<Option<i64>>,
    #[serde(default, deserialize_with = "double_option")]
    #[validate(range(min = 1, message = "must be a positive id"))]
    #[schema(minimum = 1)]
    #[schema(value_type = Option<i64>)]
    pub default_source_id: Option<Option<i64>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, example = "lead")]
    pub default_kind: Option<Option<unicontacts_adapters::canonical::ContactKind>>,
    /// The deletion guard (default 10): a sync whose deletion check would mark
    /// more than this percentage of the connection's live contacts deleted, and
    /// at least `deletion_guard_min`, deletes nothing and holds them for review
    /// (`GET /v1/admin/sync-runs/{id}/held-deletions`); a listing that comes
    /// back empty holds always. `100` turns the guard off.
    #[validate(range(max = 100, message = "must be from 0 to 100 (100 turns the guard off)"))]
    #[schema(minimum = 0, maximum = 100)]
    pub deletion_guard_percent: Option<u32>,
    /// The fewest deletions the percentage rule holds (default 5).
    #[validate(range(max = 1000000, message = "must be from 0 to 1000000"))]
    #[schema(minimum = 0, maximum = 1000000)]
    pub deletion_guard_min: Option<u32>,
}

/// Changes to a connection; omitted fields stay as they are. Credentials merge
/// field by field, so a key can be rotated alone.
#[derive(Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateConnectionRequest {
    /// Cannot change; accepted only when equal to the current provider.
    pub provider: Option<ProviderKind>,
    #[validate(custom(function = "valid_name"))]
    #[schema(min_length = 1, max_length = 100)]
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
    if !super::url_form(raw) {
        return Err(error("url", super::URL_FORM));
    }
    Ok(())
}

fn valid_country(code: &str) -> Result<(), ValidationError> {
    if phone::is_known_region(code) {
        Ok(())
    } else {
        Err(error(
            "country",
            "must be an assigned ISO 3166-1 alpha-2 country code such as IN or BR",
        ))
    }
}

fn valid_phone(raw: &str) -> Result<(), ValidationError> {
    CredentialField::Phone
        .normalize(raw)
        .map(|_| ())
        .map_err(|message| ValidationError::new("phone").with_message(message.into()))
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
    // Values the validator refused are reported already; they change nothing.
    if let Some(k) = &input.api_key {
        creds.api_key = k.clone();
    }
    if let Some(p) = &input.phone {
        if let Ok(p) = CredentialField::Phone.normalize(p) {
            creds.phone = Some(p);
        }
    }
    if let Some(s) = &input.session {
        if let Ok(s) = CredentialField::Session.normalize(s) {
            creds.session = Some(s);
        }
    }
}

fn require_credentials(provider: ProviderKind, creds: &Credentials, errors: &mut FieldErrors) {
    for field in provider.credential_fields() {
        let present = match field {
            CredentialField::ApiKey => !creds.api_key.is_empty(),
            CredentialField::Phone => creds.phone.is_some(),
            CredentialField::Session => creds.session.is_some(),
        };
        let path = format!("credentials.{}", field.as_str());
        // A value given but refused is reported as such already.
        if !present && !errors.has(&path) {
            errors.add(path, format!("is required for provider `{provider}`"));
        }
    }
}

fn merge_settings(
    provider: ProviderKind,
    input: &SettingsInput,
    s: &mut ConnectionSettings,
    errors: &mut FieldErrors,
) {
    if let Some(size) = input.page_size {
        match size {
            Some(n) if n > provider.max_page_size() && !errors.has("settings.page_size") => errors
                .add(
                    "settings.page_size",
                    format!(
                        "must be at most {} for provider `{provider}`",
                        provider.max_page_size()
                    ),
                ),
            _ => s.page_size = size,
        }
    }
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
    if let Some(v) = input.default_status_id {
        s.default_status_id = v;
    }
    if let Some(v) = input.default_source_id {
        s.default_source_id = v;
    }
    if let Some(v) = input.default_kind {
        s.default_kind = v;
    }
    if let Some(v) = input.deletion_guard_percent {
        // Above 100 is reported by the validator already.
        s.deletion_guard_percent = u8::try_from(v.min(100)).unwrap_or(100);
    }
    if let Some(v) = input.deletion_guard_min {
        s.deletion_guard_min = v;
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

// ---- the service --------------------------------------------------------

/// Creates a connection for the org: every field error at once, nothing saved on any.
/// What checking a connection's credentials with the provider found.
enum Checked {
    Accepted,
    /// Refused: 422 naming the credential.
    Refused(ApiError),
    /// The provider could not say (down, slow, throttled): the connection is
    /// saved unverified, with the error in its health.
    Unknown(String),
}

/// Checks the connection's credentials with one cheap call (a one-contact page).
async fn check_credentials(state: &State, c: &Connection) -> Checked {
    let adapter = match state.providers.for_check(c) {
        Ok(a) => a,
        Err(e) => return Checked::Unknown(e.to_string()),
    };
    match adapter.list_contacts(None).await {
        Ok(_) => Checked::Accepted,
        Err(AdapterError::Unauthorized { status }) => Checked::Refused(FieldErrors::single(
            "credentials.api_key",
            format!("the provider refused this API key (HTTP {status})"),
        )),
        Err(AdapterError::Rejected {
            message, fields, ..
        }) if c.provider == ProviderKind::Periskope && fields.get("x-phone").is_some() => {
            Checked::Refused(FieldErrors::single(
                "credentials.phone",
                format!("the provider refused this phone: {message}"),
            ))
        }
        Err(AdapterError::SessionMissing { .. }) => Checked::Refused(FieldErrors::single(
            "credentials.session",
            "the gateway has no such session",
        )),
        Err(e) => Checked::Unknown(e.to_string()),
    }
}

/// Records what a credentials check found (`None`: none was made, so the
/// credentials are not verified), in the caller's transaction.
fn record_check(
    conn: &mut crate::store::DbConnection,
    id: &str,
    checked: Option<&Checked>,
    now: chrono::NaiveDateTime,
) -> Result<(), crate::store::StoreError> {
    match checked {
        Some(Checked::Accepted) => status_queries::record_success(conn, id, now),
        Some(Checked::Unknown(message)) => {
            status_queries::unverify(conn, id)?;
            status_queries::record_failure(
                conn,
                id,
                status_queries::UPSTREAM,
                &format!("checking the credentials: {message}"),
                now,
            )
        }
        Some(Checked::Refused(_)) | None => status_queries::unverify(conn, id),
    }
}

/// Creates the org's connection. With `verify`, its credentials are checked
/// first with one cheap call: refused → 422 naming the credential, nothing
/// saved; the provider unreachable → saved unverified, the error in its health.
/// The scheduler syncs a connection only once its credentials were accepted.
pub async fn create(
    state: &State,
    org_id: &str,
    body: CreateConnectionRequest,
    verify: bool,
) -> Result<Connection, ApiError> {
    let mut errors = FieldErrors::of(&body);
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
    merge_settings(body.provider, &body.settings, &mut settings, &mut errors);
    errors.into_result()?;

    let now = ids::now();
    let connection = Connection {
        id: ids::new_id(ids::CONNECTION),
        org_id: org_id.to_string(),
        provider: body.provider,
        name: body.name.trim().to_string(),
        base_url,
        credentials,
        settings,
        created_at: now,
        updated_at: now,
    };
    let checked = if verify {
        Some(check_credentials(state, &connection).await)
    } else {
        None
    };
    if let Some(Checked::Refused(e)) = checked {
        return Err(e);
    }
    let saved = connection.clone();
    let sealer = state.store.sealer()?;
    state
        .store
        .write(move |conn| {
            crate::store::in_transaction(conn, |conn| {
                queries::insert_connection(conn, &sealer, &saved)?;
                status_queries::insert(conn, &StatusRow::new(&saved.id))?;
                record_check(conn, &saved.id, checked.as_ref(), now)
            })
        })
        .await?;
    tracing::info!(connection_id = %connection.id, provider = %connection.provider, "connection created");
    Ok(connection)
}

/// A connection with what operators watch: its health, last error, last sync
/// and next scheduled one.
pub struct ConnectionDetails {
    pub connection: Connection,
    pub status: StatusRow,
    pub health: Health,
    pub last_sync: Option<SyncRunRow>,
    /// The deletions a sync's guard holds for review, if any.
    pub hold: Option<HoldRow>,
    /// `None`: paused, credentials not verified yet, or no scheduler in this process.
    pub next_sync_at: Option<chrono::NaiveDateTime>,
}

/// The details of these connections (one status read, one probe per connection
/// for its last run).
pub async fn details(
    state: &State,
    conns: Vec<Connection>,
) -> Result<Vec<ConnectionDetails>, ApiError> {
    let scheduled = state.settings.scheduler_tick_ms > 0;
    let out = state
        .store
        .run(move |conn| {
            let ids: Vec<String> = conns.iter().map(|c| c.id.clone()).collect();
            let mut statuses = status_queries::find(conn, &ids)?;
            let mut holds = crate::store::deletion_holds::current(conn, &ids)?;
            let mut out = Vec::with_capacity(conns.len());
            for c in conns {
                let status = statuses
                    .remove(&c.id)
                    .unwrap_or_else(|| StatusRow::new(&c.id));
                let last_sync = crate::store::sync_runs::last_finished_run(conn, &c.id)?;
                let next_sync_at = (scheduled && status.schedulable()).then(|| {
                    crate::sync::scheduler::next_due(
                        &c,
                        last_sync.as_ref().and_then(|r| r.finished_at),
                    )
                    .max(ids::now())
                });
                let hold = holds.remove(&c.id);
                out.push(ConnectionDetails {
                    health: status_queries::health(&status, hold.is_some()),
                    hold,
                    connection: c,
                    status,
                    last_sync,
                    next_sync_at,
                });
            }
            Ok(out)
        })
        .await?;
    Ok(out)
}

/// One connection's details.
pub async fn detail(state: &State, c: Connection) -> Result<ConnectionDetails, ApiError> {
    details(state, vec![c])
        .await?
        .pop()
        .ok_or_else(|| ApiError::not_found("connection"))
}

/// The org's connections, oldest first, optionally of one provider or health.
pub async fn list(
    state: &State,
    org_id: &str,
    provider: Option<ProviderKind>,
    health: Option<Health>,
    page: PageRequest,
) -> Result<Page<ConnectionDetails>, ApiError> {
    let org_id = org_id.to_string();
    let fetch = page.fetch();
    let sealer = state.store.sealer()?;
    let rows = state
        .store
        .run(move |conn| {
            queries::list_connections(
                conn,
                &sealer,
                &org_id,
                provider,
                health,
                page.after.as_deref(),
                fetch,
            )
        })
        .await?;
    let page = Page::from_rows(rows, page.limit, |c| &c.id);
    let next_cursor = page.next_cursor;
    Ok(Page {
        data: details(state, page.data).await?,
        next_cursor,
    })
}

/// The org's connection, read from the database; another org's is 404.
pub async fn get(state: &State, org_id: &str, id: &str) -> Result<Connection, ApiError> {
    let (org, id) = (org_id.to_string(), id.to_string());
    let sealer = state.store.sealer()?;
    state
        .store
        .run(move |conn| queries::find_connection(conn, &sealer, &org, &id))
        .await?
        .ok_or_else(|| ApiError::not_found("connection"))
}

/// The org's connection, from memory when possible (for the hot paths: live
/// reads, sync triggers); another org's is 404.
pub async fn get_cached(
    state: &State,
    org_id: &str,
    id: &str,
) -> Result<Arc<Connection>, ApiError> {
    if let Some(c) = state.connections.get(org_id, id).await {
        return Ok(c);
    }
    let c = Arc::new(get(state, org_id, id).await?);
    state.connections.insert(c.clone()).await;
    Ok(c)
}

/// The org's connection of that name, if any.
pub async fn find_by_name(
    state: &State,
    org_id: &str,
    name: &str,
) -> Result<Option<Connection>, ApiError> {
    let (org, name) = (org_id.to_string(), name.to_string());
    let sealer = state.store.sealer()?;
    Ok(state
        .store
        .run(move |conn| queries::find_connection_by_name(conn, &sealer, &org, &name))
        .await?)
}

/// Changes the org's connection; omitted fields stay, credentials merge field by field.
pub async fn update(
    state: &State,
    org_id: &str,
    id: &str,
    body: UpdateConnectionRequest,
    verify: bool,
) -> Result<Connection, ApiError> {
    let mut c = get(state, org_id, id).await?;
    let (old_url, old_credentials) = (c.base_url.clone(), c.credentials.clone());
    let mut errors = FieldErrors::of(&body);
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
        merge_settings(c.provider, input, &mut c.settings, &mut errors);
    }
    errors.into_result()?;
    let now = ids::now();
    c.updated_at = now;
    // New credentials (or a new place to use them) are checked like a new connection's.
    let recheck = c.base_url != old_url || c.credentials != old_credentials;
    let checked = if recheck && verify {
        Some(check_credentials(state, &c).await)
    } else {
        None
    };
    if let Some(Checked::Refused(e)) = checked {
        return Err(e);
    }
    let saved = c.clone();
    let sealer = state.store.sealer()?;
    let found = state
        .store
        .write(move |conn| {
            crate::store::in_transaction(conn, |conn| {
                if !queries::update_connection(conn, &sealer, &saved)? {
                    return Ok(false);
                }
                if recheck {
                    record_check(conn, &saved.id, checked.as_ref(), now)?;
                }
                Ok(true)
            })
        })
        .await?;
    if !found {
        return Err(ApiError::not_found("connection"));
    }
    state.changed(Notice::Connection(c.id.clone())).await;
    tracing::info!(connection_id = %c.id, "connection updated");
    Ok(c)
}

/// Deletes the org's connection with its contacts and runs.
pub async fn delete(state: &State, org_id: &str, id: &str) -> Result<(), ApiError> {
    let cause = events::Cause::api_write(crate::telemetry::request_id());
    // Under the lock every writer of the org's contacts takes: no contact of
    // the connection is stored after it is gone (a missing one is 404).
    let scope = Scope::new(org_id, cause).of_connection(id);
    change::apply(&state.store, scope, |change| change.delete_connection()).await?;
    state.changed(Notice::Connection(id.to_string())).await;
    tracing::info!(connection_id = %id, "connection deleted");
    Ok(())
}

/// The connection's credential quota as last learned (every connection of the
/// credential shares it); `None` until a call was made.
pub async fn upstream_quota(state: &State, c: &Connection) -> Option<QuotaReport> {
    state.providers.quota_report(c).await
}

/// Pauses (or resumes) the scheduled syncs of the org's connection; a run going
/// on goes to its end (cancel it to stop it). While paused, a sync started
/// through the API is refused too.
pub async fn set_sync_paused(
    state: &State,
    org_id: &str,
    id: &str,
    paused: bool,
) -> Result<Connection, ApiError> {
    let c = get(state, org_id, id).await?;
    let cid = c.id.clone();
    state
        .store
        .write(move |conn| crate::store::connection_status::set_paused(conn, &cid, paused))
        .await?;
    tracing::info!(connection_id = %c.id, paused, "connection sync pause changed");
    Ok(c)
}

/// Records a call to the connection's provider for its health, in the
/// background: a failure each time; a success at most once a minute (and the
/// write changes nothing unless the connection had failed).
pub fn note_call(
    store: &Store,
    noted: &OncePer,
    connection_id: &str,
    result: Result<(), &AdapterError>,
) {
    let failure = match result {
        Ok(()) => None,
        Err(e) => match status_queries::failure_kind(e) {
            None => return,
            Some(kind) => Some((kind, e.to_string())),
        },
    };
    match &failure {
        None if !noted.due(connection_id) => return,
        None => {}
        Some(_) => noted.forget(connection_id),
    }
    let (store, id) = (store.clone(), connection_id.to_string());
    tokio::spawn(async move {
        let now = ids::now();
        let written = store
            .write(move |conn| match &failure {
                None => status_queries::record_success(conn, &id, now),
                Some((kind, message)) => {
                    status_queries::record_failure(conn, &id, kind, message, now)
                }
            })
            .await;
        if let Err(e) = written {
            tracing::warn!(error = %e, "could not record a connection's health");
        }
    });
}
