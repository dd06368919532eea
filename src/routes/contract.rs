//! The rules every route shares, written into the generated OpenAPI document in one
//! place so that it says exactly what the server does: text without control
//! characters (refused with a 422 at the edge), the headers every answer carries,
//! the `servers` entry, and links from each create to what reads, changes or
//! deletes what it made (for generated clients and stateful fuzzers).

use std::collections::{BTreeMap, BTreeSet};

use unicontacts_adapters::phone;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{ArrayItems, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::server::ServerBuilder;
use utoipa::openapi::{OpenApi, RefOr, Response};
use utoipa::Modify;

/// A path or query value: no control character at all.
pub const NO_CONTROL: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$";
/// Text in a body: line breaks and tabs allowed, no other control character.
pub const BODY_TEXT: &str = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$";
/// A name (of a connection, an API key): not only spaces, no control character.
const NAME: &str = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$";

/// Request-body fields that keep one rule wherever they appear.
fn field_pattern(name: &str) -> Option<&'static str> {
    match name {
        "url" | "base_url" => Some(crate::service::URL_PATTERN),
        "name" => Some(NAME),
        _ => None,
    }
}

/// Query parameters whose values are a list the services keep: the pattern is
/// built from that list, so the two never drift apart.
fn listed_values(operation_id: &str, param: &str) -> Option<String> {
    let alternatives = |values: &[&str]| {
        values
            .iter()
            .map(|v| v.replace('.', "\\."))
            .collect::<Vec<_>>()
            .join("|")
    };
    match (operation_id, param) {
        ("list_events", "types") => {
            let one = alternatives(&crate::service::events::TYPES);
            Some(format!("^(({one})(,({one}))*)?$"))
        }
        ("list_audit_events", "action") => Some(format!(
            "^({})$",
            alternatives(&crate::service::audit::ACTIONS)
        )),
        _ => None,
    }
}

pub struct Contract;

impl Modify for Contract {
    fn modify(&self, api: &mut OpenApi) {
        api.servers = Some(vec![ServerBuilder::new()
            .url("/")
            .description(Some("this server"))
            .build()]);
        let bodies = request_schemas(api);
        if let Some(components) = api.components.as_mut() {
            if let Some(RefOr::T(Schema::Object(settings))) =
                components.schemas.get_mut("SettingsInput")
            {
                if let Some(RefOr::T(Schema::Object(country))) =
                    settings.properties.get_mut("default_country")
                {
                    let mut codes: Vec<serde_json::Value> = phone::known_regions()
                        .into_iter()
                        .map(serde_json::Value::from)
                        .collect();
                    codes.push(serde_json::Value::Null);
                    country.enum_values = Some(codes);
                }
            }
            for (name, schema) in components.schemas.iter_mut() {
                if bodies.contains(name) {
                    plain_text(schema, BODY_TEXT);
                }
            }
        }
        let creates = creates(api);
        for (path, item) in api.paths.paths.iter_mut() {
            for (method, op) in operations(item) {
                let id = op.operation_id.clone().unwrap_or_default();
                for p in op.parameters.iter_mut().flatten() {
                    if let Some(schema) = p.schema.as_mut() {
                        if let (Some(listed), RefOr::T(Schema::Object(o))) =
                            (listed_values(&id, &p.name), &mut *schema)
                        {
                            o.pattern = Some(listed);
                        }
                        plain_text(schema, NO_CONTROL);
                    }
                }
                let takes_text = op
                    .parameters
                    .iter()
                    .flatten()
                    .any(|p| matches!(p.parameter_in, ParameterIn::Path | ParameterIn::Query));
                if takes_text && !op.responses.responses.contains_key("422") {
                    op.responses.responses.insert(
                        "422".into(),
                        crate::http::responses::error(
                            "A path or query value holds a control character (`details.fields` names it)",
                        ),
                    );
                }
                let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
                if op.responses.responses.contains_key("304") {
                    conditional(op);
                }
                for (status, response) in op.responses.responses.iter_mut() {
                    if let RefOr::T(response) = response {
                        headers(response, status, secured);
                        if method == "post" && status == "201" {
                            links(response, path, &creates);
                        }
                    }
                }
            }
        }
    }
}

/// The component schemas a request body uses, directly or inside another (text in
/// answers is whatever the providers hold, so it gets no pattern).
fn request_schemas(api: &OpenApi) -> BTreeSet<String> {
    let mut todo = Vec::new();
    let mut item_ops = api.paths.paths.clone();
    for item in item_ops.values_mut() {
        for (_, op) in operations(item) {
            for content in op.request_body.iter().flat_map(|b| b.content.values()) {
                if let Some(schema) = &content.schema {
                    refs_in(schema, &mut todo);
                }
            }
        }
    }
    let schemas = api.components.as_ref().map(|c| &c.schemas);
    let mut found = BTreeSet::new();
    while let Some(name) = todo.pop() {
        if found.insert(name.clone()) {
            if let Some(schema) = schemas.and_then(|s| s.get(&name)) {
                refs_in(schema, &mut todo);
            }
        }
    }
    found
}

fn refs_in(schema: &RefOr<Schema>, out: &mut Vec<String>) {
    let schema = match schema {
        RefOr::Ref(r) => {
            if let Some(name) = r.ref_location.strip_prefix("#/components/schemas/") {
                out.push(name.to_string());
            }
            return;
        }
        RefOr::T(schema) => schema,
    };
    match schema {
        Schema::Object(o) => o.properties.values().for_each(|p| refs_in(p, out)),
        Schema::Array(a) => {
            if let ArrayItems::RefOrSchema(items) = &a.items {
                refs_in(items, out);
            }
        }
        Schema::OneOf(o) => o.items.iter().for_each(|s| refs_in(s, out)),
        Schema::AllOf(o) => o.items.iter().for_each(|s| refs_in(s, out)),
        Schema::AnyOf(o) => o.items.iter().for_each(|s| refs_in(s, out)),
        _ => {}
    }
}

fn operations(item: &mut utoipa::openapi::PathItem) -> Vec<(&'static str, &mut Operation)> {
    let mut ops = Vec::new();
    for (name, op) in [
        ("get", item.get.as_mut()),
        ("post", item.post.as_mut()),
        ("patch", item.patch.as_mut()),
        ("delete", item.delete.as_mut()),
        ("put", item.put.as_mut()),
    ] {
        if let Some(op) = op {
            ops.push((name, op));
        }
    }
    ops
}

/// Sets `pattern` on every string of `schema` (properties, items, alternatives)
/// that has no pattern, format or list of values of its own.
fn plain_text(schema: &mut RefOr<Schema>, pattern: &str) {
    let RefOr::T(schema) = schema else { return };
    match schema {
        Schema::Object(o) => {
            let is_text = match &o.schema_type {
                SchemaType::Type(Type::String) => true,
                SchemaType::Array(types) => types.contains(&Type::String),
                _ => false,
            };
            if is_text && o.pattern.is_none() && o.format.is_none() && o.enum_values.is_none() {
                o.pattern = Some(pattern.to_string());
            }
            for (name, p) in o.properties.iter_mut() {
                match field_pattern(name).filter(|_| pattern == BODY_TEXT) {
                    Some(own) => plain_text(p, own),
                    None => plain_text(p, pattern),
                }
            }
        }
        Schema::Array(a) => {
            if let ArrayItems::RefOrSchema(items) = &mut a.items {
                plain_text(items, pattern);
            }
        }
        Schema::OneOf(o) => o.items.iter_mut().for_each(|s| plain_text(s, pattern)),
        Schema::AllOf(o) => o.items.iter_mut().for_each(|s| plain_text(s, pattern)),
        Schema::AnyOf(o) => o.items.iter_mut().for_each(|s| plain_text(s, pattern)),
        _ => {}
    }
}

fn header(description: &str, type_: Type) -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(ObjectBuilder::new().schema_type(type_))
        .description(Some(description))
        .build()
}

/// The headers an answer carries: `x-request-id` always; the caller's quota on an
/// authenticated route; `Retry-After` on a 429 or 503; `Location` on a 201.
fn headers(response: &mut Response, status: &str, secured: bool) {
    let h = &mut response.headers;
    h.entry("x-request-id".into()).or_insert_with(|| {
        header(
            "This request's id (also `request_id` of an error body); a valid one the client sent is kept",
            Type::String,
        )
    });
    if secured && status != "401" {
        for (name, description) in [
            (
                "X-RateLimit-Limit",
                "This API key's burst: requests it may make at once",
            ),
            ("X-RateLimit-Remaining", "Requests it may make now"),
            (
                "X-RateLimit-Reset",
                "When its quota is full again (epoch seconds)",
            ),
        ] {
            h.entry(name.into())
                .or_insert_with(|| header(description, Type::Integer));
        }
    }
    if status == "429" || status == "503" {
        h.entry("Retry-After".into())
            .or_insert_with(|| header("Seconds to wait before asking again", Type::Integer));
    }
    if status == "201" {
        h.entry("Location".into())
            .or_insert_with(|| header("Where the created resource is read", Type::String));
    }
}

/// A conditional GET: `If-None-Match` in, `ETag` out (on the 200 and the 304);
/// a live read also says where its answer came from.
fn conditional(op: &mut Operation) {
    use utoipa::openapi::path::ParameterBuilder;
    use utoipa::openapi::Required;
    op.parameters.get_or_insert_with(Vec::new).push(
        ParameterBuilder::new()
            .name("If-None-Match")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(
                "ETags the client holds: a 304 without a body when one is current",
            ))
            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
            .build(),
    );
    let live = op.operation_id.as_deref() == Some("get_connection_contact");
    for status in ["200", "304"] {
        let Some(RefOr::T(response)) = op.responses.responses.get_mut(status) else {
            continue;
        };
        let h = &mut response.headers;
        h.insert(
            "ETag".into(),
            header(
                "Strong; from the content (the same while it is)",
                Type::String,
            ),
        );
        h.insert(
            "Cache-Control".into(),
            header("`private`; how long the copy is fresh", Type::String),
        );
        if live {
            h.insert(
                "X-Cache".into(),
                HeaderBuilder::new()
                    .schema(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .enum_values(Some(["HIT", "MISS", "STALE"])),
                    )
                    .description(Some("Where the answer came from"))
                    .build(),
            );
            h.insert(
                "Age".into(),
                header("Seconds since a `STALE` copy was fetched", Type::Integer),
            );
        }
    }
}

/// Each create (`POST` answered 201) by the collection path it creates in, with
/// the operations on one of its members: the path and operation ids that take its
/// `id` (`/v1/admin/webhooks` → `get_webhook` with `{id}`, …).
fn creates(api: &OpenApi) -> BTreeMap<String, Vec<(String, String)>> {
    let mut found = BTreeMap::new();
    for (path, item) in &api.paths.paths {
        let takes_201 = item
            .post
            .as_ref()
            .is_some_and(|op| op.responses.responses.contains_key("201"));
        if !takes_201 {
            continue;
        }
        let member = format!("{path}/{{id}}");
        let mut targets = Vec::new();
        for (other, other_item) in &api.paths.paths {
            let param = if other == &member || other.starts_with(&format!("{member}/")) {
                "id"
            } else if path == "/v1/admin/connections"
                && other.starts_with("/v1/connections/{connection_id}")
                && !other.contains("{remote_id}")
            {
                "connection_id"
            } else {
                continue;
            };
            let mut item = other_item.clone();
            for (_, op) in operations(&mut item) {
                if let Some(id) = &op.operation_id {
                    if other.matches('{').count() == 1 {
                        targets.push((id.clone(), param.to_string()));
                    }
                }
            }
        }
        found.insert(path.clone(), targets);
    }
    found
}

fn links(response: &mut Response, path: &str, creates: &BTreeMap<String, Vec<(String, String)>>) {
    for (operation_id, param) in creates.get(path).into_iter().flatten() {
        response
            .links
            .entry(operation_id.clone())
            .or_insert_with(|| {
                LinkBuilder::new()
                    .operation_id(operation_id.clone())
                    .parameter(param.clone(), "$response.body#/id")
                    .description(format!("`{param}` is the created resource's `id`"))
                    .build()
                    .into()
            });
    }
}

/// The document as JSON, with what utoipa writes in another form than OpenAPI's put
/// right: a link's `operation_id` is `operationId`.
pub fn rendered(api: OpenApi) -> serde_json::Value {
    let mut doc = serde_json::to_value(api).unwrap_or_default();
    if let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) {
        for item in paths.values_mut().filter_map(|i| i.as_object_mut()) {
            for op in item.values_mut() {
                let Some(responses) = op.get_mut("responses").and_then(|r| r.as_object_mut())
                else {
                    continue;
                };
                for response in responses.values_mut() {
                    let Some(links) = response.get_mut("links").and_then(|l| l.as_object_mut())
                    else {
                        continue;
                    };
                    for link in links.values_mut().filter_map(|l| l.as_object_mut()) {
                        if let Some(id) = link.remove("operation_id") {
                            link.insert("operationId".into(), id);
                        }
                        link.remove("operation_ref");
                    }
                }
            }
        }
    }
    doc
}
