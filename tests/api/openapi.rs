use serde_json::Value;

use crate::helpers::{send, spawn_app, Backend};

/// Every route the app serves (besides the docs themselves).
const ROUTES: [(&str, &str); 54] = [
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("post", "/v1/admin/connections"),
    ("get", "/v1/admin/connections"),
    ("get", "/v1/admin/connections/{id}"),
    ("patch", "/v1/admin/connections/{id}"),
    ("delete", "/v1/admin/connections/{id}"),
    ("post", "/v1/admin/api-keys"),
    ("get", "/v1/admin/api-keys"),
    ("delete", "/v1/admin/api-keys/{id}"),
    ("get", "/v1/admin/audit-events"),
    ("get", "/v1/admin/identity/overshared"),
    ("get", "/v1/admin/identity/blocked-values"),
    ("post", "/v1/admin/identity/blocked-values"),
    ("delete", "/v1/admin/identity/blocked-values/{id}"),
    ("get", "/v1/admin/identity-operations/{id}"),
    ("post", "/v1/admin/identity-operations/{id}/undo"),
    ("post", "/v1/people/{id}/merge"),
    ("post", "/v1/people/{id}/split"),
    ("get", "/v1/people/{id}/history"),
    ("post", "/v1/people/{id}/erase"),
    ("get", "/v1/admin/suppressions"),
    ("delete", "/v1/admin/suppressions/{id}"),
    ("post", "/v1/admin/connections/{id}/sync"),
    ("get", "/v1/admin/sync-runs"),
    ("get", "/v1/admin/sync-runs/{id}"),
    ("post", "/v1/admin/sync-runs/{id}/cancel"),
    ("post", "/v1/admin/connections/{id}/pause-sync"),
    ("post", "/v1/admin/connections/{id}/resume-sync"),
    ("get", "/v1/people"),
    ("get", "/v1/providers"),
    ("get", "/v1/events"),
    ("post", "/v1/admin/webhooks"),
    ("get", "/v1/admin/webhooks"),
    ("get", "/v1/admin/webhooks/{id}"),
    ("patch", "/v1/admin/webhooks/{id}"),
    ("delete", "/v1/admin/webhooks/{id}"),
    ("post", "/v1/admin/webhooks/{id}/rotate-secret"),
    ("get", "/v1/admin/webhooks/{id}/deliveries"),
    (
        "post",
        "/v1/admin/webhooks/{id}/deliveries/{delivery_id}/replay",
    ),
    ("post", "/v1/admin/webhooks/{id}/recover"),
    ("get", "/v1/admin/sync-runs/{id}/held-deletions"),
    ("post", "/v1/admin/sync-runs/{id}/held-deletions/apply"),
    ("post", "/v1/admin/sync-runs/{id}/held-deletions/discard"),
    ("get", "/v1/people/{id}"),
    ("get", "/v1/contacts"),
    ("get", "/v1/contacts/{id}"),
    ("patch", "/v1/contacts/{id}"),
    ("delete", "/v1/contacts/{id}"),
    ("post", "/v1/connections/{connection_id}/contacts"),
    ("post", "/v1/connections/{connection_id}/contacts/batch"),
    (
        "post",
        "/v1/connections/{connection_id}/contacts/batch-delete",
    ),
    (
        "get",
        "/v1/connections/{connection_id}/contacts/{remote_id}",
    ),
];

async fn the_openapi_document_is_3_1_and_describes_every_route(backend: Backend) {
    let app = spawn_app(backend).await;
    let res = send(app.client.get(app.url("/openapi.json"))).await;
    assert_eq!(res.status(), 200);
    let spec: Value = res.json().await.expect("json");
    assert!(spec["openapi"]
        .as_str()
        .expect("version")
        .starts_with("3.1"));

    let paths = spec["paths"].as_object().expect("paths");
    let mut documented = 0;
    for (_, ops) in paths {
        documented += ops.as_object().expect("ops").len();
    }
    assert_eq!(
        documented,
        ROUTES.len(),
        "no undocumented or phantom operations"
    );
    for (method, path) in ROUTES {
        let op = &spec["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is not in the spec");
        let responses = op["responses"].as_object().expect("responses");
        for (status, response) in responses {
            let schema = &response["content"]["application/json"]["schema"]["$ref"];
            if status.starts_with('4') || status.starts_with('5') {
                assert_eq!(
                    schema, "#/components/schemas/ErrorBody",
                    "{method} {path} {status}"
                );
            }
        }
        if path.starts_with("/v1/") {
            for status in ["401", "403", "429"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} documents {status}"
                );
            }
            assert!(
                op["security"].is_array(),
                "{method} {path} declares bearer auth"
            );
        }
        // The actions that take no body: a sync, a secret's rotation, a replay,
        // pausing and resuming syncs, cancelling a run, applying or discarding
        // its held deletions.
        let bodiless = [
            "/sync",
            "/rotate-secret",
            "/replay",
            "/pause-sync",
            "/resume-sync",
            "/cancel",
            "/held-deletions/apply",
            "/held-deletions/discard",
        ]
        .iter()
        .any(|end| path.ends_with(end));
        if (method == "post" || method == "patch") && !bodiless {
            assert!(op["requestBody"].is_object(), "{method} {path} has a body");
            for status in ["400", "413", "415", "422"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} documents {status}"
                );
            }
        }
    }
    let schemas = spec["components"]["schemas"].as_object().expect("schemas");
    for name in [
        "ErrorBody",
        "CreateConnectionRequest",
        "ConnectionView",
        "CreatedApiKey",
        "Page_ConnectionView",
        "RunStatus",
        "Trigger",
    ] {
        assert!(schemas.contains_key(name), "schema {name}");
    }
    // Every list documents its paging as the server enforces it.
    for (path, max) in [
        ("/v1/contacts", 500),
        ("/v1/people", 200),
        ("/v1/admin/connections", 500),
        ("/v1/admin/api-keys", 500),
        ("/v1/admin/sync-runs", 500),
    ] {
        let params = spec["paths"][path]["get"]["parameters"]
            .as_array()
            .expect("parameters");
        let limit = params.iter().find(|p| p["name"] == "limit").expect("limit");
        assert_eq!(limit["schema"]["minimum"], 1, "{path}");
        assert_eq!(limit["schema"]["maximum"], max, "{path}");
        let data = &schemas[spec["paths"][path]["get"]["responses"]["200"]["content"]
            ["application/json"]["schema"]["$ref"]
            .as_str()
            .and_then(|r| r.rsplit('/').next())
            .expect("a page schema")]["properties"];
        assert!(
            data["data"].is_object() && data["next_cursor"].is_object(),
            "{path}"
        );
    }
    // Run states are the server's own values.
    assert_eq!(
        schemas["RunStatus"]["enum"],
        serde_json::json!([
            "running",
            "succeeded",
            "failed",
            "partial",
            "cancelled",
            "held"
        ])
    );
    assert_eq!(
        schemas["Trigger"]["enum"],
        serde_json::json!(["schedule", "api", "cli", "demo"])
    );
    assert_eq!(
        spec["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

async fn the_docs_page_works_offline(backend: Backend) {
    let app = spawn_app(backend).await;
    let res = send(app.client.get(app.url("/docs"))).await;
    assert!(res.status().is_redirection());
    let res = send(app.client.get(app.url("/docs/"))).await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.expect("html");
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(
        !html.contains("https://"),
        "the page loads nothing from the network: {html}"
    );
    for asset in [
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "swagger-initializer.js",
    ] {
        let res = send(app.client.get(app.url(&format!("/docs/{asset}")))).await;
        assert_eq!(res.status(), 200, "{asset} is served from the binary");
        let body = res.text().await.expect("asset");
        assert!(body.len() > 100, "{asset}");
        if asset == "swagger-initializer.js" {
            assert!(body.contains("/openapi.json"), "{body}");
        }
    }
}

crate::db_tests!(
    the_openapi_document_is_3_1_and_describes_every_route,
    the_docs_page_works_offline,
);
