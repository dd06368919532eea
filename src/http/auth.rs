//! The `Caller` extractor: `Authorization: Bearer <key>` into an org and its
//! scopes (through `service::api_keys::authenticate`), the key's inbound quota,
//! and `Authorized<S>`, which checks a route's scope before its body is read.

use std::future::Future;
use std::pin::Pin;

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpMessage, HttpRequest};

use crate::error::{ApiError, ErrorCode};
use crate::http::audit::Identity;
use crate::service::api_keys::{self, Scope};
use crate::state::State;

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
        let state = req.app_data::<web::Data<State>>().cloned();
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
            let row = api_keys::authenticate(&state, key).await?;
            request.extensions_mut().insert(Identity {
                org_id: row.org_id.clone(),
                key_id: row.id.clone(),
                key_prefix: row.prefix.clone(),
            });
            let scopes = row.scopes.split(',').filter_map(Scope::parse).collect();
            // The quota is per key; the middleware puts the figures on the response.
            let rate = state.limiter.check(&row.id).await;
            request.extensions_mut().insert(rate);
            if let Some(wait) = rate.retry_after {
                return Err(ApiError::new(
                    ErrorCode::RateLimited,
                    format!("this API key is over its quota; retry in {wait}s"),
                )
                .with_retry_after(wait));
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
