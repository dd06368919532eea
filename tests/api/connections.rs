use std::collections::HashSet;

use serde_json::{json, Value};
use unicontacts::service::api_keys::Scope;

use crate::helpers::{assert_error, periskope_connection, send, spawn_app, Backend};

const SECRET: &str = "pk_live_SUPERSECRET_0123456789wxyz";

async fn a_connection_can_be_created_read_listed_updated_and_deleted(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app
        .create_connection(periskope_connection("Sales", SECRET))
        .await;
    let id = created["id"].as_str().expect("id").to_string();
    assert!(id.starts_with("con_"));
    assert_eq!(created["provider"], "periskope");
    assert_eq!(created["name"], "Sales");
    assert_eq!(created["base_url"], "https://api.periskope.app/v1");
    assert_eq!(created["credentials"]["phone"], "919874532456");
    assert_eq!(
        created["settings"],
        json!({"default_country": "IN", "rate_limit_per_second": 10, "sync_interval_seconds": 900, "cache_ttl_seconds": 60, "deletion_guard_percent": 10, "deletion_guard_min": 5})
    );

    let mut got: Value = send(app.get(&format!("/v1/admin/connections/{id}"), &app.admin_key))
        .await
        .json()
        .await
        .expect("json");
    // Only the one connection's GET carries its credential's quota (the
    // credentials check called the provider, so there is one).
    assert!(got["upstream_quota"].is_object(), "{got}");
    got.as_object_mut()
        .expect("object")
        .remove("upstream_quota");
    assert_eq!(got, created);

    let list: Value = send(app.get("/v1/admin/connections", &app.admin_key))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(list["data"], json!([created]));
    assert_eq!(list["next_cursor"], Value::Null);

    let res = send(app.patch(
        &format!("/v1/admin/connections/{id}"),
        &app.admin_key,
        &json!({"name": "Sales EU", "settings": {"rate_limit_per_second": 3, "default_country": null}}),
    ))
    .await;
    assert_eq!(res.status(), 200);
    let updated: Value = res.json().await.expect("json");
    assert_eq!(updated["name"], "Sales EU");
    assert_eq!(updated["settings"]["rate_limit_per_second"], 3);
    assert_eq!(updated["settings"]["default_country"], Value::Null);
    assert_eq!(
        updated["settings"]["sync_interval_seconds"], 900,
        "untouched settings stay"
    );
    assert_eq!(updated["created_at"], created["created_at"]);

    let res = send(app.delete(&format!("/v1/admin/connections/{id}"), &app.admin_key)).await;
    assert_eq!(res.status(), 204);
    let res = send(app.get(&format!("/v1/admin/connections/{id}"), &app.admin_key)).await;
    assert_error(res, 404, "not_found").await;
    let res = send(app.delete(&format!("/v1/admin/connections/{id}"), &app.admin_key)).await;
    assert_error(res, 404, "not_found").await;
}

async fn credentials_never_come_back_in_any_response(backend: Backend) {
    let app = spawn_app(backend).await;
    let res = send(app.post(
        "/v1/admin/connections",
        &app.admin_key,
        &periskope_connection("Sales", SECRET),
    ))
    .await;
    let text = res.text().await.expect("body");
    assert!(!text.contains("SUPERSECRET"), "{text}");
    let created: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(created["credentials"]["api_key"], "…wxyz");
    let id = created["id"].as_str().expect("id");

    let new_secret = "pk_live_ROTATEDSECRET_abcdefgh9876";
    let mut bodies = vec![
        send(app.get(&format!("/v1/admin/connections/{id}"), &app.admin_key)).await,
        send(app.get("/v1/admin/connections", &app.admin_key)).await,
        send(app.patch(
            &format!("/v1/admin/connections/{id}"),
            &app.admin_key,
            &json!({"credentials": {"api_key": new_secret}}),
        ))
        .await,
        // A refused write that carries a secret must not echo it either.
        send(app.post(
            "/v1/admin/connections",
            &app.admin_key,
            &json!({"provider": "wacr", "name": "x", "credentials": {"api_key": new_secret, "session": 5}}),
        ))
        .await,
        send(app.post(
            "/v1/admin/connections",
            &app.admin_key,
            &json!({"provider": "wacr", "name": "", "credentials": {"api_key": new_secret}}),
        ))
        .await,
    ];
    let mut texts = Vec::new();
    for res in bodies.drain(..) {
        texts.push(res.text().await.expect("body"));
    }
    for text in &texts {
        assert!(
            !text.contains("SUPERSECRET") && !text.contains("ROTATEDSECRET"),
            "{text}"
        );
    }
    let rotated: Value = serde_json::from_str(&texts[2]).expect("json");
    assert_eq!(
        rotated["credentials"]["api_key"], "…9876",
        "the key was rotated alone"
    );
    assert_eq!(rotated["credentials"]["phone"], "919874532456");
}

async fn base_url_defaults_for_periskope_and_is_required_for_wacr_and_gateway(backend: Backend) {
    let app = spawn_app(backend).await;
    for provider in ["wacr", "gateway"] {
        let res = send(app.post(
            "/v1/admin/connections",
            &app.admin_key,
            &json!({"provider": provider, "name": provider, "credentials": {"api_key": "k", "session": "s"}}),
        ))
        .await;
        let body = assert_error(res, 422, "validation_failed").await;
        assert!(
            body["error"]["details"]["fields"]["base_url"].is_array(),
            "{body}"
        );
    }
    let wacr = app
        .create_connection(json!({
            "provider": "wacr", "name": "crm", "base_url": "https://app.wa.cr/api/v2/",
            "credentials": {"api_key": "wacr-token-1234567890"}
        }))
        .await;
    assert_eq!(wacr["base_url"], "https://app.wa.cr/api/v2");
    let gateway = app
        .create_connection(json!({
            "provider": "gateway", "name": "gw", "base_url": "http://127.0.0.1:9000",
            "credentials": {"api_key": "gw-key", "session": "main"}
        }))
        .await;
    assert_eq!(gateway["credentials"]["session"], "main");
    assert_eq!(
        gateway["credentials"]["api_key"], "…",
        "short keys show nothing"
    );

    // Resetting the base URL to the default only works where there is one.
    let id = wacr["id"].as_str().expect("id");
    let res = send(app.patch(
        &format!("/v1/admin/connections/{id}"),
        &app.admin_key,
        &json!({"base_url": null}),
    ))
    .await;
    assert_error(res, 422, "validation_failed").await;
}

async fn each_provider_requires_its_own_credentials_and_refuses_others(backend: Backend) {
    let app = spawn_app(backend).await;
    let cases = [
        (
            json!({"provider": "periskope", "name": "a", "credentials": {"api_key": "k"}}),
            "credentials.phone",
        ),
        (
            json!({"provider": "wacr", "name": "b", "base_url": "https://x.example", "credentials": {}}),
            "credentials.api_key",
        ),
        (
            json!({"provider": "gateway", "name": "c", "base_url": "https://x.example", "credentials": {"api_key": "k"}}),
            "credentials.session",
        ),
        (
            json!({"provider": "wacr", "name": "d", "base_url": "https://x.example", "credentials": {"api_key": "k", "phone": "+15551234567"}}),
            "credentials.phone",
        ),
        (
            json!({"provider": "periskope", "name": "e", "credentials": {"api_key": "k", "phone": "12"}}),
            "credentials.phone",
        ),
    ];
    for (body, field) in cases {
        let res = send(app.post("/v1/admin/connections", &app.admin_key, &body)).await;
        let err = assert_error(res, 422, "validation_failed").await;
        assert!(
            err["error"]["details"]["fields"][field].is_array(),
            "{field}: {err}"
        );
    }
    let list: Value = send(app.get("/v1/admin/connections", &app.admin_key))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(list["data"], json!([]), "nothing was written");
}

async fn validation_errors_name_each_bad_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let res = send(app.post(
        "/v1/admin/connections",
        &app.admin_key,
        &json!({
            "provider": "periskope",
            "name": "  ",
            "base_url": "ftp://user:pw@example.com",
            "credentials": {"api_key": "k", "phone": "+91 98745 32456"},
            "settings": {"default_country": "India", "rate_limit_per_second": 0, "sync_interval_seconds": 5}
        }),
    ))
    .await;
    let err = assert_error(res, 422, "validation_failed").await;
    let fields = &err["error"]["details"]["fields"];
    for f in [
        "name",
        "base_url",
        "settings.default_country",
        "settings.rate_limit_per_second",
        "settings.sync_interval_seconds",
    ] {
        assert!(fields[f].is_array(), "{f} missing from {err}");
    }

    // Type errors, unknown providers, unknown and missing fields name their path.
    let cases = [
        (
            json!({"provider": "hubspot", "name": "x", "credentials": {}}),
            "provider",
        ),
        (
            json!({"provider": "wacr", "name": 5, "credentials": {}}),
            "name",
        ),
        (json!({"provider": "wacr", "credentials": {}}), "name"),
        (
            json!({"provider": "wacr", "name": "x", "credentials": {}, "colour": "red"}),
            "colour",
        ),
        (
            json!({"provider": "wacr", "name": "x", "credentials": {"token": "t"}}),
            "credentials.token",
        ),
    ];
    for (body, field) in cases {
        let res = send(app.post("/v1/admin/connections", &app.admin_key, &body)).await;
        let err = assert_error(res, 422, "validation_failed").await;
        assert!(
            err["error"]["details"]["fields"][field].is_array(),
            "{field}: {err}"
        );
    }

    // Every field error of a body at once, in words a user reads.
    let fields_of = |err: &Value| err["error"]["details"]["fields"].clone();
    let res = send(app.post(
        "/v1/admin/connections",
        &app.admin_key,
        &json!({"provider": "wacr", "name": "", "credentials": {}}),
    ))
    .await;
    let fields = fields_of(&assert_error(res, 422, "validation_failed").await);
    for f in ["name", "base_url", "credentials.api_key"] {
        assert!(fields[f].is_array(), "{f} missing from {fields}");
    }
    let res = send(app.post(
        "/v1/admin/connections",
        &app.admin_key,
        &json!({
            "provider": "foo", "name": 5,
            "settings": {"rate_limit_per_second": "x", "sync_interval_seconds": -3, "page_size": true},
            "colour": "red"
        }),
    ))
    .await;
    let fields = fields_of(&assert_error(res, 422, "validation_failed").await);
    assert_eq!(
        fields,
        json!({
            "provider": ["must be one of periskope, wacr, gateway"],
            "name": ["must be text (got 5)"],
            "credentials": ["is required"],
            "settings.rate_limit_per_second": ["must be a whole number, 0 or more (got text)"],
            "settings.sync_interval_seconds": ["must be a whole number, 0 or more (got -3)"],
            "settings.page_size": ["must be a whole number, 0 or more (got true)"],
            "colour": ["is not a known field (known: provider, name, base_url, credentials, settings)"]
        })
    );
    // A wrongly typed value hides no other field's rule.
    let res = send(app.post(
        "/v1/admin/connections",
        &app.admin_key,
        &json!({
            "provider": 5, "name": "  ",
            "credentials": {"api_key": ""},
            "settings": {"rate_limit_per_second": 0, "cache_ttl_seconds": "soon"}
        }),
    ))
    .await;
    let fields = fields_of(&assert_error(res, 422, "validation_failed").await);
    for f in [
        "provider",
        "name",
        "credentials.api_key",
        "settings.rate_limit_per_second",
        "settings.cache_ttl_seconds",
    ] {
        assert!(fields[f].is_array(), "{f} missing from {fields}");
    }
    assert_eq!(
        fields["settings.cache_ttl_seconds"],
        json!(["must be a whole number, 0 or more (got text)"]),
        "the stand-in's own rules are not reported"
    );
    // Only assigned ISO 3166-1 codes.
    for code in ["XX", "ZZ", "UK"] {
        let mut body = periskope_connection("Sales", SECRET);
        body["settings"] = json!({"default_country": code});
        let res = send(app.post("/v1/admin/connections?verify=false", &app.admin_key, &body)).await;
        let fields = fields_of(&assert_error(res, 422, "validation_failed").await);
        assert!(
            fields["settings.default_country"].is_array(),
            "{code}: {fields}"
        );
    }
}

async fn another_orgs_connection_is_404_for_every_method(backend: Backend) {
    let app = spawn_app(backend).await;
    let theirs = app
        .create_connection(periskope_connection("Theirs", SECRET))
        .await;
    let id = theirs["id"].as_str().expect("id");
    let (_, other_admin) = app.create_key("other-org", &[Scope::Admin]).await;
    let path = format!("/v1/admin/connections/{id}");

    assert_error(send(app.get(&path, &other_admin)).await, 404, "not_found").await;
    assert_error(
        send(app.patch(&path, &other_admin, &json!({"name": "mine now"}))).await,
        404,
        "not_found",
    )
    .await;
    assert_error(
        send(app.delete(&path, &other_admin)).await,
        404,
        "not_found",
    )
    .await;
    let list: Value = send(app.get("/v1/admin/connections", &other_admin))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(list["data"], json!([]));

    // Untouched for its owner.
    let got: Value = send(app.get(&path, &app.admin_key))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(got["name"], "Theirs");
}

async fn a_duplicate_name_in_one_org_is_409(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_connection(periskope_connection("Sales", SECRET))
        .await;
    let res = send(app.post(
        "/v1/admin/connections",
        &app.admin_key,
        &periskope_connection("Sales", SECRET),
    ))
    .await;
    assert_error(res, 409, "conflict").await;
    let other = app
        .create_connection(periskope_connection("Other", SECRET))
        .await;
    let res = send(app.patch(
        &format!(
            "/v1/admin/connections/{}",
            other["id"].as_str().expect("id")
        ),
        &app.admin_key,
        &json!({"name": "Sales"}),
    ))
    .await;
    assert_error(res, 409, "conflict").await;
    // Another org may use the same name.
    let (_, other_admin) = app.create_key("other-org", &[Scope::Admin]).await;
    let res = send(app.post(
        "/v1/admin/connections",
        &other_admin,
        &periskope_connection("Sales", SECRET),
    ))
    .await;
    assert_eq!(res.status(), 201);
}

async fn the_provider_of_a_connection_cannot_change(backend: Backend) {
    let app = spawn_app(backend).await;
    let c = app
        .create_connection(periskope_connection("Sales", SECRET))
        .await;
    let path = format!("/v1/admin/connections/{}", c["id"].as_str().expect("id"));
    let res = send(app.patch(&path, &app.admin_key, &json!({"provider": "wacr"}))).await;
    let err = assert_error(res, 422, "validation_failed").await;
    assert!(err["error"]["details"]["fields"]["provider"].is_array());
    let res = send(app.patch(
        &path,
        &app.admin_key,
        &json!({"provider": "periskope", "name": "Renamed"}),
    ))
    .await;
    assert_eq!(res.status(), 200);
}

async fn lists_page_with_an_opaque_cursor_without_gaps_or_repeats(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut created = HashSet::new();
    for i in 0..5 {
        let c = app
            .create_connection(periskope_connection(&format!("c{i}"), SECRET))
            .await;
        created.insert(c["id"].as_str().expect("id").to_string());
    }
    let mut seen = Vec::new();
    let mut path = "/v1/admin/connections?limit=2".to_string();
    let mut pages = 0;
    loop {
        let page: Value = send(app.get(&path, &app.admin_key))
            .await
            .json()
            .await
            .expect("json");
        pages += 1;
        for c in page["data"].as_array().expect("data") {
            seen.push(c["id"].as_str().expect("id").to_string());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/admin/connections?limit=2&cursor={cursor}"),
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 5);
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), created);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "oldest first");

    let res = send(app.get(
        "/v1/admin/connections?cursor=not%20a%20cursor",
        &app.admin_key,
    ))
    .await;
    let err = assert_error(res, 422, "validation_failed").await;
    assert!(err["error"]["details"]["fields"]["cursor"].is_array());
    let res = send(app.get("/v1/admin/connections?provider=wacr", &app.admin_key)).await;
    let page: Value = res.json().await.expect("json");
    assert_eq!(page["data"], json!([]));
}

/// Every error of a body at once: the field rules and the provider's own (its
/// credentials, its base URL, its page size) together, not one stage at a time.
async fn every_field_error_of_a_body_comes_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let res = send(app.post(
        "/v1/admin/connections",
        &app.admin_key,
        &json!({
            "provider": "wacr", "name": "",
            "credentials": {},
            "settings": {"page_size": 500, "rate_limit_per_second": 0}
        }),
    ))
    .await;
    let err = assert_error(res, 422, "validation_failed").await;
    let fields = err["error"]["details"]["fields"]
        .as_object()
        .expect("fields");
    let mut names: Vec<&str> = fields.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            "base_url",
            "credentials.api_key",
            "name",
            "settings.page_size",
            "settings.rate_limit_per_second"
        ],
        "{err}"
    );
    assert!(
        fields["settings.page_size"][0]
            .as_str()
            .expect("message")
            .contains("at most 100"),
        "{err}"
    );
}

/// A delete racing updates of the same connection is a 204 or a 404, never a 500
/// (on SQLite it wrote from a pooled reader: "database is locked").
async fn deletes_racing_updates_never_fail(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut statuses = Vec::new();
    for round in 0..30 {
        let created = app
            .create_connection(periskope_connection(&format!("Race {round}"), SECRET))
            .await;
        let path = format!(
            "/v1/admin/connections/{}",
            created["id"].as_str().expect("id")
        );
        let (a, b, c) = tokio::join!(
            send(app.patch(
                &path,
                &app.admin_key,
                &json!({"name": format!("Raced {round}")})
            )),
            send(app.delete(&path, &app.admin_key)),
            send(app.patch(
                &path,
                &app.admin_key,
                &json!({"settings": {"cache_ttl_seconds": 5}})
            )),
        );
        statuses.push((
            a.status().as_u16(),
            b.status().as_u16(),
            c.status().as_u16(),
        ));
    }
    for (patch, delete, settings) in &statuses {
        assert!([200, 404].contains(patch), "{statuses:?}");
        assert_eq!(*delete, 204, "{statuses:?}");
        assert!([200, 404].contains(settings), "{statuses:?}");
    }
}

crate::db_tests!(
    deletes_racing_updates_never_fail,
    every_field_error_of_a_body_comes_at_once,
    a_connection_can_be_created_read_listed_updated_and_deleted,
    credentials_never_come_back_in_any_response,
    base_url_defaults_for_periskope_and_is_required_for_wacr_and_gateway,
    each_provider_requires_its_own_credentials_and_refuses_others,
    validation_errors_name_each_bad_field,
    another_orgs_connection_is_404_for_every_method,
    a_duplicate_name_in_one_org_is_409,
    the_provider_of_a_connection_cannot_change,
    lists_page_with_an_opaque_cursor_without_gaps_or_repeats,
);
