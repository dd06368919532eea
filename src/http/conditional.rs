//! Conditional GETs: a strong `ETag` derived from what the client is shown, and
//! `If-None-Match` answered with 304 and no body.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};
use serde::Serialize;

use crate::error::ApiError;
use crate::service::contacts::content_etag;

/// Whether the request's `If-None-Match` names `etag` (or `*`). The comparison is
/// the weak one RFC 9110 asks for with `If-None-Match`: `W/"x"` matches `"x"`.
fn if_none_match(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag == etag)
}

/// 200 with `res`'s headers and `body`, or 304 with the same headers and no body
/// when the client already has this `etag`.
pub fn tagged(
    req: &HttpRequest,
    mut res: HttpResponseBuilder,
    etag: &str,
    body: impl actix_web::body::MessageBody + 'static,
) -> HttpResponse {
    res.insert_header((header::ETAG, etag));
    if if_none_match(req, etag) {
        return res
            .status(actix_web::http::StatusCode::NOT_MODIFIED)
            .finish();
    }
    res.insert_header((
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    ))
    .body(body)
}

/// A stored resource's JSON with the ETag its service gave it; clients
/// revalidate each time (`Cache-Control: private, no-cache`).
pub fn stored(req: &HttpRequest, etag: &str, body: bytes::Bytes) -> HttpResponse {
    let mut res = HttpResponse::Ok();
    res.insert_header((header::CACHE_CONTROL, "private, no-cache"));
    tagged(req, res, etag, body)
}

/// A stored resource as JSON with its content ETag; clients revalidate each time
/// (`Cache-Control: private, no-cache`).
pub fn json<T: Serialize>(req: &HttpRequest, value: &T) -> Result<HttpResponse, ApiError> {
    let value = serde_json::to_value(value).map_err(ApiError::internal)?;
    let body = value.to_string();
    let etag = content_etag(value);
    let mut res = HttpResponse::Ok();
    res.insert_header((header::CACHE_CONTROL, "private, no-cache"));
    Ok(tagged(req, res, &etag, body))
}
