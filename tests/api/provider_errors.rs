//! Provider errors that point at their cause: a Gateway session the provider
//! does not know is the connection's fault, not a missing contact; a Periskope
//! contact whose chat could not be read is answered partial, with what was
//! stored; a provider's trace id reaches the error and the run.

use serde_json::{json, Value};
use unicontacts_simulators::Faults;

use crate::helpers::{assert_error, send, spawn_app_with, Backend, Sims, TestApp, SIM_KEY};

async fn app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |s| {
        s.rate_limit_per_second = 100_000;
        s.rate_limit_burst = 100_000;
    })
    .await
}

async fn connection(app: &TestApp, id: &str) -> Value {
    send(app.get(&format!("/v1/admin/connections/{id}"), &app.admin_key))
        .await
        .json()
        .await
        .expect("json")
}

async fn an_unknown_gateway_session_is_the_connections_fault(backend: Backend) {
    let app = app(backend).await;
    let reader = app.reader_key().await;
    let sims = app.connect_sims(291, 30, json!({})).await;
    // A session the Gateway does not have, saved without the check.
    let res = send(app.post(
        "/v1/admin/connections?verify=false",
        &app.admin_key,
        &json!({
            "provider": "gateway", "name": "Old session", "base_url": sims.set.gateway.api_base(),
            "credentials": {"api_key": SIM_KEY, "session": "sess_gone"}
        }),
    ))
    .await;
    assert_eq!(res.status(), 201);
    let gone: Value = res.json().await.expect("json");
    let lid = sims
        .set
        .world
        .gateway_people()
        .next()
        .map(|p| p.lid.clone())
        .expect("a Gateway person");
    let err = assert_error(
        send(app.get(
            &format!("/v1/connections/{}/contacts/{lid}", Sims::id(&gone)),
            &reader,
        ))
        .await,
        502,
        "connection_session_missing",
    )
    .await;
    assert!(
        err["error"]["message"]
            .as_str()
            .expect("message")
            .contains("session"),
        "{err}"
    );
    // The failure is noted in the background: wait for it (bounded).
    let mut health = Value::Null;
    for _ in 0..100 {
        health = connection(&app, &Sims::id(&gone)).await["health"].clone();
        if health == "credentials_refused" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(health, "credentials_refused");

    // A sync records it the same way.
    let run = app.sync_now(&gone).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert!(
        run["error"]
            .as_str()
            .expect("error")
            .contains("the provider has no such session"),
        "{run}"
    );
    let c = connection(&app, &Sims::id(&gone)).await;
    assert_eq!(c["health"], "credentials_refused", "{c}");

    // The right session's missing contact is still a plain 404.
    assert_error(
        send(app.get(
            &format!(
                "/v1/connections/{}/contacts/999999999999999@lid",
                Sims::id(&sims.gateway)
            ),
            &reader,
        ))
        .await,
        404,
        "not_found",
    )
    .await;
    assert_eq!(
        connection(&app, &Sims::id(&sims.gateway)).await["health"],
        "healthy"
    );
}

async fn a_periskope_chat_that_fails_is_answered_partial_with_what_was_stored(backend: Backend) {
    let app = app(backend).await;
    let reader = app.reader_key().await;
    let sims = app.connect_sims(292, 120, json!({})).await;
    let person = sims
        .set
        .world
        .periskope_people()
        .find(|p| p.has_dm)
        .expect("a person with a 1-1 chat");
    let digits = person.phone.clone().expect("phone");
    let contact_id = format!("{digits}@c.us");
    sims.set.periskope.api().with_store(|s| {
        let chat = s.chat_mut(&contact_id).expect("1-1 chat");
        chat["assigned_to"] = json!("first.agent@hashlabs.dev");
        chat["custom_properties"] = json!({"property-tier": "silver"});
    });
    app.sync_now(&sims.periskope).await;
    let path = format!(
        "/v1/connections/{}/contacts/{digits}?fresh=true",
        Sims::id(&sims.periskope)
    );
    let stored: Value = send(app.get(
        &format!(
            "/v1/contacts?connection_id={}&phone=%2B{digits}",
            Sims::id(&sims.periskope)
        ),
        &reader,
    ))
    .await
    .json()
    .await
    .expect("json");
    let stored = &stored["data"][0];
    assert_eq!(stored["assignee"], "first.agent@hashlabs.dev", "{stored}");
    // The agent changes in Periskope, and then the chat read fails.
    sims.set.periskope.api().with_store(|s| {
        s.chat_mut(&contact_id).expect("1-1 chat")["assigned_to"] = json!("new.agent@hashlabs.dev");
    });
    let metric = |text: &str| -> f64 {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(
                    "unicontacts_live_reads_partial_total{part=\"chats\",provider=\"periskope\"} ",
                )
            })
            .map(|v| v.trim().parse().expect("number"))
            .unwrap_or(0.0)
    };
    let before = metric(
        &send(app.client.get(app.url("/metrics")))
            .await
            .text()
            .await
            .expect("text"),
    );
    sims.set.periskope.set_faults(Faults {
        fail_after: Some(1),
        ..Faults::default()
    });
    let res = send(app.get(&path, &reader)).await;
    sims.set.periskope.set_faults(Faults::default());
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers().get("x-partial").and_then(|v| v.to_str().ok()),
        Some("chats")
    );
    let partial: Value = res.json().await.expect("json");
    assert_eq!(
        partial["assignee"], stored["assignee"],
        "the stored chat fields"
    );
    assert_eq!(partial["custom_properties"], stored["custom_properties"]);
    assert_eq!(partial["memberships"], stored["memberships"]);
    assert_eq!(partial["display_name"], stored["display_name"]);
    let after = metric(
        &send(app.client.get(app.url("/metrics")))
            .await
            .text()
            .await
            .expect("text"),
    );
    assert_eq!(after - before, 1.0);

    // Not kept: the next read asks again, and gets it whole.
    let res = send(app.get(
        &format!(
            "/v1/connections/{}/contacts/{digits}",
            Sims::id(&sims.periskope)
        ),
        &reader,
    ))
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers().get("x-cache").and_then(|v| v.to_str().ok()),
        Some("MISS")
    );
    assert!(res.headers().get("x-partial").is_none());
    let whole: Value = res.json().await.expect("json");
    assert_eq!(whole["assignee"], "new.agent@hashlabs.dev");
}

async fn a_providers_trace_id_reaches_the_error_and_the_run(backend: Backend) {
    let app = app(backend).await;
    let reader = app.reader_key().await;
    let sims = app.connect_sims(293, 40, json!({})).await;
    let periskope = Sims::id(&sims.periskope);
    let last_trace = || {
        sims.set
            .periskope
            .requests()
            .last()
            .and_then(|r| r.trace_id.clone())
            .expect("the simulator sends a trace id")
    };
    // A contact Periskope does not have: 404, with Periskope's trace id.
    let err = assert_error(
        send(app.get(
            &format!("/v1/connections/{periskope}/contacts/919999999999"),
            &reader,
        ))
        .await,
        404,
        "not_found",
    )
    .await;
    assert_eq!(
        err["error"]["details"]["upstream_trace_id"],
        last_trace(),
        "{err}"
    );
    // Periskope failing: 502, with the trace id of the last attempt.
    sims.set.periskope.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    let err = assert_error(
        send(app.get(
            &format!("/v1/connections/{periskope}/contacts/919999999998"),
            &reader,
        ))
        .await,
        502,
        "upstream_error",
    )
    .await;
    assert_eq!(
        err["error"]["details"]["upstream_trace_id"],
        last_trace(),
        "{err}"
    );
    // A run that fails says it too.
    let run = app.sync_now(&sims.periskope).await;
    sims.set.periskope.set_faults(Faults::default());
    assert_eq!(run["status"], "failed", "{run}");
    let trace = last_trace();
    assert!(
        run["error"]
            .as_str()
            .expect("error")
            .ends_with(&format!("(upstream trace id {trace})")),
        "{run}"
    );
    // A success carries none.
    let fine = send(app.get(
        &format!(
            "/v1/connections/{}/contacts/{}",
            Sims::id(&sims.wacr),
            999_999
        ),
        &reader,
    ))
    .await;
    let err = assert_error(fine, 404, "not_found").await;
    assert!(
        err["error"]["details"].get("upstream_trace_id").is_none(),
        "WA.cr sends none: {err}"
    );
}

crate::db_tests!(
    an_unknown_gateway_session_is_the_connections_fault,
    a_periskope_chat_that_fails_is_answered_partial_with_what_was_stored,
    a_providers_trace_id_reaches_the_error_and_the_run,
);
