use serde_json::json;

use crate::helpers::{assert_error, send, spawn_app, Backend};

async fn unknown_routes_are_404_in_the_envelope(backend: Backend) {
    let app = spawn_app(backend).await;
    for path in ["/nope", "/v1/admin/nothing", "/v1/admin/connections/a/b"] {
        let res = send(app.get(path, &app.admin_key)).await;
        assert_error(res, 404, "not_found").await;
    }
}

async fn wrong_methods_are_405_in_the_envelope(backend: Backend) {
    let app = spawn_app(backend).await;
    let res = send(
        app.client
            .put(app.url("/v1/admin/connections"))
            .bearer_auth(&app.admin_key),
    )
    .await;
    assert_error(res, 405, "method_not_allowed").await;
    let res = send(app.client.post(app.url("/healthz"))).await;
    assert_error(res, 405, "method_not_allowed").await;
    let res = send(
        app.client
            .get(app.url("/v1/admin/api-keys/key_1"))
            .bearer_auth(&app.admin_key),
    )
    .await;
    assert_error(res, 405, "method_not_allowed").await;
}

async fn malformed_json_is_400(backend: Backend) {
    let app = spawn_app(backend).await;
    for body in ["{\"provider\": ", "", "[1,2", "nul"] {
        let res = send(
            app.client
                .post(app.url("/v1/admin/connections"))
                .bearer_auth(&app.admin_key)
                .header("content-type", "application/json")
                .body(body),
        )
        .await;
        assert_error(res, 400, "bad_request").await;
    }
    // Valid JSON of the wrong shape is a validation error.
    let res = send(app.post("/v1/admin/connections", &app.admin_key, &json!([1, 2]))).await;
    assert_error(res, 422, "validation_failed").await;
}

async fn a_body_that_is_not_json_is_415(backend: Backend) {
    let app = spawn_app(backend).await;
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut req = app
            .client
            .post(app.url("/v1/admin/connections"))
            .bearer_auth(&app.admin_key)
            .body("{}");
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        assert_error(send(req).await, 415, "unsupported_media_type").await;
    }
    let res = send(
        app.client
            .post(app.url("/v1/admin/api-keys"))
            .bearer_auth(&app.admin_key)
            .header("content-type", "application/json; charset=utf-8")
            .body(r#"{"name":"ok","scopes":["admin"]}"#),
    )
    .await;
    assert_eq!(res.status(), 201, "charset parameters are fine");
}

async fn bodies_over_one_mebibyte_are_413(backend: Backend) {
    let app = spawn_app(backend).await;
    let big = format!("{{\"name\": \"{}\"}}", "a".repeat(1024 * 1024));
    let res = send(
        app.client
            .post(app.url("/v1/admin/connections"))
            .bearer_auth(&app.admin_key)
            .header("content-type", "application/json")
            .body(big),
    )
    .await;
    assert_error(res, 413, "payload_too_large").await;
    // Just under the limit is read (and then judged on its content).
    let fits = format!("{{\"x\": \"{}\"}}", "a".repeat(1024 * 1024 - 100));
    let res = send(
        app.client
            .post(app.url("/v1/admin/connections"))
            .bearer_auth(&app.admin_key)
            .header("content-type", "application/json")
            .body(fits),
    )
    .await;
    assert_error(res, 422, "validation_failed").await;
}

async fn bad_query_parameters_are_422_naming_the_parameter(backend: Backend) {
    let app = spawn_app(backend).await;
    for (query, param) in [
        ("limit=abc", "limit"),
        ("limit=0", "limit"),
        ("limit=-1", "limit"),
        ("provider=hubspot", "provider"),
        ("colour=red", "colour"),
    ] {
        let res = send(app.get(&format!("/v1/admin/connections?{query}"), &app.admin_key)).await;
        let err = assert_error(res, 422, "validation_failed").await;
        assert!(
            err["error"]["details"]["fields"][param].is_array(),
            "{query}: {err}"
        );
    }
    let res = send(app.get("/v1/admin/api-keys?include_revoked=maybe", &app.admin_key)).await;
    assert_error(res, 422, "validation_failed").await;
}

/// A NUL (or any control character) in a path segment, a query value, a cursor
/// or a JSON string is a 422 naming the field, on both backends; PostgreSQL
/// answered 500 for it, SQLite matched every contact with `q=%00`.
async fn control_characters_are_422_naming_the_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let reader = app.reader_key().await;
    for (path, field, key) in [
        ("/v1/contacts?q=%00", "q", &reader),
        ("/v1/contacts?label=a%00b", "label", &reader),
        ("/v1/contacts?membership=%00", "membership", &reader),
        ("/v1/contacts?connection_id=%00", "connection_id", &reader),
        ("/v1/people?q=%00", "q", &reader),
        ("/v1/contacts/%00", "id", &reader),
        ("/v1/people/ctc%01x", "id", &reader),
        (
            "/v1/admin/sync-runs?connection_id=%00",
            "connection_id",
            &app.admin_key,
        ),
        ("/v1/admin/connections/%00", "id", &app.admin_key),
        ("/v1/admin/sync-runs/%00", "id", &app.admin_key),
        ("/v1/contacts?cursor=a%2Bb", "cursor", &reader),
    ] {
        let res = send(app.get(path, key)).await;
        let err = assert_error(res, 422, "validation_failed").await;
        assert!(
            err["error"]["details"]["fields"][field].is_array(),
            "{path}: {err}"
        );
    }
    // A cursor is a place in the list: any string of an id's characters is one
    // (`djE6AA` is the old form of `v1:` and a NUL: a place, not a NUL).
    for cursor in ["djE6AA", "zzz", "a"] {
        let res = send(app.get(&format!("/v1/contacts?cursor={cursor}"), &reader)).await;
        assert_eq!(res.status(), 200, "{cursor}");
    }
    let res = send(app.post(
        "/v1/admin/api-keys",
        &app.admin_key,
        &json!({"name": "a\u{0}b", "scopes": ["admin"]}),
    ))
    .await;
    let err = assert_error(res, 422, "validation_failed").await;
    assert_eq!(
        err["error"]["details"]["fields"]["name"][0], "must not contain control characters",
        "{err}"
    );
    let res = send(app.post(
        "/v1/admin/connections",
        &app.admin_key,
        &json!({"provider": "wacr", "name": "ok", "credentials": {"api_key": "k\u{7}ey-0123456789"},
                "settings": {"default_country": "IN"}}),
    ))
    .await;
    let err = assert_error(res, 422, "validation_failed").await;
    assert!(
        err["error"]["details"]["fields"]["credentials.api_key"].is_array(),
        "{err}"
    );
    // Line breaks stay allowed in a body's text.
    let res = send(app.post(
        "/v1/admin/api-keys",
        &app.admin_key,
        &json!({"name": "two\nlines", "scopes": ["admin"]}),
    ))
    .await;
    assert_eq!(res.status(), 201);
}

crate::db_tests!(
    control_characters_are_422_naming_the_field,
    unknown_routes_are_404_in_the_envelope,
    wrong_methods_are_405_in_the_envelope,
    malformed_json_is_400,
    a_body_that_is_not_json_is_415,
    bodies_over_one_mebibyte_are_413,
    bad_query_parameters_are_422_naming_the_parameter,
);
