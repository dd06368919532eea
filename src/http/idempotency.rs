//! `Idempotency-Key` on every POST, PATCH and DELETE of `/v1`: the key is kept
//! per org in the database (so it holds across replicas) with the request's
//! fingerprint (method, path, body) and, once the request ended, its answer. The
//! same key with the same request gets the same answer again
//! (`Idempotent-Replayed: true`) and nothing is done twice; with another request,
//! 422 `idempotency_key_reused`; while the first is running, 409
//! `idempotency_in_progress`. An attempt that did not learn whether the provider
//! wrote (a timeout, a provider's 5xx) keeps the key "unknown": the next attempt
//! with it goes ahead, told to look before it writes again.

use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ErrorCode};
use crate::http::extract::MAX_BODY_BYTES;
use crate::ids;
use crate::service::api_keys;
use crate::service::contact_writes::WriteOptions;
use crate::state::State;
use crate::store::idempotency::{self, Begin, StoredAnswer};

pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
/// The longest key taken.
pub const MAX_KEY_LEN: usize = 255;
/// How long a request holds its key before a dead holder's key is free again.
const HOLD: Duration = Duration::from_secs(120);

/// Set on a request whose key's last attempt did not learn the outcome.
#[derive(Debug, Clone, Copy)]
struct AfterUnknown;

/// How the handler's write is to go, as the request's key says.
pub fn write_options(req: &HttpRequest) -> WriteOptions {
    WriteOptions {
        look_first: req.extensions().get::<AfterUnknown>().is_some(),
    }
}

/// The error answered as a response here, so the middleware outside (request
/// id, access log) sees it like any handler's.
fn reject(req: ServiceRequest, e: ApiError) -> ServiceResponse<BoxBody> {
    req.error_response(e)
}

async fn read_body(req: &mut ServiceRequest) -> Result<Bytes, ApiError> {
    let mut payload = req.take_payload();
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request(format!("the request body could not be read: {e}"))
        })?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("request body exceeds {MAX_BODY_BYTES} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

pub async fn idempotency(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let writes = matches!(*req.method(), Method::POST | Method::PATCH | Method::DELETE);
    let key = req.headers().get(&IDEMPOTENCY_KEY).cloned();
    let (Some(key), true, true) = (key, writes, req.path().starts_with("/v1/")) else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let key = match key.to_str() {
        Ok(k) if !k.is_empty() && k.len() <= MAX_KEY_LEN => k.to_string(),
        _ => {
            return Ok(reject(
                req,
                ApiError::bad_request(format!(
                    "Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters"
                )),
            ))
        }
    };
    let Some(state) = req.app_data::<web::Data<State>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    // The org is the key's: an unauthenticated request goes on, to its 401.
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, k)| k.trim().to_string());
    let org = match presented {
        Some(k) => api_keys::authenticate(&state, &k)
            .await
            .ok()
            .map(|row| row.org_id.clone()),
        None => None,
    };
    let Some(org) = org else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let body = match read_body(&mut req).await {
        Ok(body) => body,
        Err(e) => return Ok(reject(req, e)),
    };
    let fingerprint = {
        let mut h = Sha256::new();
        h.update(req.method().as_str().as_bytes());
        h.update([0]);
        h.update(req.path().as_bytes());
        h.update([0]);
        h.update(req.query_string().as_bytes());
        h.update([0]);
        h.update(&body);
        hex::encode(h.finalize())
    };
    req.set_payload(Payload::from(body));
    let now = ids::now();
    let retention = chrono::Duration::hours(i64::from(state.settings.idempotency_retention_hours));
    let hold = chrono::Duration::from_std(HOLD).unwrap_or(chrono::Duration::minutes(2));
    let (o, k, fp) = (org.clone(), key.clone(), fingerprint);
    let begun = state
        .store
        .write(move |conn| idempotency::begin(conn, &o, &k, &fp, now, now + hold, now + retention))
        .await;
    match begun {
        Ok(Begin::Go { after_unknown }) => {
            if after_unknown {
                req.extensions_mut().insert(AfterUnknown);
            }
        }
        Ok(Begin::Replay(answer)) => {
            let mut res =
                HttpResponse::build(StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK));
            res.insert_header((REPLAYED, HeaderValue::from_static("true")));
            if let Some(l) = &answer.location {
                res.insert_header((header::LOCATION, l.as_str()));
            }
            if let Some(ct) = &answer.content_type {
                res.insert_header((header::CONTENT_TYPE, ct.as_str()));
            }
            let (http_req, _) = req.into_parts();
            return Ok(ServiceResponse::new(http_req, res.body(answer.body)));
        }
        Ok(Begin::Reused) => return Ok(reject(
            req,
            ApiError::new(
                ErrorCode::IdempotencyKeyReused,
                "this Idempotency-Key came with another request; use a new key for a new request",
            ),
        )),
        Ok(Begin::Running) | Err(crate::store::StoreError::Conflict(_)) => {
            return Ok(reject(
                req,
                ApiError::new(
                    ErrorCode::IdempotencyInProgress,
                    "a request with this Idempotency-Key is still running; retry when it has ended",
                )
                .with_retry_after(1),
            ))
        }
        Err(e) => return Ok(reject(req, ApiError::from(e))),
    }
    let res = next.call(req).await?.map_into_boxed_body();
    let status = res.status();
    let (http_req, response) = res.into_parts();
    let (head, body) = response.into_parts();
    let bytes = actix_web::body::to_bytes(body).await.unwrap_or_default();
    // What to keep: an answer the request earned. Not its refusals before it ran
    // (auth, quota of the key), nor an outcome it did not learn (a timeout, a
    // provider's failure: the next attempt looks first), nor our own 503.
    let unknown = matches!(status.as_u16(), 502 | 504);
    let keep = !unknown && !matches!(status.as_u16(), 401 | 403 | 429) && !status.is_server_error();
    // An answer that carries a secret shown once (a new API key) is not kept: its
    // key still stops a second write, and a replay says where the first result is.
    let no_store = head
        .headers()
        .get(header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("no-store"));
    let mut answer = StoredAnswer {
        status: status.as_u16(),
        location: head
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        content_type: head
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body: String::from_utf8_lossy(&bytes).into_owned(),
    };
    if no_store && keep {
        let err = ApiError::conflict(
            "this request was done already; its answer held a secret that is shown once and not kept (the result is at `details.location`)",
        )
        .with_details(serde_json::json!({ "location": answer.location }));
        answer.status = err.code.status().as_u16();
        answer.content_type = Some("application/json".into());
        answer.body = serde_json::to_string(&err.body()).unwrap_or_default();
    }
    let saved = state
        .store
        .write(move |conn| {
            if keep {
                idempotency::finish(conn, &org, &key, &answer)
            } else {
                idempotency::release(conn, &org, &key, unknown)
            }
        })
        .await;
    if let Err(e) = saved {
        tracing::error!(error = %e, "could not record the end of an idempotent request");
    }
    Ok(ServiceResponse::new(
        http_req,
        head.set_body(bytes).map_into_boxed_body(),
    ))
}
