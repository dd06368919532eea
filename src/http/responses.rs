//! The error responses routes share in the OpenAPI document, each one our
//! `ErrorBody` envelope: `responses((status = 200, …), AuthErrors, NotFound)`.

use std::collections::BTreeMap;

use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::IntoResponses;

/// One error response: `description`, our `ErrorBody`.
pub fn error(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
        .into()
}

fn set(entries: &[(&str, &str)]) -> BTreeMap<String, RefOr<Response>> {
    entries
        .iter()
        .map(|(status, description)| (status.to_string(), error(description)))
        .collect()
}

/// 401, 403 and 429: every authenticated route.
pub struct AuthErrors;

impl IntoResponses for AuthErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        set(&[
            ("401", "Missing or invalid API key"),
            ("403", "The key lacks the scope this route needs"),
            (
                "429",
                "Over this key's quota (`Retry-After` says when to come back)",
            ),
        ])
    }
}

/// 404: a route about one resource of the caller's org.
pub struct NotFound;

impl IntoResponses for NotFound {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        set(&[("404", "No such resource in this org")])
    }
}

/// 422: a route with query parameters.
pub struct InvalidQuery;

impl IntoResponses for InvalidQuery {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        set(&[(
            "422",
            "Invalid query parameters (`details.fields` names each)",
        )])
    }
}

/// 400, 413, 415 and 422: a route that reads a JSON body.
pub struct BodyErrors;

impl IntoResponses for BodyErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        set(&[
            ("400", "Malformed JSON"),
            ("413", "Body over 1 MiB"),
            ("415", "Not JSON"),
            ("422", "Invalid fields (`details.fields` names every one)"),
        ])
    }
}
