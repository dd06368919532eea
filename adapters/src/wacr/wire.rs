//! WA.cr's JSON (docs/providers.md §2.3). The envelope is Laravel-style and not fully
//! documented: a resource may come wrapped in `{"data": …}` (lists with `meta`
//! and/or `links`, maybe `success`) or bare; errors as `{"error": {code, message}}`,
//! `{"message", "errors"}` or `{"code", "message"}`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::AdapterError;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    pub id: i64,
    #[serde(default)]
    pub firstname: Option<String>,
    #[serde(default)]
    pub lastname: Option<String>,
    #[serde(default)]
    pub company: Option<String>,
    /// `lead`, `customer` or `guest`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    /// Free text, "with country code"; not guaranteed E.164.
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub status_id: Option<i64>,
    #[serde(default)]
    pub source_id: Option<i64>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub city: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub zip: Option<String>,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub country_id: Option<i64>,
    #[serde(default)]
    pub assigned_id: Option<i64>,
    #[serde(default)]
    pub group_id: Option<Vec<i64>>,
    #[serde(default)]
    pub is_opted_out: Option<bool>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
    /// With `include=groups`.
    #[serde(default)]
    pub groups: Option<Vec<Group>>,
    /// With `include=source`.
    #[serde(default)]
    pub source: Option<Source>,
    /// With `include=status`.
    #[serde(default)]
    pub status: Option<Status>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A CRM list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub id: i64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Source {
    pub id: i64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub id: i64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub color: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Laravel paginator `meta`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    #[serde(default)]
    pub current_page: Option<u64>,
    #[serde(default)]
    pub last_page: Option<u64>,
    #[serde(default)]
    pub per_page: Option<u64>,
    #[serde(default)]
    pub total: Option<u64>,
}

/// A list page, whichever envelope it came in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListPage {
    pub items: Vec<Value>,
    pub meta: Option<Meta>,
    /// `links.next`, when the envelope has `links`: `Some(None)` means "no next page".
    pub next_link: Option<Option<String>>,
}

/// The resource of a single-object answer: `{"data": {...}}` or the bare object.
pub fn unwrap_resource(body: Value) -> Result<Value, AdapterError> {
    match body {
        Value::Object(mut map) => match map.remove("data") {
            Some(inner @ Value::Object(_)) => Ok(inner),
            Some(other) => Err(AdapterError::decode(format!(
                "WA.cr resource: `data` is {}, expected an object",
                kind_of(&other)
            ))),
            None => Ok(Value::Object(map)),
        },
        other => Err(AdapterError::decode(format!(
            "WA.cr resource: expected an object, found {}",
            kind_of(&other)
        ))),
    }
}

/// A list answer: `{"data": [...], "meta": {...}, "links": {...}}`, `{"data": [...]}` or a bare array.
pub fn unwrap_list(body: Value) -> Result<ListPage, AdapterError> {
    match body {
        Value::Array(items) => Ok(ListPage {
            items,
            ..ListPage::default()
        }),
        Value::Object(mut map) => {
            let items = match map.remove("data") {
                Some(Value::Array(items)) => items,
                Some(other) => {
                    return Err(AdapterError::decode(format!(
                        "WA.cr list: `data` is {}, expected an array",
                        kind_of(&other)
                    )))
                }
                None => return Err(AdapterError::decode("WA.cr list: no `data` array")),
            };
            let meta = match map.remove("meta") {
                Some(m @ Value::Object(_)) => {
                    Some(serde_path_to_error::deserialize(m).map_err(|e| {
                        AdapterError::decode(format!(
                            "WA.cr list meta at `{}`: {}",
                            e.path(),
                            e.inner()
                        ))
                    })?)
                }
                _ => None,
            };
            let next_link = match map.get("links") {
                Some(Value::Object(links)) => Some(
                    links
                        .get("next")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                ),
                _ => None,
            };
            Ok(ListPage {
                items,
                meta,
                next_link,
            })
        }
        other => Err(AdapterError::decode(format!(
            "WA.cr list: expected an object or array, found {}",
            kind_of(&other)
        ))),
    }
}

/// `(code, message, field errors)` from any of the three error shapes.
pub fn read_error(body: &Value) -> (Option<String>, Option<String>, Value) {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    if let Some(err) = body.get("error").filter(|e| e.is_object()) {
        return (
            text(err.get("code")),
            text(err.get("message")),
            err.get("details")
                .or_else(|| err.get("errors"))
                .cloned()
                .unwrap_or(Value::Null),
        );
    }
    (
        text(body.get("code")),
        text(body.get("message")).or_else(|| text(body.get("error"))),
        body.get("errors").cloned().unwrap_or(Value::Null),
    )
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
