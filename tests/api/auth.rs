use diesel::prelude::*;
use unicontacts::service::api_keys::Scope;
use unicontacts::store::schema::api_keys;

use crate::helpers::{assert_error, send, spawn_app, Backend};

const ADMIN_ROUTES: [(&str, &str); 4] = [
    ("GET", "/v1/admin/connections"),
    ("POST", "/v1/admin/connections"),
    ("GET", "/v1/admin/api-keys"),
    ("POST", "/v1/admin/api-keys"),
];

async fn requests_without_a_valid_key_are_401(backend: Backend) {
    let app = spawn_app(backend).await;
    for (method, path) in ADMIN_ROUTES {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let res = send(app.client.request(method.clone(), app.url(path))).await;
        assert_eq!(res.headers()["www-authenticate"], "Bearer");
        assert_error(res, 401, "unauthorized").await;

        let well_formed_but_unknown = format!("uck_{}", "A".repeat(43));
        for header in [
            "Bearer nonsense".to_string(),
            format!("Basic {}", app.admin_key),
            format!("Bearer {well_formed_but_unknown}"),
            "Bearer".to_string(),
        ] {
            let res = send(
                app.client
                    .request(method.clone(), app.url(path))
                    .header("authorization", header.as_str()),
            )
            .await;
            assert_error(res, 401, "unauthorized").await;
        }
    }
}

async fn a_key_without_the_admin_scope_is_403(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, reader) = app
        .create_key("test-org", &[Scope::ContactsRead, Scope::ContactsWrite])
        .await;
    for (method, path) in ADMIN_ROUTES {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let res = send(
            app.client
                .request(method, app.url(path))
                .bearer_auth(&reader),
        )
        .await;
        assert_error(res, 403, "forbidden").await;
    }
    // The same key with the scope added works.
    let (_, admin) = app.create_key("test-org", &[Scope::Admin]).await;
    let res = send(app.get("/v1/admin/connections", &admin)).await;
    assert_eq!(res.status(), 200);
}

async fn unauthenticated_callers_hear_401_before_anything_about_their_body(backend: Backend) {
    let app = spawn_app(backend).await;
    let res = send(
        app.client
            .post(app.url("/v1/admin/connections"))
            .header("content-type", "text/plain")
            .body("{not json"),
    )
    .await;
    assert_error(res, 401, "unauthorized").await;
    let (_, reader) = app.create_key("test-org", &[Scope::ContactsRead]).await;
    let res = send(
        app.client
            .post(app.url("/v1/admin/connections?bogus=1"))
            .bearer_auth(&reader)
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_error(res, 403, "forbidden").await;
}

async fn a_revoked_key_stops_working_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, second) = app.create_key("test-org", &[Scope::Admin]).await;
    assert_eq!(
        send(app.get("/v1/admin/api-keys", &second)).await.status(),
        200
    );

    let list: serde_json::Value = send(app.get("/v1/admin/api-keys", &app.admin_key))
        .await
        .json()
        .await
        .expect("json");
    let id = list["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|k| second.starts_with(k["prefix"].as_str().expect("prefix")))
        .expect("second key listed")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let res = send(app.delete(&format!("/v1/admin/api-keys/{id}"), &app.admin_key)).await;
    assert_eq!(res.status(), 204);

    let res = send(app.get("/v1/admin/api-keys", &second)).await;
    assert_error(res, 401, "unauthorized").await;
    // The other key is untouched.
    assert_eq!(
        send(app.get("/v1/admin/api-keys", &app.admin_key))
            .await
            .status(),
        200
    );
}

async fn keys_are_stored_only_as_hashes(backend: Backend) {
    let app = spawn_app(backend).await;
    let key = app.admin_key.clone();
    let rows: Vec<(String, String)> = app
        .store
        .run(|conn| {
            Ok(api_keys::table
                .select((api_keys::prefix, api_keys::key_hash))
                .load(conn)?)
        })
        .await
        .expect("rows");
    assert_eq!(rows.len(), 1);
    let (prefix, hash) = &rows[0];
    assert!(key.starts_with(prefix.as_str()));
    assert!(prefix.len() < 16, "only a short prefix is kept in clear");
    assert_ne!(hash, &key);
    assert!(!hash.contains(&key[4..]), "the hash is not the key");
    assert_eq!(hash.len(), 64, "SHA-256 hex");
}

crate::db_tests!(
    requests_without_a_valid_key_are_401,
    a_key_without_the_admin_scope_is_403,
    unauthenticated_callers_hear_401_before_anything_about_their_body,
    a_revoked_key_stops_working_at_once,
    keys_are_stored_only_as_hashes,
);
