//! Request parsing that answers bad input in our error envelope: a JSON body
//! (content type, size, syntax and types checked in that order)
//! and query strings whose errors name the parameter (a list's filters and its
//! `limit`/`cursor` reported together).

use actix_web::{http::header, web, HttpRequest};
use serde::de::DeserializeOwned;
use validator::Validate;

use crate::error::{ApiError, ErrorCode, FieldErrors};
use crate::page::{PageQuery, PageRequest};

/// The largest request body we read.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Reads and parses a JSON body (its rules are the service's to check, with the
/// others, all at once). Handlers call it after authentication, so an
/// unauthenticated caller is told 401 before anything about its body.
pub async fn read_json<T: DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<T, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    match content_type.as_deref() {
        Some("application/json") => {}
        Some(ct) if ct.starts_with("application/") && ct.ends_with("+json") => {}
        other => {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                format!(
                    "expected `Content-Type: application/json`, got {}",
                    other.map_or("none".to_string(), |c| format!("`{c}`"))
                ),
            ))
        }
    }
    let declared_len = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared_len.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    let bytes = payload
        .to_bytes_limited(MAX_BODY_BYTES)
        .await
        .map_err(|_| too_large())?
        .map_err(|e| ApiError::bad_request(format!("could not read the request body: {e}")))?;
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))?;
    let mut errors = FieldErrors::new();
    control_characters_in(&value, String::new(), &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    serde_path_to_error::deserialize(value).map_err(serde_failure)
}

/// The message for text holding control characters (NUL, say), which no field takes.
const CONTROL: &str = "must not contain control characters";

/// Whether `s` holds a control character; line breaks and tabs are allowed in
/// bodies (a description), never in a path or query.
fn has_control(s: &str, allow_whitespace: bool) -> bool {
    s.chars()
        .any(|c| c.is_control() && !(allow_whitespace && matches!(c, '\n' | '\r' | '\t')))
}

/// Names every string of a JSON body holding a control character (`name`,
/// `credentials.api_key`, `contacts[2].phone`; keys too).
fn control_characters_in(value: &serde_json::Value, at: String, errors: &mut FieldErrors) {
    use serde_json::Value;
    match value {
        Value::String(s) if has_control(s, true) => {
            errors.add(if at.is_empty() { "(body)" } else { &at }, CONTROL)
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                control_characters_in(item, format!("{at}[{i}]"), errors);
            }
        }
        Value::Object(fields) => {
            for (key, item) in fields {
                let path = if at.is_empty() {
                    key.clone()
                } else {
                    format!("{at}.{key}")
                };
                if has_control(key, false) {
                    errors.add(path.clone(), CONTROL);
                }
                control_characters_in(item, path, errors);
            }
        }
        _ => {}
    }
}

/// Control characters in a request's path segments or query (`%00`, say), each
/// named: a path segment by the route's parameter (`id`), a query value by its
/// name. Checked before routing, so no handler (and no database) sees them.
pub fn control_characters_in_request(req: &HttpRequest) -> Option<ApiError> {
    let mut errors = FieldErrors::new();
    let path = req.path();
    if path.contains('%') {
        let pattern = req.resource_map().match_pattern(path);
        let names: Vec<&str> = pattern
            .as_deref()
            .map_or(Vec::new(), |p| p.split('/').collect());
        for (i, segment) in path.split('/').enumerate() {
            let decoded = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
            if has_control(&decoded, false) {
                let name = names
                    .get(i)
                    .and_then(|n| n.strip_prefix('{'))
                    .and_then(|n| n.strip_suffix('}'))
                    .unwrap_or("path");
                errors.add(name, CONTROL);
            }
        }
    }
    let query = req.query_string();
    if query.contains('%') {
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            if has_control(&key, false) || has_control(&value, false) {
                errors.add(key.into_owned(), CONTROL);
            }
        }
    }
    (!errors.is_empty()).then(|| ApiError::validation(errors))
}

fn too_large() -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("request body exceeds {MAX_BODY_BYTES} bytes"),
    )
}

fn check<T: Validate>(value: &T) -> Result<(), FieldErrors> {
    let fields = FieldErrors::of(value);
    if fields.is_empty() {
        Ok(())
    } else {
        Err(fields)
    }
}

/// Query parameters, deserialized and validated; errors name the parameter.
pub fn parse_query<T: DeserializeOwned + Validate>(query: &str) -> Result<T, ApiError> {
    query_fields(query.as_bytes()).map_err(ApiError::validation)
}

fn query_fields<T: DeserializeOwned + Validate>(query: &[u8]) -> Result<T, FieldErrors> {
    let de = serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(query));
    let parsed: T = serde_path_to_error::deserialize(de).map_err(serde_fields)?;
    check(&parsed)?;
    Ok(parsed)
}

/// A list's query: its filters `T`, and `limit` (1 to `MAX`) and `cursor`, every
/// problem with either reported at once.
pub fn parse_list_query<T: DeserializeOwned + Validate, const MAX: u32>(
    query: &str,
) -> Result<(T, PageRequest), ApiError> {
    let (mut paging, mut filters) = (
        url::form_urlencoded::Serializer::new(String::new()),
        url::form_urlencoded::Serializer::new(String::new()),
    );
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "limit" | "cursor" => paging.append_pair(&k, &v),
            _ => filters.append_pair(&k, &v),
        };
    }
    let filters = query_fields::<T>(filters.finish().as_bytes());
    let page =
        query_fields::<PageQueryWrapper<MAX>>(paging.finish().as_bytes()).and_then(|q| q.0.check());
    match (filters, page) {
        (Ok(f), Ok(p)) => Ok((f, p)),
        (Err(mut a), Err(b)) => {
            a.merge(b);
            Err(ApiError::validation(a))
        }
        (Err(e), _) | (_, Err(e)) => Err(ApiError::validation(e)),
    }
}

/// `PageQuery` with the (empty) `Validate` the parser asks for; its checks are its own.
#[derive(serde::Deserialize)]
#[serde(transparent)]
struct PageQueryWrapper<const MAX: u32>(PageQuery<MAX>);

impl<const MAX: u32> Validate for PageQueryWrapper<MAX> {
    fn validate(&self) -> Result<(), validator::ValidationErrors> {
        Ok(())
    }
}

/// A 422 naming the field serde could not take.
fn serde_failure<E: std::fmt::Display>(e: serde_path_to_error::Error<E>) -> ApiError {
    ApiError::validation(serde_fields(e))
}

fn serde_fields<E: std::fmt::Display>(e: serde_path_to_error::Error<E>) -> FieldErrors {
    let mut fields = FieldErrors::new();
    add_serde_error(&mut fields, &e.path().to_string(), &e.inner().to_string());
    fields
}

/// Turns a serde message at a path into a per-field message: serde reports a missing
/// or unknown field at its parent, so the field name is taken from the message.
fn add_serde_error(fields: &mut FieldErrors, path: &str, message: &str) {
    let join = |name: &str| {
        if path == "." || path.is_empty() {
            name.to_string()
        } else {
            format!("{path}.{name}")
        }
    };
    let quoted = |m: &str| m.split('`').nth(1).map(str::to_string);
    if let Some(rest) = message.strip_prefix("missing field ") {
        if let Some(name) = quoted(rest) {
            fields.add(join(&name), "is required");
            return;
        }
    }
    if let Some(rest) = message.strip_prefix("unknown field ") {
        if let Some(name) = quoted(rest) {
            let expected = rest.split_once(", ").map(|(_, e)| e).unwrap_or("");
            // serde_path_to_error reports an unknown field at its own path already.
            let field = if path == name || path.ends_with(&format!(".{name}")) {
                path.to_string()
            } else {
                join(&name)
            };
            fields.add(field, format!("is not a known field ({expected})"));
            return;
        }
    }
    let field = if path == "." || path.is_empty() {
        "(body)".to_string()
    } else {
        path.to_string()
    };
    fields.add(field, message);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, Validate)]
    #[serde(deny_unknown_fields)]
    struct Filters {
        #[validate(length(min = 1, message = "must not be empty"))]
        q: Option<String>,
    }

    #[test]
    fn a_list_query_reports_filter_and_paging_errors_together() {
        let err = parse_list_query::<Filters, 100>("q=&limit=0&cursor=x").expect_err("bad");
        let fields = err.details["fields"].as_object().expect("fields");
        let mut names: Vec<&str> = fields.keys().map(String::as_str).collect();
        names.sort();
        assert_eq!(names, vec!["cursor", "limit", "q"]);
        let (f, page) = parse_list_query::<Filters, 100>("q=ana&limit=7").expect("ok");
        assert_eq!(f.q.as_deref(), Some("ana"));
        assert_eq!(page, PageRequest::first(7));
    }
}
