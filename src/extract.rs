//! Request extractors that answer bad input in our error envelope: a JSON body
//! (content type, size, syntax, types and validation rules checked in that order)
//! and query strings whose errors name the parameter; plus opaque list cursors.

use actix_web::{http::header, web, HttpRequest};
use base64::Engine;
use serde::de::DeserializeOwned;
use validator::Validate;

use crate::error::{ApiError, ErrorCode, FieldErrors};

/// The largest request body we read.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Reads, parses and validates a JSON body. Handlers call it after authentication,
/// so an unauthenticated caller is told 401 before anything about its body.
pub async fn read_json<T: DeserializeOwned + Validate>(
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
    let parsed: T = serde_path_to_error::deserialize(value).map_err(serde_failure)?;
    validate(&parsed)?;
    Ok(parsed)
}

fn too_large() -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("request body exceeds {MAX_BODY_BYTES} bytes"),
    )
}

/// Runs the `validator` rules of a parsed value.
pub fn validate<T: Validate>(value: &T) -> Result<(), ApiError> {
    value.validate().map_err(|errors| {
        let mut fields = FieldErrors::new();
        fields.extend_from("", &errors);
        ApiError::validation(fields)
    })
}

/// Query parameters, deserialized and validated; errors name the parameter.
pub fn parse_query<T: DeserializeOwned + Validate>(query: &str) -> Result<T, ApiError> {
    let de = serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(query.as_bytes()));
    let parsed: T = serde_path_to_error::deserialize(de).map_err(serde_failure)?;
    validate(&parsed)?;
    Ok(parsed)
}

/// A 422 naming the field serde could not take.
fn serde_failure<E: std::fmt::Display>(e: serde_path_to_error::Error<E>) -> ApiError {
    let mut fields = FieldErrors::new();
    add_serde_error(&mut fields, &e.path().to_string(), &e.inner().to_string());
    ApiError::validation(fields)
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

/// Opaque list cursors: the last id of the page, wrapped so clients do not build them.
pub mod cursor {
    use super::*;

    const ENGINE: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

    pub fn encode(last_id: &str) -> String {
        ENGINE.encode(format!("v1:{last_id}"))
    }

    pub fn decode(cursor: &str) -> Result<String, ApiError> {
        ENGINE
            .decode(cursor)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.strip_prefix("v1:").map(str::to_string))
            .ok_or_else(|| {
                let mut f = FieldErrors::new();
                f.add("cursor", "is not a cursor this API issued");
                ApiError::validation(f)
            })
    }

    /// Splits `limit + 1` fetched rows into a page and the cursor of the next one.
    pub fn page<T>(
        mut rows: Vec<T>,
        limit: usize,
        id: impl Fn(&T) -> &str,
    ) -> (Vec<T>, Option<String>) {
        if rows.len() > limit {
            rows.truncate(limit);
            let next = rows.last().map(|r| encode(id(r)));
            (rows, next)
        } else {
            (rows, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_strings_are_refused() {
        let c = cursor::encode("con_01abc");
        assert_eq!(cursor::decode(&c).expect("decode"), "con_01abc");
        assert!(cursor::decode("con_01abc").is_err());
        assert!(cursor::decode("!!!").is_err());
    }

    #[test]
    fn a_full_page_yields_the_cursor_of_its_last_row() {
        let (rows, next) = cursor::page(vec!["a", "b", "c"], 2, |s| s);
        assert_eq!(rows, vec!["a", "b"]);
        assert_eq!(cursor::decode(&next.expect("next")).expect("decode"), "b");
        let (rows, next) = cursor::page(vec!["a"], 2, |s| s);
        assert_eq!(rows, vec!["a"]);
        assert!(next.is_none());
    }
}
