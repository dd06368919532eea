//! API keys and scopes: generation (the key is shown once; only its SHA-256 and a
//! short visible prefix are stored), listing, revoking (the key stops working at
//! once), and authenticating a presented key (from memory when possible).

use std::sync::Arc;

use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::ids;
use crate::notices::Notice;
use crate::page::{Page, PageRequest};
use crate::state::State;
use crate::store::models::{ApiKeyRow, Org};
use crate::store::{api_keys as queries, orgs, Store};

/// Every key starts with this, so leaked keys are easy to recognise by scanners.
pub const KEY_PREFIX: &str = "uck_";
/// Characters of the key kept in clear to tell keys apart (`uck_` + 8).
const VISIBLE_PREFIX_LEN: usize = 12;
/// 32 random bytes (256 bits), base64url without padding.
const SECRET_LEN: usize = 43;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum Scope {
    #[serde(rename = "contacts:read")]
    ContactsRead,
    #[serde(rename = "contacts:write")]
    ContactsWrite,
    #[serde(rename = "admin")]
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::ContactsRead, Scope::ContactsWrite, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::ContactsRead => "contacts:read",
            Scope::ContactsWrite => "contacts:write",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Parses `a,b,c`; an empty list or an unknown name is an error naming it.
    pub fn parse_list(s: &str) -> Result<Vec<Scope>, String> {
        let mut scopes = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let scope = Scope::parse(part).ok_or_else(|| {
                format!(
                    "unknown scope `{part}`; known scopes are {}",
                    Self::ALL.map(Scope::as_str).join(", ")
                )
            })?;
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        if scopes.is_empty() {
            return Err("at least one scope is required".into());
        }
        Ok(scopes)
    }

    pub fn join(scopes: &[Scope]) -> String {
        scopes
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A freshly generated key: the clear text (shown once), its visible prefix and its hash.
pub struct NewKey {
    pub plaintext: String,
    pub prefix: String,
    pub hash: String,
}

impl NewKey {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let plaintext = format!(
            "{KEY_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        );
        Self {
            prefix: plaintext[..VISIBLE_PREFIX_LEN].to_string(),
            hash: hash_key(&plaintext),
            plaintext,
        }
    }
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKey")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// SHA-256, hex. Keys carry 256 random bits, so a fast hash is enough: there is
/// nothing to brute-force, unlike a password.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn looks_like_a_key(key: &str) -> bool {
    key.len() == KEY_PREFIX.len() + SECRET_LEN
        && key.starts_with(KEY_PREFIX)
        && key[KEY_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whose key: an org by id (the admin API), or by name, created if new (`keys create`).
pub enum OrgRef<'a> {
    Id(&'a str),
    Name(&'a str),
}

/// A key just made: its org, its row, and the key itself (shown once).
pub struct CreatedKey {
    pub org: Org,
    pub row: ApiKeyRow,
    pub key: String,
}

impl std::fmt::Debug for CreatedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedKey")
            .field("org", &self.org.id)
            .field("id", &self.row.id)
            .field("prefix", &self.row.prefix)
            .finish_non_exhaustive()
    }
}

/// A key as the API shows it (never the key itself).
#[derive(Serialize, ToSchema)]
pub struct ApiKeyView {
    #[schema(example = "key_01jd2x9v8c0000000000000000")]
    pub id: String,
    pub name: String,
    /// The key's first characters, to tell keys apart.
    #[schema(example = "uck_Ab3dEf9h")]
    pub prefix: String,
    pub scopes: Vec<Scope>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub revoked_at: Option<String>,
    /// When the key was last used (recorded at most once a minute).
    #[schema(format = DateTime)]
    pub last_used_at: Option<String>,
    /// When the key stops working; none: never.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
}

impl From<&ApiKeyRow> for ApiKeyView {
    fn from(r: &ApiKeyRow) -> Self {
        ApiKeyView {
            id: r.id.clone(),
            name: r.name.clone(),
            prefix: r.prefix.clone(),
            scopes: scopes_of(r),
            created_at: ids::rfc3339(r.created_at),
            revoked_at: r.revoked_at.map(ids::rfc3339),
            last_used_at: r.last_used_at.map(ids::rfc3339),
            expires_at: r.expires_at.map(ids::rfc3339),
        }
    }
}

/// The scopes a stored key holds.
pub fn scopes_of(row: &ApiKeyRow) -> Vec<Scope> {
    row.scopes.split(',').filter_map(Scope::parse).collect()
}

/// Creates a key named `name` with `scopes` for the org (an org named for the
/// first time is created). Names are 1 to 100 characters once trimmed.
pub async fn create(
    store: &Store,
    org: OrgRef<'_>,
    name: &str,
    scopes: &[Scope],
) -> Result<CreatedKey, ApiError> {
    create_expiring(store, org, name, scopes, None).await
}

/// An expiry given as RFC 3339: a time in the future.
fn parse_expiry(text: &str) -> Result<chrono::NaiveDateTime, &'static str> {
    let at = chrono::DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.naive_utc())
        .map_err(|_| "must be an RFC 3339 time such as 2027-01-01T00:00:00Z")?;
    if at <= ids::now() {
        return Err("must be in the future");
    }
    Ok(at)
}

/// [`create`], with a time the key stops working at (RFC 3339, in the future).
pub async fn create_expiring(
    store: &Store,
    org: OrgRef<'_>,
    name: &str,
    scopes: &[Scope],
    expires_at: Option<&str>,
) -> Result<CreatedKey, ApiError> {
    let mut errors = crate::error::FieldErrors::new();
    let expires_at = match expires_at.map(parse_expiry).transpose() {
        Ok(at) => at,
        Err(message) => {
            errors.add("expires_at", message);
            None
        }
    };
    let name = name.trim().to_string();
    if name.is_empty() || name.chars().count() > 100 {
        errors.add("name", "must be 1 to 100 characters");
    }
    if scopes.is_empty() {
        errors.add("scopes", "must hold at least one scope");
    }
    let org = match org {
        OrgRef::Id(id) => Err(id.to_string()),
        OrgRef::Name(n) => {
            let n = n.trim();
            if n.is_empty() || n.chars().count() > 100 {
                errors.add("org", "must be 1 to 100 characters");
            }
            Ok(n.to_string())
        }
    };
    errors.into_result()?;
    let scopes = scopes.to_vec();
    let created = store
        .run(move |conn| {
            let org = match org {
                Ok(name) => orgs::find_or_insert_org(conn, &name)?,
                Err(id) => orgs::find_org(conn, &id)?.ok_or(crate::store::StoreError::NotFound)?,
            };
            let key = NewKey::generate();
            let row = ApiKeyRow {
                id: ids::new_id(ids::API_KEY),
                org_id: org.id.clone(),
                name,
                prefix: key.prefix.clone(),
                key_hash: key.hash.clone(),
                scopes: Scope::join(&scopes),
                created_at: ids::now(),
                revoked_at: None,
                last_used_at: None,
                expires_at,
            };
            queries::insert_api_key(conn, &row)?;
            Ok(CreatedKey {
                org,
                row,
                key: key.plaintext,
            })
        })
        .await?;
    tracing::info!(api_key_id = %created.row.id, prefix = %created.row.prefix, "API key created");
    Ok(created)
}

/// The org's keys, oldest first (revoked ones only when asked).
pub async fn list(
    store: &Store,
    org_id: &str,
    include_revoked: bool,
    page: PageRequest,
) -> Result<Page<ApiKeyRow>, ApiError> {
    let org_id = org_id.to_string();
    let fetch = page.fetch();
    let rows = store
        .run(move |conn| {
            queries::list_api_keys(conn, &org_id, include_revoked, page.after.as_deref(), fetch)
        })
        .await?;
    Ok(Page::from_rows(rows, page.limit, |r| &r.id))
}

/// Revokes the org's key; it stops working at once. Revoking twice is fine;
/// another org's key is 404. With `keep_an_admin` (the API), the org's last
/// active admin key is refused with 409: an org must not lock itself out.
pub async fn revoke(
    state: &State,
    org_id: &str,
    id: &str,
    keep_an_admin: bool,
) -> Result<(), ApiError> {
    let (org, key) = (org_id.to_string(), id.to_string());
    let outcome = state
        .store
        .write(move |conn| queries::revoke_api_key(conn, &org, &key, keep_an_admin))
        .await?;
    match outcome {
        queries::Revoked::Done => {}
        queries::Revoked::NotFound => return Err(ApiError::not_found("API key")),
        queries::Revoked::LastAdmin => {
            return Err(ApiError::conflict(
                "this is the organisation's last active admin key; create another \
                 (`unicontacts keys create --org <org> --scopes admin` on the server, \
                 or POST /v1/admin/api-keys) before revoking it",
            ))
        }
    }
    state.changed(Notice::Key(id.to_string())).await;
    tracing::info!(api_key_id = %id, "API key revoked");
    Ok(())
}

/// The active key a caller presented, or 401. Known keys come from memory;
/// unknown ones are not cached, so a key created elsewhere works at once.
pub async fn authenticate(state: &State, presented: &str) -> Result<Arc<ApiKeyRow>, ApiError> {
    if !looks_like_a_key(presented) {
        return Err(ApiError::unauthorized("invalid API key"));
    }
    let hash = hash_key(presented);
    if let Some(row) = state.keys.get(&hash).await {
        return in_use(state, row);
    }
    let lookup = hash.clone();
    let row = state
        .store
        .run(move |conn| queries::find_active_api_key_by_hash(conn, &lookup))
        .await?
        .ok_or_else(|| ApiError::unauthorized("invalid API key"))?;
    let row = Arc::new(row);
    state.keys.insert(hash, row.clone()).await;
    in_use(state, row)
}

/// A found key: refused past its expiry, else its use recorded (once a minute).
fn in_use(state: &State, row: Arc<ApiKeyRow>) -> Result<Arc<ApiKeyRow>, ApiError> {
    let now = ids::now();
    if row.expires_at.is_some_and(|e| e <= now) {
        return Err(ApiError::unauthorized("this API key has expired"));
    }
    if state.key_use.due(&row.id) {
        let (store, id) = (state.store.clone(), row.id.clone());
        tokio::spawn(async move {
            if let Err(e) = store
                .write(move |conn| queries::touch_api_key(conn, &id, now))
                .await
            {
                tracing::warn!(error = %e, "could not record an API key's use");
            }
        });
    }
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_long_random_and_hash_to_what_is_stored() {
        let a = NewKey::generate();
        let b = NewKey::generate();
        assert_ne!(a.plaintext, b.plaintext);
        assert!(looks_like_a_key(&a.plaintext), "{}", a.plaintext);
        assert!(a.plaintext.starts_with(&a.prefix));
        assert_eq!(hash_key(&a.plaintext), a.hash);
        assert!(!format!("{a:?}").contains(&a.plaintext));
    }

    #[test]
    fn scope_lists_parse_and_reject_unknown_names() {
        assert_eq!(
            Scope::parse_list("admin, contacts:read,admin").expect("scopes"),
            vec![Scope::Admin, Scope::ContactsRead]
        );
        assert!(Scope::parse_list("admin,root").is_err());
        assert!(Scope::parse_list(" , ").is_err());
    }
}
