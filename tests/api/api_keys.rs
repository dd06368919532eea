use serde_json::{json, Value};
use unicontacts::service::api_keys::Scope;

use crate::helpers::{assert_error, send, spawn_app, Backend, TestApp};

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

async fn create(app: &TestApp, body: Value) -> Value {
    let res = send(app.post("/v1/admin/api-keys", &app.admin_key, &body)).await;
    assert_eq!(res.status(), 201);
    res.json().await.expect("json")
}

async fn list(app: &TestApp) -> Vec<Value> {
    let list: Value = send(app.get("/v1/admin/api-keys", &app.admin_key))
        .await
        .json()
        .await
        .expect("json");
    list["data"].as_array().expect("data").clone()
}

/// Sets the key's expiry in the database (as if time had passed).
async fn expire(app: &TestApp, id: &str, at: chrono::NaiveDateTime) {
    let id = id.to_string();
    app.store
        .run(move |conn| {
            use diesel::prelude::*;
            use unicontacts::store::schema::api_keys;
            diesel::update(api_keys::table.filter(api_keys::id.eq(&id)))
                .set(api_keys::expires_at.eq(Some(at)))
                .execute(conn)
                .map_err(unicontacts::store::StoreError::from)
        })
        .await
        .expect("expire");
}

async fn the_last_admin_key_cannot_be_revoked(backend: Backend) {
    let app = spawn_app(backend).await;
    let mine = list(&app).await[0]["id"].as_str().expect("id").to_string();
    let reader = create(&app, json!({"name": "r", "scopes": ["contacts:read"]})).await;
    // Alone with a reader key: refused, pointing to how to make another.
    let res = send(app.delete(&format!("/v1/admin/api-keys/{mine}"), &app.admin_key)).await;
    let err = assert_error(res, 409, "conflict").await;
    assert!(
        err["error"]["message"]
            .as_str()
            .expect("message")
            .contains("keys create"),
        "{err}"
    );
    // An expired admin key is no admin.
    let expired = create(
        &app,
        json!({"name": "soon", "scopes": ["admin"], "expires_at": "2099-01-01T00:00:00Z"}),
    )
    .await;
    let expired_id = expired["id"].as_str().expect("id").to_string();
    let past = chrono::Utc::now().naive_utc() - chrono::Duration::minutes(1);
    expire(&app, &expired_id, past).await;
    let res = send(app.delete(&format!("/v1/admin/api-keys/{mine}"), &app.admin_key)).await;
    assert_error(res, 409, "conflict").await;
    // With a second admin key, the first goes; then the second is the last.
    let second = create(
        &app,
        json!({"name": "a2", "scopes": ["contacts:read", "admin"]}),
    )
    .await;
    let second_key = second["key"].as_str().expect("key").to_string();
    let second_id = second["id"].as_str().expect("id");
    let res = send(app.delete(&format!("/v1/admin/api-keys/{mine}"), &second_key)).await;
    assert_eq!(res.status(), 204);
    let res = send(app.delete(&format!("/v1/admin/api-keys/{second_id}"), &second_key)).await;
    assert_error(res, 409, "conflict").await;
    // Other keys go as before, the expired admin key too.
    for id in [reader["id"].as_str().expect("id"), expired_id.as_str()] {
        let res = send(app.delete(&format!("/v1/admin/api-keys/{id}"), &second_key)).await;
        assert_eq!(res.status(), 204, "{id}");
    }
}

async fn keys_expire_and_record_their_last_use(backend: Backend) {
    let app = spawn_app(backend).await;
    // Every field error at once.
    let res = send(app.post(
        "/v1/admin/api-keys",
        &app.admin_key,
        &json!({"name": "", "scopes": ["admin"], "expires_at": "tomorrow"}),
    ))
    .await;
    let err = assert_error(res, 422, "validation_failed").await;
    for field in ["name", "expires_at"] {
        assert!(
            err["error"]["details"]["fields"][field].is_array(),
            "{field}: {err}"
        );
    }
    let res = send(app.post(
        "/v1/admin/api-keys",
        &app.admin_key,
        &json!({"name": "x", "scopes": ["admin"], "expires_at": "2020-01-01T00:00:00Z"}),
    ))
    .await;
    let err = assert_error(res, 422, "validation_failed").await;
    assert_eq!(
        err["error"]["details"]["fields"]["expires_at"][0],
        "must be in the future"
    );

    let created = create(
        &app,
        json!({"name": "job", "scopes": ["contacts:read"], "expires_at": "2099-01-01T00:00:00+02:00"}),
    )
    .await;
    assert_eq!(created["expires_at"], "2098-12-31T22:00:00.000000Z");
    assert!(created["last_used_at"].is_null());
    let (id, key) = (
        created["id"].as_str().expect("id").to_string(),
        created["key"].as_str().expect("key").to_string(),
    );
    assert_eq!(send(app.get("/v1/contacts", &key)).await.status(), 200);
    // Written in the background: awaited by polling its row, bounded.
    let mut used = Value::Null;
    for _ in 0..200 {
        let row = list(&app)
            .await
            .into_iter()
            .find(|k| k["id"] == id)
            .expect("listed");
        if row["last_used_at"].is_string() {
            used = row["last_used_at"].clone();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(used.is_string(), "last_used_at never written");
    // Within the minute, more use writes nothing.
    for _ in 0..3 {
        assert_eq!(send(app.get("/v1/contacts", &key)).await.status(), 200);
    }
    let after = list(&app)
        .await
        .into_iter()
        .find(|k| k["id"] == id)
        .expect("listed");
    assert_eq!(after["last_used_at"], used);

    // A key past its expiry is refused, also when this process had it in memory.
    let past = chrono::Utc::now().naive_utc() - chrono::Duration::seconds(1);
    expire(&app, &id, past).await;
    app.state.keys.forget_key(&id);
    let res = send(app.get("/v1/contacts", &key)).await;
    let err = assert_error(res, 401, "unauthorized").await;
    assert_eq!(err["error"]["message"], "this API key has expired");
}

crate::db_tests!(
    the_last_admin_key_cannot_be_revoked,
    keys_expire_and_record_their_last_use,
    a_created_key_is_shown_once_and_works_with_its_scopes,
    revoked_keys_leave_the_list_unless_asked_for,
    another_orgs_key_cannot_be_seen_or_revoked,
    bad_key_requests_are_422_naming_the_field,
);
