use serde_json::{json, Value};
use unicontacts::service::api_keys::Scope;

use crate::helpers::{assert_error, send, spawn_app, Backend};

async fn a_created_key_is_shown_once_and_works_with_its_scopes(backend: Backend) {
    let app = spawn_app(backend).await;
    let res = send(app.post(
        "/v1/admin/api-keys",
        &app.admin_key,
        &json!({"name": "reporting", "scopes": ["contacts:read"]}),
    ))
    .await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let created: Value = res.json().await.expect("json");
    let key = created["key"].as_str().expect("key").to_string();
    assert!(
        key.starts_with("uck_") && key.len() >= 40,
        "≥128 bits: {key}"
    );
    assert!(key.starts_with(created["prefix"].as_str().expect("prefix")));
    assert_eq!(created["scopes"], json!(["contacts:read"]));
    assert_eq!(created["revoked_at"], Value::Null);

    // The new key authenticates but lacks `admin`.
    let res = send(app.get("/v1/admin/api-keys", &key)).await;
    assert_error(res, 403, "forbidden").await;

    // The key never appears again.
    let text = send(app.get("/v1/admin/api-keys", &app.admin_key))
        .await
        .text()
        .await
        .expect("body");
    assert!(!text.contains(&key), "{text}");
    let list: Value = serde_json::from_str(&text).expect("json");
    let listed = list["data"].as_array().expect("data");
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|k| k.get("key").is_none()));
}

async fn revoked_keys_leave_the_list_unless_asked_for(backend: Backend) {
    let app = spawn_app(backend).await;
    let created: Value = send(app.post(
        "/v1/admin/api-keys",
        &app.admin_key,
        &json!({"name": "temp", "scopes": ["admin"]}),
    ))
    .await
    .json()
    .await
    .expect("json");
    let id = created["id"].as_str().expect("id");
    assert_eq!(
        send(app.delete(&format!("/v1/admin/api-keys/{id}"), &app.admin_key))
            .await
            .status(),
        204
    );
    // Revoking again is harmless.
    assert_eq!(
        send(app.delete(&format!("/v1/admin/api-keys/{id}"), &app.admin_key))
            .await
            .status(),
        204
    );

    let list: Value = send(app.get("/v1/admin/api-keys", &app.admin_key))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(list["data"].as_array().expect("data").len(), 1);
    let all: Value = send(app.get("/v1/admin/api-keys?include_revoked=true", &app.admin_key))
        .await
        .json()
        .await
        .expect("json");
    let revoked = all["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|k| k["id"] == id)
        .expect("listed")
        .clone();
    assert!(revoked["revoked_at"].is_string());
}

async fn another_orgs_key_cannot_be_seen_or_revoked(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, other_admin) = app.create_key("other-org", &[Scope::Admin]).await;
    let mine: Value = send(app.get("/v1/admin/api-keys", &app.admin_key))
        .await
        .json()
        .await
        .expect("json");
    let my_id = mine["data"][0]["id"].as_str().expect("id").to_string();

    let theirs: Value = send(app.get("/v1/admin/api-keys", &other_admin))
        .await
        .json()
        .await
        .expect("json");
    assert!(theirs["data"]
        .as_array()
        .expect("data")
        .iter()
        .all(|k| k["id"] != my_id.as_str()));
    let res = send(app.delete(&format!("/v1/admin/api-keys/{my_id}"), &other_admin)).await;
    assert_error(res, 404, "not_found").await;
    assert_eq!(
        send(app.get("/v1/admin/api-keys", &app.admin_key))
            .await
            .status(),
        200
    );
}

async fn bad_key_requests_are_422_naming_the_field(backend: Backend) {
    let app = spawn_app(backend).await;
    for (body, field) in [
        (json!({"name": "x", "scopes": ["root"]}), "scopes[0]"),
        (json!({"name": "x", "scopes": []}), "scopes"),
        (json!({"name": "", "scopes": ["admin"]}), "name"),
        (json!({"scopes": ["admin"]}), "name"),
    ] {
        let res = send(app.post("/v1/admin/api-keys", &app.admin_key, &body)).await;
        let err = assert_error(res, 422, "validation_failed").await;
        assert!(
            err["error"]["details"]["fields"][field].is_array(),
            "{field}: {err}"
        );
    }
    let res = send(app.get("/v1/admin/api-keys?limit=501", &app.admin_key)).await;
    assert_error(res, 422, "validation_failed").await;
}

crate::db_tests!(
    a_created_key_is_shown_once_and_works_with_its_scopes,
    revoked_keys_leave_the_list_unless_asked_for,
    another_orgs_key_cannot_be_seen_or_revoked,
    bad_key_requests_are_422_naming_the_field,
);
