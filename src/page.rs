//! Lists, one way: a page is `{data, next_cursor}`, asked for with `limit` and an
//! opaque `cursor` (the last id of the previous page, wrapped so that clients do
//! not build them).

use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::{ObjectBuilder, Required, Type};
use utoipa::{IntoParams, ToSchema};

use crate::error::FieldErrors;

/// A list's filters when it has none but the page's.
#[derive(Deserialize, validator::Validate, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct NoFilters {}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub data: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Splits `limit + 1` fetched rows into a page and the cursor of the next one.
    pub fn from_rows(mut rows: Vec<T>, limit: usize, id: impl Fn(&T) -> &str) -> Self {
        if rows.len() > limit {
            rows.truncate(limit);
            let next_cursor = rows.last().map(|r| cursor::encode(id(r)));
            Page {
                data: rows,
                next_cursor,
            }
        } else {
            Page {
                data: rows,
                next_cursor: None,
            }
        }
    }

    /// The page's JSON, its items already JSON (as `Serialize` writes a page).
    pub fn json_of_items(&self) -> Vec<u8>
    where
        T: AsRef<[u8]>,
    {
        let items: usize = self.data.iter().map(|b| b.as_ref().len() + 1).sum();
        let mut body = Vec::with_capacity(items + 64);
        body.extend_from_slice(b"{\"data\":[");
        for (i, item) in self.data.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(item.as_ref());
        }
        body.extend_from_slice(b"],\"next_cursor\":");
        match &self.next_cursor {
            // A cursor is made of an id's characters: nothing to escape, but
            // written by serde all the same.
            Some(c) => body.extend_from_slice(
                serde_json::to_string(c)
                    .unwrap_or_else(|_| "null".into())
                    .as_bytes(),
            ),
            None => body.extend_from_slice(b"null"),
        }
        body.push(b'}');
        body
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            data: self.data.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }

    pub fn try_map<U, E>(self, f: impl FnMut(T) -> Result<U, E>) -> Result<Page<U>, E> {
        Ok(Page {
            data: self.data.into_iter().map(f).collect::<Result<_, E>>()?,
            next_cursor: self.next_cursor,
        })
    }
}

/// A page asked for, checked: `after` the id the cursor carried, `limit` rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub after: Option<String>,
    pub limit: usize,
}

impl PageRequest {
    pub const DEFAULT_LIMIT: u32 = 50;

    /// The first page of `limit` rows.
    pub fn first(limit: usize) -> Self {
        Self { after: None, limit }
    }

    /// Rows to fetch: one more than the page, to know whether another follows.
    pub fn fetch(&self) -> i64 {
        self.limit as i64 + 1
    }
}

/// `limit` (1 to `MAX`, default 50) and `cursor` of a list's query string.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery<const MAX: u32> {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

impl<const MAX: u32> PageQuery<MAX> {
    /// The page asked for, or every problem with `limit` and `cursor`.
    pub fn check(&self) -> Result<PageRequest, FieldErrors> {
        let mut errors = FieldErrors::new();
        let limit = self.limit.unwrap_or(PageRequest::DEFAULT_LIMIT);
        if !(1..=MAX).contains(&limit) {
            errors.add("limit", format!("must be from 1 to {MAX}"));
        }
        let after = match self.cursor.as_deref() {
            None => None,
            Some(c) => match cursor::decode(c) {
                Some(id) => Some(id),
                None => {
                    errors.add(
                        "cursor",
                        "must be the `next_cursor` of a page (an id: letters, digits and `_`)",
                    );
                    None
                }
            },
        };
        if errors.is_empty() {
            Ok(PageRequest {
                after,
                limit: limit as usize,
            })
        } else {
            Err(errors)
        }
    }
}

impl<const MAX: u32> IntoParams for PageQuery<MAX> {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        params(MAX, cursor::PATTERN)
    }
}

/// A list's `limit` (1 to `max`) and `cursor` (an id matching `cursor_pattern`).
pub fn params(max: u32, cursor_pattern: &str) -> Vec<Parameter> {
    vec![
        ParameterBuilder::new()
            .name("limit")
            .parameter_in(ParameterIn::Query)
            .required(Required::False)
            .description(Some(format!(
                "Page size, 1 to {max} (default {}).",
                PageRequest::DEFAULT_LIMIT
            )))
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1))
                    .maximum(Some(max))
                    .default(Some(PageRequest::DEFAULT_LIMIT.into())),
            ))
            .build(),
        ParameterBuilder::new()
            .name("cursor")
            .parameter_in(ParameterIn::Query)
            .required(Required::False)
            .description(Some(
                "The `next_cursor` of the previous page: the id of its last item. \
                     Any id in this form is a place in the list (the page starts after it).",
            ))
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(cursor_pattern)),
            ))
            .build(),
    ]
}

/// Opaque list cursors.
pub mod cursor {
    use super::*;

    const ENGINE: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

    /// What a cursor looks like: an id's characters.
    pub const PATTERN: &str = "^[A-Za-z0-9_]{1,64}$";

    /// A page's cursor: the id of its last item. Ids sort in list order, so any
    /// string of an id's characters is a place in a list, whether issued or not.
    pub fn encode(last_id: &str) -> String {
        last_id.to_string()
    }

    fn is_id(s: &str) -> bool {
        (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    }

    /// The place a cursor names: an id's characters, or (as cursors were issued
    /// before) base64 of `v1:` and an id; `None` for anything else.
    pub fn decode(cursor: &str) -> Option<String> {
        let earlier = cursor
            .strip_prefix("djE6")
            .and_then(|_| ENGINE.decode(cursor).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.strip_prefix("v1:").map(str::to_string))
            .filter(|id| is_id(id));
        earlier.or_else(|| is_id(cursor).then(|| cursor.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_of_json_items_is_the_page_serde_writes() {
        let items = [
            serde_json::json!({"id": "ctc_1", "name": "A \"quoted\" name"}),
            serde_json::json!({"id": "ctc_2", "labels": ["x", "y"]}),
        ];
        for (data, next_cursor) in [
            (&items[..], Some("ctc_2".to_string())),
            (&items[..1], None),
            (&items[..0], None),
        ] {
            let page = Page {
                data: data.to_vec(),
                next_cursor: next_cursor.clone(),
            };
            let raw = Page {
                data: data.iter().map(|v| v.to_string().into_bytes()).collect(),
                next_cursor,
            };
            assert_eq!(
                String::from_utf8(raw.json_of_items()).expect("utf-8"),
                serde_json::to_string(&page).expect("json")
            );
        }
    }

    #[test]
    fn cursors_round_trip_and_foreign_strings_are_refused() {
        let c = cursor::encode("con_01abc");
        assert_eq!(cursor::decode(&c).as_deref(), Some("con_01abc"));
        // The earlier form still reads.
        assert_eq!(
            cursor::decode("djE6Y29uXzAxYWJj").as_deref(),
            Some("con_01abc")
        );
        for refused in ["!!!", "", "con-01", "a b", "%00", &"x".repeat(65)] {
            assert!(cursor::decode(refused).is_none(), "{refused}");
        }
        // `v1:` and a NUL is no earlier cursor: only its own characters, a place.
        assert_eq!(cursor::decode("djE6AA").as_deref(), Some("djE6AA"));
    }

    #[test]
    fn a_full_page_yields_the_cursor_of_its_last_row() {
        let page = Page::from_rows(vec!["a", "b", "c"], 2, |s| s);
        assert_eq!(page.data, vec!["a", "b"]);
        assert_eq!(
            cursor::decode(&page.next_cursor.expect("next")).as_deref(),
            Some("b")
        );
        let page = Page::from_rows(vec!["a"], 2, |s| s);
        assert_eq!(page.data, vec!["a"]);
        assert!(page.next_cursor.is_none());
    }

    #[test]
    fn a_page_query_reports_limit_and_cursor_together() {
        let q = PageQuery::<200> {
            limit: Some(201),
            cursor: Some("no pe".into()),
        };
        let err = ApiErrorFields::of(q.check().expect_err("both bad"));
        assert_eq!(err, vec!["cursor", "limit"]);
        let ok = PageQuery::<200> {
            limit: None,
            cursor: Some(cursor::encode("per_1")),
        }
        .check()
        .expect("fine");
        assert_eq!(ok.after.as_deref(), Some("per_1"));
        assert_eq!(ok.limit, 50);
    }

    struct ApiErrorFields;
    impl ApiErrorFields {
        fn of(f: FieldErrors) -> Vec<String> {
            f.fields().map(str::to_string).collect()
        }
    }
}
