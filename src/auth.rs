//! API keys and scopes: key generation and hashing, and the `Caller` extractor
//! that turns `Authorization: Bearer <key>` into an org and its scopes.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpMessage, HttpRequest};
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::startup::AppState;
use crate::store::api_keys;

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

/// Active keys by hash, so a request costs no database round trip for its key.
/// Revoking a key drops it here at once (`forget_key`); entries also age out.
#[derive(Clone)]
pub struct KeyCache {
    inner: moka::future::Cache<String, Arc<crate::store::models::ApiKeyRow>>,
}

impl Default for KeyCache {
    fn default() -> Self {
        Self {
            inner: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(std::time::Duration::from_secs(300))
                .support_invalidation_closures()
                .build(),
        }
    }
}

impl KeyCache {
    /// Drops the key with this id (after a revoke).
    pub fn forget_key(&self, key_id: &str) {
        let id = key_id.to_string();
        if self
            .inner
            .invalidate_entries_if(move |_, row| row.id == id)
            .is_err()
        {
            self.inner.invalidate_all();
        }
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub org_id: String,
    pub key_id: String,
    pub scopes: Vec<Scope>,
}

impl Caller {
    /// 403 unless the key holds `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.scopes.contains(&scope) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this API key lacks the `{}` scope",
                scope.as_str()
            )))
        }
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let request = req.clone();
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let header = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().map(str::to_owned));
        Box::pin(async move {
            let state = state.ok_or_else(|| {
                ApiError::internal(std::io::Error::other("application state missing"))
            })?;
            let value = match header {
                None => {
                    return Err(ApiError::unauthorized(
                        "missing `Authorization: Bearer <key>` header",
                    ))
                }
                Some(Err(_)) => {
                    return Err(ApiError::unauthorized("malformed Authorization header"))
                }
                Some(Ok(v)) => v,
            };
            let key = match value.split_once(' ') {
                Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
                _ => {
                    return Err(ApiError::unauthorized(
                        "expected `Authorization: Bearer <key>`",
                    ))
                }
            };
            if !looks_like_a_key(key) {
                return Err(ApiError::unauthorized("invalid API key"));
            }
            let hash = hash_key(key);
            let row = match state.keys.inner.get(&hash).await {
                Some(row) => row,
                None => {
                    let lookup = hash.clone();
                    let row = state
                        .store
                        .run(move |conn| api_keys::find_active_api_key_by_hash(conn, &lookup))
                        .await?
                        .ok_or_else(|| ApiError::unauthorized("invalid API key"))?;
                    let row = Arc::new(row);
                    // Unknown keys are not cached: a key created elsewhere works at once.
                    state.keys.inner.insert(hash, row.clone()).await;
                    row
                }
            };
            let scopes = row.scopes.split(',').filter_map(Scope::parse).collect();
            // The quota is per key; the middleware puts the figures on the response.
            let rate = state.limiter.check(&row.id);
            request.extensions_mut().insert(rate);
            if let Some(wait) = rate.retry_after {
                let mut err = ApiError::new(
                    crate::error::ErrorCode::RateLimited,
                    format!("this API key is over its quota; retry in {wait}s"),
                );
                err.retry_after = Some(wait);
                return Err(err);
            }
            Ok(Caller {
                org_id: row.org_id.clone(),
                key_id: row.id.clone(),
                scopes,
            })
        })
    }
}

/// The scope a route needs, as a type so the extractor checks it before the body is read.
pub trait RequiredScope {
    const SCOPE: Scope;
}

pub struct AdminScope;
impl RequiredScope for AdminScope {
    const SCOPE: Scope = Scope::Admin;
}

pub struct ReadScope;
impl RequiredScope for ReadScope {
    const SCOPE: Scope = Scope::ContactsRead;
}

pub struct WriteScope;
impl RequiredScope for WriteScope {
    const SCOPE: Scope = Scope::ContactsWrite;
}

/// An authenticated caller holding scope `S`: 401 without a valid key, 403 without the scope.
pub struct Authorized<S>(pub Caller, std::marker::PhantomData<S>);

/// A caller with the `admin` scope.
pub type AdminCaller = Authorized<AdminScope>;

impl<S: RequiredScope + 'static> FromRequest for Authorized<S> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let caller = Caller::from_request(req, payload);
        Box::pin(async move {
            let caller = caller.await?;
            caller.require(S::SCOPE)?;
            Ok(Authorized(caller, std::marker::PhantomData))
        })
    }
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
