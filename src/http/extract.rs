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
    let value = read_value(req, payload).await?;
    deserialize_all(value).map_err(|partial| ApiError::validation(partial.errors))
}

/// [`read_json`] for a body with `validator` rules: when some values do not fit,
/// the rules of the others are reported with them (a wrongly typed field hides
/// no other field's error).
pub async fn read_json_checked<T: DeserializeOwned + Validate>(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<T, ApiError> {
    let value = read_value(req, payload).await?;
    deserialize_all(value).map_err(|partial| ApiError::validation(partial.with_rules()))
}

/// The body as JSON: content type, size, syntax, and no control characters.
async fn read_value(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<serde_json::Value, ApiError> {
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
    let mut value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))?;
    whole_numbers(&mut value);
    let mut errors = FieldErrors::new();
    control_characters_in(&value, String::new(), &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    Ok(value)
}

/// What a body that does not fit gave: every field error, and the body with
/// stand-ins where the wrong values were (when it could be built).
struct Partial<T> {
    errors: FieldErrors,
    stand_in: Option<T>,
    /// The fields reported (their stand-ins' rules are not the client's).
    reported: Vec<String>,
}

impl<T: Validate> Partial<T> {
    /// The errors and the rules the stand-in body breaks elsewhere.
    fn with_rules(mut self) -> FieldErrors {
        if let Some(t) = &self.stand_in {
            let mut rules = FieldErrors::of(t);
            let reported = std::mem::take(&mut self.reported);
            rules.retain(|field| {
                !reported.iter().any(|r| {
                    field == r
                        || field.starts_with(&format!("{r}."))
                        || field.starts_with(&format!("{r}["))
                })
            });
            self.errors.merge(rules);
        }
        self.errors
    }
}

/// Deserializes `value`, reporting every field that does not fit at once rather than
/// serde's first: each wrong value is recorded and replaced by a stand-in of the
/// type serde expected (a missing one added, an unknown one taken out), and the
/// rest deserialized again, until nothing is left to report.
fn deserialize_all<T: DeserializeOwned>(mut value: serde_json::Value) -> Result<T, Partial<T>> {
    let mut errors = FieldErrors::new();
    let mut seen: Vec<String> = Vec::new();
    let partial = |errors, stand_in, seen| Partial {
        errors,
        stand_in,
        reported: seen,
    };
    if !value.is_object() {
        // Every body is an object (serde would take a list for a struct, by position).
        errors.add("(body)", "must be a JSON object");
        return Err(partial(errors, None, seen));
    }
    for _ in 0..100 {
        let e = match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(t) if errors.is_empty() => return Ok(t),
            Ok(t) => return Err(partial(errors, Some(t), seen)),
            Err(e) => e,
        };
        let message = e.inner().to_string();
        let mut at: Vec<Segment> = e
            .path()
            .iter()
            .map(|s| match s {
                serde_path_to_error::Segment::Seq { index } => Segment::Index(*index),
                serde_path_to_error::Segment::Map { key } => Segment::Key(key.clone()),
                serde_path_to_error::Segment::Enum { variant } => Segment::Key(variant.clone()),
                serde_path_to_error::Segment::Unknown => Segment::Unknown,
            })
            .collect();
        let quoted = |m: &str| m.split('`').nth(1).map(str::to_string);
        let fix = if let Some(name) = message.strip_prefix("missing field ").and_then(quoted) {
            at.push(Segment::Key(name));
            Fix::Insert
        } else if let Some(name) = message.strip_prefix("unknown field ").and_then(quoted) {
            if at.last() != Some(&Segment::Key(name.clone())) {
                at.push(Segment::Key(name));
            }
            Fix::Remove
        } else {
            Fix::Replace(stand_in(&message))
        };
        let field = field_name(&at);
        let repeated = seen.iter().filter(|f| **f == field).count();
        // An enum's type error does not list its values; its next error will.
        let listed_next = matches!(
            expected(&message),
            Some("string or map" | "variant identifier")
        );
        if repeated == 0 && listed_next && !message.starts_with("missing field ") {
            if !apply(&mut value, &at, fix) {
                break;
            }
            continue;
        }
        if repeated == 0 {
            errors.add(field.clone(), user_words(&message));
        }
        seen.push(field);
        // A stand-in that does not fit either, or a place the value cannot be
        // reached: what is reported so far is all there is to say.
        if repeated > 2 || !apply(&mut value, &at, fix) {
            break;
        }
    }
    if errors.is_empty() {
        errors.add("(body)", "could not be read");
    }
    Err(partial(errors, None, seen))
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Key(String),
    Index(usize),
    Unknown,
}

enum Fix {
    /// A required field is missing: `null` first, then whatever type serde says.
    Insert,
    Remove,
    Replace(Option<serde_json::Value>),
}

/// `a.b[2].c`, or `(body)` for the whole body.
fn field_name(at: &[Segment]) -> String {
    let mut name = String::new();
    for s in at {
        match s {
            Segment::Key(k) if name.is_empty() => name.push_str(k),
            Segment::Key(k) => {
                name.push('.');
                name.push_str(k);
            }
            Segment::Index(i) => name.push_str(&format!("[{i}]")),
            Segment::Unknown => name.push_str(".?"),
        }
    }
    if name.is_empty() {
        "(body)".to_string()
    } else {
        name
    }
}

fn apply(value: &mut serde_json::Value, at: &[Segment], fix: Fix) -> bool {
    let Some((last, parents)) = at.split_last() else {
        return false;
    };
    let mut v = value;
    for s in parents {
        v = match (s, v) {
            (Segment::Key(k), serde_json::Value::Object(m)) => match m.get_mut(k) {
                Some(v) => v,
                None => return false,
            },
            (Segment::Index(i), serde_json::Value::Array(a)) => match a.get_mut(*i) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, v, fix) {
        (Segment::Key(k), serde_json::Value::Object(m), Fix::Insert) => {
            m.insert(k.clone(), serde_json::Value::Null);
            true
        }
        (Segment::Key(k), serde_json::Value::Object(m), Fix::Remove) => m.remove(k).is_some(),
        (Segment::Key(k), serde_json::Value::Object(m), Fix::Replace(with)) => match with {
            Some(with) => m.insert(k.clone(), with).is_some(),
            None => m.remove(k).is_some(),
        },
        (Segment::Index(i), serde_json::Value::Array(a), Fix::Replace(Some(with))) => {
            match a.get_mut(*i) {
                Some(slot) => {
                    *slot = with;
                    true
                }
                None => false,
            }
        }
        _ => false,
    }
}

/// What serde expected, from its message (`…, expected u32`).
fn expected(message: &str) -> Option<&str> {
    message.rsplit_once(", expected ").map(|(_, e)| e)
}

/// A value of the type serde expected, to go on past a wrong one.
fn stand_in(message: &str) -> Option<serde_json::Value> {
    use serde_json::json;
    let e = expected(message)?;
    if message.starts_with("unknown variant ") {
        return Some(json!(e.split('`').nth(1)?));
    }
    Some(match e {
        // An enum: a name it does not know, so that serde says which it does.
        "string or map" | "variant identifier" => json!(""),
        "a string" | "a borrowed string" | "a character" => json!(""),
        "a boolean" => json!(false),
        "a sequence" | "a tuple" => json!([]),
        "a map" => json!({}),
        _ if e.starts_with("struct ") || e.starts_with("a map") => json!({}),
        _ if is_unsigned(e) || is_signed(e) => json!(0),
        _ if e.starts_with('f') => json!(0.0),
        _ => return None,
    })
}

fn is_unsigned(e: &str) -> bool {
    matches!(e, "u8" | "u16" | "u32" | "u64" | "u128" | "usize")
}

fn is_signed(e: &str) -> bool {
    matches!(e, "i8" | "i16" | "i32" | "i64" | "i128" | "isize")
}

/// serde's wording of a value it could not take, in a user's: what the field must
/// be, and what it got (never Rust type names).
fn user_words(message: &str) -> String {
    // serde's list of what it expected: "`a`, `b` or `c`" → a, b, c.
    let listed = |e: &str| {
        e.split('`')
            .skip(1)
            .step_by(2)
            .collect::<Vec<_>>()
            .join(", ")
    };
    if message.starts_with("missing field ") {
        return "is required".to_string();
    }
    if message.starts_with("unknown field ") {
        return match expected(message) {
            Some(e) => format!("is not a known field (known: {})", listed(e)),
            None => "is not a known field".to_string(),
        };
    }
    if message.starts_with("unknown variant ") {
        return format!("must be one of {}", listed(expected(message).unwrap_or("")));
    }
    // Query strings: the standard library's number and flag parsers.
    match message {
        "invalid digit found in string" | "cannot parse integer from empty string" => {
            return "must be a whole number".to_string()
        }
        "number too large to fit in target type" | "number too small to fit in target type" => {
            return "is out of range".to_string()
        }
        "invalid float literal" => return "must be a number".to_string(),
        "provided string was not `true` or `false`" => return "must be true or false".to_string(),
        _ => {}
    }
    let Some(e) = expected(message) else {
        return message.to_string();
    };
    let wanted = match e {
        _ if is_unsigned(e) => "a whole number, 0 or more".to_string(),
        _ if is_signed(e) => "a whole number".to_string(),
        "f32" | "f64" => "a number".to_string(),
        "a string" | "a borrowed string" | "a character" => "text".to_string(),
        "a boolean" => "true or false".to_string(),
        "a sequence" | "a tuple" => "a list".to_string(),
        "a map" => "an object".to_string(),
        _ if e.starts_with("struct ") => "an object".to_string(),
        _ if e.starts_with("one of ") => format!("one of {}", listed(e)),
        other => other.trim_start_matches("a ").to_string(),
    };
    let got = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
        .and_then(|r| r.split_once(", expected "))
        .map(|(got, _)| got);
    let got = match got {
        Some(g) if g.starts_with("string") => Some("text".to_string()),
        Some(g) if g.starts_with("integer") || g.starts_with("floating point") => {
            Some(g.split('`').nth(1).unwrap_or("a number").to_string())
        }
        Some(g) if g.starts_with("boolean") => Some(g.split('`').nth(1).unwrap_or("").to_string()),
        Some("null") => Some("null".to_string()),
        Some("map") => Some("an object".to_string()),
        Some("sequence") => Some("a list".to_string()),
        _ => None,
    };
    match got {
        Some(g) if !g.is_empty() => format!("must be {wanted} (got {g})"),
        _ => format!("must be {wanted}"),
    }
}

/// The message for text holding control characters (NUL, say), which no field takes.
const CONTROL: &str = "must not contain control characters";

/// Whether `s` holds a control character; line breaks and tabs are allowed in
/// bodies (a description), never in a path or query.
fn has_control(s: &str, allow_whitespace: bool) -> bool {
    s.chars()
        .any(|c| c.is_control() && !(allow_whitespace && matches!(c, '\n' | '\r' | '\t')))
}

/// `305.0` is the whole number 305, as JSON Schema counts it: every such number is
/// made an integer, so that an integer field takes it.
fn whole_numbers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64() {
                // Within ±2^53 a float is exact, so this is the number sent.
                if f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 {
                    *value = Value::from(f as i64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers),
        Value::Object(fields) => fields.values_mut().for_each(whole_numbers),
        _ => {}
    }
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
    let mut pairs: Vec<(String, String)> = url::form_urlencoded::parse(query)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    // Every parameter that does not fit is reported at once: each is taken out in
    // turn and the rest parsed again, then the rules checked on what parsed.
    let mut errors = FieldErrors::new();
    for _ in 0..=pairs.len() {
        let encoded = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&pairs)
            .finish();
        let de =
            serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(encoded.as_bytes()));
        match serde_path_to_error::deserialize::<_, T>(de) {
            Ok(parsed) => {
                if let Err(more) = check(&parsed) {
                    errors.merge(more);
                }
                return if errors.is_empty() {
                    Ok(parsed)
                } else {
                    Err(errors)
                };
            }
            Err(e) => {
                let message = e.inner().to_string();
                let quoted = |m: &str| m.split('`').nth(1).map(str::to_string);
                let name = match message
                    .strip_prefix("missing field ")
                    .or_else(|| message.strip_prefix("unknown field "))
                    .and_then(quoted)
                {
                    Some(name) => name,
                    None => e.path().to_string(),
                };
                errors.add(name.clone(), user_words(&message));
                let before = pairs.len();
                pairs.retain(|(k, _)| *k != name);
                if pairs.len() == before {
                    break;
                }
            }
        }
    }
    Err(errors)
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

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Provider {
        Periskope,
        Wacr,
        Gateway,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        Person,
        Group,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Settings {
        rate_limit_per_second: Option<u32>,
        enabled: Option<bool>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        provider: Provider,
        name: String,
        labels: Vec<String>,
        kind: Option<Kind>,
        #[serde(default)]
        settings: Option<Settings>,
    }

    fn errors_of(body: serde_json::Value) -> Vec<(String, String)> {
        let Err(partial) = deserialize_all::<Body>(body) else {
            panic!("bad")
        };
        let value = ApiError::validation(partial.errors).details["fields"].clone();
        value
            .as_object()
            .expect("fields")
            .iter()
            .flat_map(|(k, v)| {
                v.as_array()
                    .expect("messages")
                    .iter()
                    .map(|m| (k.clone(), m.as_str().expect("text").to_string()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn every_field_that_does_not_fit_is_reported_at_once_in_plain_words() {
        let errors = errors_of(serde_json::json!({
            "provider": "foo",
            "name": 5,
            "labels": ["a", 7, "c", null],
            "kind": 3,
            "settings": {"rate_limit_per_second": "x", "enabled": "yes", "colour": 1},
            "extra": true
        }));
        let expected: Vec<(String, String)> = [
            (
                "extra",
                "is not a known field (known: provider, name, labels, kind, settings)",
            ),
            ("kind", "must be one of person, group"),
            ("labels[1]", "must be text (got 7)"),
            ("labels[3]", "must be text (got null)"),
            ("name", "must be text (got 5)"),
            ("provider", "must be one of periskope, wacr, gateway"),
            (
                "settings.colour",
                "is not a known field (known: rate_limit_per_second, enabled)",
            ),
            ("settings.enabled", "must be true or false (got text)"),
            (
                "settings.rate_limit_per_second",
                "must be a whole number, 0 or more (got text)",
            ),
        ]
        .iter()
        .map(|(f, m)| (f.to_string(), m.to_string()))
        .collect();
        assert_eq!(errors, expected);
        let missing = errors_of(serde_json::json!({"settings": {"rate_limit_per_second": -1}}));
        assert_eq!(
            missing,
            [
                ("labels", "is required"),
                ("name", "is required"),
                ("provider", "is required"),
                (
                    "settings.rate_limit_per_second",
                    "must be a whole number, 0 or more (got -1)"
                ),
            ]
            .iter()
            .map(|(f, m)| (f.to_string(), m.to_string()))
            .collect::<Vec<_>>()
        );
        assert_eq!(
            errors_of(serde_json::json!([1])),
            vec![("(body)".to_string(), "must be a JSON object".to_string())]
        );
        let Ok(ok) = deserialize_all::<Body>(serde_json::json!({
            "provider": "wacr", "name": "n", "labels": []
        })) else {
            panic!("fits")
        };
        assert!(matches!(ok.provider, Provider::Wacr));
    }

    #[test]
    fn whole_numbers_written_with_a_fraction_are_integers() {
        let mut v = serde_json::json!({"a": 305.0, "b": [-98.0, 1.5], "c": 1e300});
        whole_numbers(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"a": 305, "b": [-98, 1.5], "c": 1e300})
        );
        assert!(v["a"].is_u64() && v["b"][0].is_i64());
    }

    #[test]
    fn query_parameters_that_do_not_fit_are_reported_together_in_plain_words() {
        #[derive(Debug, Deserialize, Validate)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Q {
            fresh: Option<bool>,
            n: Option<u32>,
            #[validate(length(min = 1, message = "must not be empty"))]
            q: Option<String>,
        }
        let err = parse_query::<Q>("fresh=maybe&n=x&q=&zz=1").expect_err("bad");
        let fields = err.details["fields"].clone();
        assert_eq!(fields["fresh"][0], "must be true or false");
        assert_eq!(fields["n"][0], "must be a whole number");
        assert_eq!(fields["q"][0], "must not be empty");
        assert!(
            fields["zz"][0]
                .as_str()
                .is_some_and(|m| m.starts_with("is not a known field")),
            "{fields}"
        );
    }

    #[test]
    fn a_list_query_reports_filter_and_paging_errors_together() {
        let err = parse_list_query::<Filters, 100>("q=&limit=0&cursor=x%2By").expect_err("bad");
        let fields = err.details["fields"].as_object().expect("fields");
        let mut names: Vec<&str> = fields.keys().map(String::as_str).collect();
        names.sort();
        assert_eq!(names, vec!["cursor", "limit", "q"]);
        let (f, page) = parse_list_query::<Filters, 100>("q=ana&limit=7").expect("ok");
        assert_eq!(f.q.as_deref(), Some("ana"));
        assert_eq!(page, PageRequest::first(7));
    }
}
