use crate::helpers::{assert_error, send, spawn_app, Backend};

async fn healthz_answers_ok_with_a_request_id(backend: Backend) {
    let app = spawn_app(backend).await;
    let res = send(app.client.get(app.url("/healthz"))).await;
    assert_eq!(res.status(), 200);
    let id = res.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(id.len() >= 20, "{id}");
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["status"], "ok");
}

async fn a_client_request_id_is_echoed_and_a_bad_one_replaced(backend: Backend) {
    let app = spawn_app(backend).await;
    let res = send(
        app.client
            .get(app.url("/healthz"))
            .header("x-request-id", "trace-42.a:b"),
    )
    .await;
    assert_eq!(res.headers()["x-request-id"], "trace-42.a:b");
    // Also on errors.
    let res = send(
        app.client
            .get(app.url("/nowhere"))
            .header("x-request-id", "abc-123"),
    )
    .await;
    assert_eq!(res.headers()["x-request-id"], "abc-123");
    let res = send(
        app.client
            .get(app.url("/healthz"))
            .header("x-request-id", "no spaces <allowed>"),
    )
    .await;
    let id = res.headers()["x-request-id"].to_str().expect("ascii");
    assert_ne!(id, "no spaces <allowed>");
    assert!(!id.is_empty());
}

async fn readyz_is_ready_with_the_database_and_503_without_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let res = send(app.client.get(app.url("/readyz"))).await;
    assert_eq!(res.status(), 200);

    app.db.cut();
    let res = send(app.client.get(app.url("/readyz"))).await;
    let body = assert_error(res, 503, "service_unavailable").await;
    assert!(
        !body.to_string().contains("uc_test_"),
        "no database names leak: {body}"
    );
    // The process itself is still alive.
    assert_eq!(
        send(app.client.get(app.url("/healthz"))).await.status(),
        200
    );
}

async fn api_calls_answer_503_when_the_database_is_gone(backend: Backend) {
    let app = spawn_app(backend.clone()).await;
    app.db.cut();
    if matches!(backend, Backend::Sqlite) {
        // Open SQLite handles keep working on a deleted file; readiness covers that case.
        return;
    }
    let res = send(app.get("/v1/admin/connections", &app.admin_key)).await;
    let res_status = res.status().as_u16();
    assert_eq!(res_status, 503);
    assert!(res.headers().contains_key("retry-after"));
    assert_error(res, 503, "service_unavailable").await;
}

crate::db_tests!(
    healthz_answers_ok_with_a_request_id,
    a_client_request_id_is_echoed_and_a_bad_one_replaced,
    readyz_is_ready_with_the_database_and_503_without_it,
    api_calls_answer_503_when_the_database_is_gone,
);
