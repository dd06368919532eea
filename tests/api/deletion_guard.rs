//! The deletion guard: a listing that lost its contacts (empty, truncated, or a
//! provider that pages wrongly) never wipes the store. The run holds the
//! deletions, tells nobody they happened, and an operator reviews, applies or
//! discards them; later runs release or keep holding them, never apply them.

use serde_json::{json, Value};
use unicontacts_simulators::Listing;

use crate::events::{feed, of_type};
use crate::helpers::{assert_error, send, spawn_app, Backend, Sims, TestApp};

fn count(run: &Value, what: &str) -> i64 {
    run["counts"][what]
        .as_i64()
        .unwrap_or_else(|| panic!("{what}: {run}"))
}

fn run_id(run: &Value) -> String {
    run["id"].as_str().expect("run id").to_string()
}

async fn connection(app: &TestApp, c: &Value) -> Value {
    let res = send(app.get(
        &format!("/v1/admin/connections/{}", Sims::id(c)),
        &app.admin_key,
    ))
    .await;
    assert_eq!(res.status(), 200);
    res.json().await.expect("json")
}

/// The remote ids of the connection's live contacts in the store.
async fn live_remote_ids(app: &TestApp, reader: &str, c: &Value) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/contacts?connection_id={}&limit=500", Sims::id(c));
        if let Some(cur) = &cursor {
            path.push_str(&format!("&cursor={cur}"));
        }
        let page: Value = send(app.get(&path, reader))
            .await
            .json()
            .await
            .expect("json");
        ids.extend(
            page["data"]
                .as_array()
                .expect("data")
                .iter()
                .map(|c| c["remote_id"].as_str().expect("remote id").to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return ids,
        }
    }
}

/// Every contact a run holds, read page by page (`limit` each).
async fn held(app: &TestApp, run: &str, limit: u32) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/admin/sync-runs/{run}/held-deletions?limit={limit}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let res = send(app.get(&path, &app.admin_key)).await;
        assert_eq!(res.status(), 200, "{path}");
        let page: Value = res.json().await.expect("json");
        out.extend(page["data"].as_array().expect("data").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

async fn hold_action(app: &TestApp, run: &str, action: &str) -> reqwest::Response {
    send(app.post(
        &format!("/v1/admin/sync-runs/{run}/held-deletions/{action}"),
        &app.admin_key,
        &json!({}),
    ))
    .await
}

/// The `unicontacts_sync_deletions_held` figure of a provider.
async fn held_metric(app: &TestApp, provider: &str) -> i64 {
    let text = send(app.client.get(app.url("/metrics")))
        .await
        .text()
        .await
        .expect("text");
    let prefix = format!("unicontacts_sync_deletions_held{{provider=\"{provider}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in the metrics"))
        .trim()
        .parse()
        .expect("a number")
}

async fn an_empty_listing_holds_every_deletion_and_tells_nobody(backend: Backend) {
    let app = spawn_app(backend).await;
    let reader = app.reader_key().await;
    let sims = app.connect_sims(281, 60, json!({})).await;
    let first = app.sync_now(&sims.periskope).await;
    let n = count(&first, "created");
    assert!(n > 10, "{first}");
    let before = live_remote_ids(&app, &reader, &sims.periskope).await;
    let after_first = feed(&app, &reader, "", 500).await.len();

    sims.set
        .periskope
        .api()
        .with_store(|s| s.listing = Listing::Empty);
    let run = app.sync_now(&sims.periskope).await;
    assert_eq!(run["status"], "held", "{run}");
    assert_eq!(count(&run, "deleted"), 0, "{run}");
    assert_eq!(count(&run, "deletions_held"), n, "{run}");
    assert_eq!(
        run["error"],
        format!("the listing showed 0 of {n} live contacts; {n} deletions held for review"),
    );
    // Nothing deleted in the store, no `contact.deleted` anywhere, one
    // `sync_run.held` naming the run, its connection and the count.
    assert_eq!(
        live_remote_ids(&app, &reader, &sims.periskope).await,
        before
    );
    let events = feed(&app, &reader, "", 500).await;
    let new = &events[after_first..];
    assert!(of_type(new, "contact.deleted").is_empty(), "{new:?}");
    let held_events = of_type(new, "sync_run.held");
    assert_eq!(held_events.len(), 1, "{new:?}");
    assert_eq!(held_events[0]["data"]["run_id"], run["id"]);
    assert_eq!(
        held_events[0]["data"]["connection_id"],
        sims.periskope["id"]
    );
    assert_eq!(held_events[0]["data"]["count"], n);
    let finished = of_type(new, "sync_run.finished");
    assert_eq!(finished[0]["data"]["status"], "held");
    assert_eq!(finished[0]["data"]["counts"]["deletions_held"], n);

    // The connection says so, and is degraded meanwhile.
    let c = connection(&app, &sims.periskope).await;
    assert_eq!(c["health"], "degraded", "{c}");
    assert_eq!(c["held_deletions"]["run_id"], run["id"], "{c}");
    assert_eq!(c["held_deletions"]["count"], n);
    assert!(c["held_deletions"]["since"].is_string());
    let degraded: Value = send(app.get("/v1/admin/connections?health=degraded", &app.admin_key))
        .await
        .json()
        .await
        .expect("json");
    let ids: Vec<&Value> = degraded["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|c| &c["id"])
        .collect();
    assert_eq!(ids, vec![&sims.periskope["id"]]);
    let healthy: Value = send(app.get("/v1/admin/connections?health=healthy", &app.admin_key))
        .await
        .json()
        .await
        .expect("json");
    assert!(!healthy["data"]
        .as_array()
        .expect("data")
        .iter()
        .any(|c| c["id"] == sims.periskope["id"]));
    assert_eq!(held_metric(&app, "periskope").await, n);
    assert_eq!(held_metric(&app, "wacr").await, 0);

    // Every held contact can be reviewed, page by page, as canonical contacts.
    let items = held(&app, &run_id(&run), 7).await;
    assert_eq!(items.len() as i64, n);
    let mut remote: Vec<String> = items
        .iter()
        .map(|c| c["remote_id"].as_str().expect("remote id").to_string())
        .collect();
    remote.sort();
    let mut expected = before.clone();
    expected.sort();
    assert_eq!(remote, expected);
    assert!(items.iter().all(|c| c["remote_was_deleted"] == false));
    assert!(items.iter().all(|c| c["provider"] == "periskope"));

    // The provider recovers: the next run sees them all again and releases them.
    sims.set
        .periskope
        .api()
        .with_store(|s| s.listing = Listing::Complete);
    let next = app.sync_now(&sims.periskope).await;
    assert_eq!(next["status"], "succeeded", "{next}");
    assert_eq!(
        (count(&next, "deleted"), count(&next, "deletions_held")),
        (0, 0)
    );
    assert_eq!(count(&next, "unchanged"), n, "nothing came back as updated");
    let c = connection(&app, &sims.periskope).await;
    assert_eq!(c["health"], "healthy", "{c}");
    assert!(c["held_deletions"].is_null(), "{c}");
    assert_eq!(held_metric(&app, "periskope").await, 0);
    assert!(held(&app, &run_id(&run), 50).await.is_empty());
    let refused = assert_error(
        hold_action(&app, &run_id(&run), "apply").await,
        409,
        "conflict",
    )
    .await;
    assert_eq!(
        refused["error"]["details"]["state"], "released",
        "{refused}"
    );
    assert!(
        refused["error"]["message"]
            .as_str()
            .expect("message")
            .contains(&run_id(&next)),
        "names the run that released it: {refused}"
    );
    let events = feed(&app, &reader, "types=contact.deleted", 500).await;
    assert!(events.is_empty(), "{events:?}");
}

async fn a_truncated_listing_is_held_until_an_operator_applies_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let reader = app.reader_key().await;
    let sims = app.connect_sims(282, 90, json!({"page_size": 10})).await;
    let first = app.sync_now(&sims.wacr).await;
    let n = count(&first, "created");
    assert!(n > 20, "{first}");
    sims.set
        .wacr
        .api()
        .with_store(|s| s.listing = Listing::Truncated { keep: 3 });
    let run = app.sync_now(&sims.wacr).await;
    assert_eq!(run["status"], "held", "{run}");
    assert_eq!(count(&run, "deletions_held"), n - 3);
    assert_eq!(
        run["error"],
        format!(
            "the listing showed 3 of {n} live contacts; {} deletions held for review",
            n - 3
        )
    );
    assert_eq!(
        live_remote_ids(&app, &reader, &sims.wacr).await.len() as i64,
        n
    );
    let marker = feed(&app, &reader, "", 500).await.len();

    let res = hold_action(&app, &run_id(&run), "apply").await;
    assert_eq!(res.status(), 200);
    let applied: Value = res.json().await.expect("json");
    assert_eq!(applied["state"], "applied");
    assert_eq!(applied["count"], n - 3);
    assert_eq!(applied["run_id"], run["id"]);
    assert_eq!(live_remote_ids(&app, &reader, &sims.wacr).await.len(), 3);
    let events = feed(&app, &reader, "", 500).await;
    let deleted = of_type(&events[marker..], "contact.deleted");
    assert_eq!(deleted.len() as i64, n - 3);
    assert!(deleted.iter().all(|e| e["data"]["run_id"] == run["id"]));
    assert!(deleted.iter().all(|e| e["data"]["cause"] == "api_write"));
    let c = connection(&app, &sims.wacr).await;
    assert!(c["held_deletions"].is_null(), "{c}");
    assert_eq!(c["health"], "healthy");

    // Once: a second apply, or a discard now, names what happened first.
    for action in ["apply", "discard"] {
        let refused = assert_error(
            hold_action(&app, &run_id(&run), action).await,
            409,
            "conflict",
        )
        .await;
        assert_eq!(refused["error"]["details"]["state"], "applied", "{refused}");
        assert!(
            refused["error"]["message"]
                .as_str()
                .expect("message")
                .contains("applied"),
            "{refused}"
        );
    }
    // Audited, by the key that did it.
    let audit: Value = send(app.get(
        "/v1/admin/audit-events?action=sync.held_deletions.apply",
        &app.admin_key,
    ))
    .await
    .json()
    .await
    .expect("json");
    let statuses: Vec<&Value> = audit["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|e| &e["status"])
        .collect();
    assert_eq!(statuses, vec![&json!(409), &json!(200)], "{audit}");

    // A run that holds nothing, another org's run, an unknown run.
    let clean = app.sync_now(&sims.wacr).await;
    assert_eq!(clean["status"], "succeeded", "{clean}");
    let refused = assert_error(
        hold_action(&app, &run_id(&clean), "apply").await,
        409,
        "conflict",
    )
    .await;
    assert!(refused["error"]["details"]["state"].is_null(), "{refused}");
    let (_, stranger) = app
        .create_key(
            "another-org",
            &[unicontacts::service::api_keys::Scope::Admin],
        )
        .await;
    for path in [
        format!("/v1/admin/sync-runs/{}/held-deletions", run_id(&run)),
        "/v1/admin/sync-runs/run_00000000000000000000000000/held-deletions".to_string(),
    ] {
        assert_error(send(app.get(&path, &stranger)).await, 404, "not_found").await;
    }
    assert_error(
        send(app.post(
            &format!("/v1/admin/sync-runs/{}/held-deletions/apply", run_id(&run)),
            &stranger,
            &json!({}),
        ))
        .await,
        404,
        "not_found",
    )
    .await;
}

async fn discarding_deletes_nothing_and_a_run_still_lacking_them_holds_again(backend: Backend) {
    let app = spawn_app(backend).await;
    let reader = app.reader_key().await;
    let sims = app.connect_sims(283, 80, json!({})).await;
    let n = count(&app.sync_now(&sims.gateway).await, "created");
    assert!(n > 10);
    sims.set
        .gateway
        .api()
        .with_store(|s| s.listing = Listing::Truncated { keep: 2 });
    let first = app.sync_now(&sims.gateway).await;
    assert_eq!(first["status"], "held", "{first}");
    let res = hold_action(&app, &run_id(&first), "discard").await;
    assert_eq!(res.status(), 200);
    let discarded: Value = res.json().await.expect("json");
    assert_eq!(discarded["state"], "discarded");
    assert_eq!(discarded["count"], n - 2);
    assert_eq!(
        live_remote_ids(&app, &reader, &sims.gateway).await.len() as i64,
        n
    );
    assert!(connection(&app, &sims.gateway).await["held_deletions"].is_null());
    let refused = assert_error(
        hold_action(&app, &run_id(&first), "discard").await,
        409,
        "conflict",
    )
    .await;
    assert_eq!(refused["error"]["details"]["state"], "discarded");

    // Still lacking them: held again, never deleted by a run.
    let second = app.sync_now(&sims.gateway).await;
    assert_eq!(second["status"], "held", "{second}");
    assert_eq!(count(&second, "deletions_held"), n - 2);
    // And again: the hold moves to the newer run, from the same start.
    let since = connection(&app, &sims.gateway).await["held_deletions"]["since"].clone();
    let third = app.sync_now(&sims.gateway).await;
    assert_eq!(third["status"], "held", "{third}");
    assert_eq!(count(&third, "deleted"), 0);
    let c = connection(&app, &sims.gateway).await;
    assert_eq!(c["held_deletions"]["run_id"], third["id"], "{c}");
    assert_eq!(c["held_deletions"]["since"], since, "{c}");
    assert!(held(&app, &run_id(&second), 50).await.is_empty());
    assert_eq!(held(&app, &run_id(&third), 50).await.len() as i64, n - 2);
    let refused = assert_error(
        hold_action(&app, &run_id(&second), "apply").await,
        409,
        "conflict",
    )
    .await;
    assert_eq!(refused["error"]["details"]["state"], "superseded");
    assert!(refused["error"]["message"]
        .as_str()
        .expect("message")
        .contains(&run_id(&third)));
    assert_eq!(
        live_remote_ids(&app, &reader, &sims.gateway).await.len() as i64,
        n
    );
    let deleted = feed(&app, &reader, "types=contact.deleted", 500).await;
    assert!(deleted.is_empty(), "{deleted:?}");

    // Some come back: those are let go, the rest stay held (and are not
    // deleted, though few enough now to pass the guard).
    sims.set.gateway.api().with_store(|s| {
        s.listing = Listing::Truncated {
            keep: n as usize - 3,
        }
    });
    let fourth = app.sync_now(&sims.gateway).await;
    assert_eq!(fourth["status"], "held", "{fourth}");
    assert_eq!(count(&fourth, "deletions_held"), 3);
    assert_eq!(count(&fourth, "deleted"), 0);
    assert!(
        fourth["error"]
            .as_str()
            .expect("error")
            .starts_with("3 deletions held for review are still missing from the listing"),
        "{fourth}"
    );
    // One more goes missing, too few for the guard: that one is deleted, the
    // held three are not.
    sims.set.gateway.api().with_store(|s| {
        s.listing = Listing::Truncated {
            keep: n as usize - 4,
        }
    });
    let fifth = app.sync_now(&sims.gateway).await;
    assert_eq!(fifth["status"], "held", "{fifth}");
    assert_eq!(
        (count(&fifth, "deleted"), count(&fifth, "deletions_held")),
        (1, 3),
        "{fifth}"
    );
    assert_eq!(
        live_remote_ids(&app, &reader, &sims.gateway).await.len() as i64,
        n - 1
    );
    let res = hold_action(&app, &run_id(&fifth), "apply").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.expect("json")["count"], 3);
    assert_eq!(
        live_remote_ids(&app, &reader, &sims.gateway).await.len() as i64,
        n - 4
    );
}

async fn the_guard_follows_the_connection_settings(backend: Backend) {
    let app = spawn_app(backend).await;
    let sims = app.connect_sims(284, 40, json!({})).await;
    let c = connection(&app, &sims.wacr).await;
    assert_eq!(c["settings"]["deletion_guard_percent"], 10, "{c}");
    assert_eq!(c["settings"]["deletion_guard_min"], 5, "{c}");
    let bad = assert_error(
        send(app.patch(
            &format!("/v1/admin/connections/{}", Sims::id(&sims.wacr)),
            &app.admin_key,
            &json!({"settings": {"deletion_guard_percent": 101, "deletion_guard_min": -1}}),
        ))
        .await,
        422,
        "validation_failed",
    )
    .await;
    let fields = &bad["error"]["details"]["fields"];
    assert!(
        fields["settings.deletion_guard_percent"].is_array(),
        "{bad}"
    );
    assert!(fields["settings.deletion_guard_min"].is_array(), "{bad}");

    let n = count(&app.sync_now(&sims.wacr).await, "created");
    // Four are over 10 % of them, and nine leave some.
    assert!(n > 9 && 4 * 100 > 10 * n, "{n}");
    let remove = |k: usize| {
        sims.set.wacr.api().with_store(|s| {
            let ids: Vec<i64> = s.all().take(k).filter_map(|c| c["id"].as_i64()).collect();
            for id in ids {
                s.remove(id);
            }
        })
    };
    // Below the minimum: deleted at once, whatever the share.
    remove(4);
    let run = app.sync_now(&sims.wacr).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(count(&run, "deleted"), 4);
    // The minimum, and over 10 %: held.
    remove(5);
    let run = app.sync_now(&sims.wacr).await;
    assert_eq!(run["status"], "held", "{run}");
    assert_eq!(count(&run, "deletions_held"), 5);
    hold_action(&app, &run_id(&run), "discard").await;
    // A higher share lets them through (5 of the 13 left).
    let res = send(app.patch(
        &format!("/v1/admin/connections/{}", Sims::id(&sims.wacr)),
        &app.admin_key,
        &json!({"settings": {"deletion_guard_percent": 90}}),
    ))
    .await;
    assert_eq!(res.status(), 200);
    let run = app.sync_now(&sims.wacr).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(count(&run, "deleted"), 5);
    // 100 turns the guard off, an empty listing included.
    send(app.patch(
        &format!("/v1/admin/connections/{}", Sims::id(&sims.wacr)),
        &app.admin_key,
        &json!({"settings": {"deletion_guard_percent": 100}}),
    ))
    .await;
    sims.set
        .wacr
        .api()
        .with_store(|s| s.listing = Listing::Empty);
    let run = app.sync_now(&sims.wacr).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(count(&run, "deleted"), n - 9);
}

async fn a_per_page_count_or_an_empty_page_midway_never_loses_contacts(backend: Backend) {
    let app = spawn_app(backend).await;
    let reader = app.reader_key().await;
    let sims = app.connect_sims(285, 120, json!({"page_size": 15})).await;
    let n = count(&app.sync_now(&sims.periskope).await, "created");
    assert!(n > 45, "several pages: {n}");
    // `count` is the page's length: paging goes on to the short page.
    sims.set
        .periskope
        .api()
        .with_store(|s| s.listing = Listing::CountIsPage);
    sims.set.periskope.clear_requests();
    let run = app.sync_now(&sims.periskope).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!((count(&run, "unchanged"), count(&run, "deleted")), (n, 0));
    let pages = sims
        .set
        .periskope
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/contacts")
        .count() as i64;
    assert_eq!(pages, n / 15 + 1, "every page, to the short one");

    // WA.cr's `meta` says more pages than `data` gives: the listing ended early.
    let m = count(&app.sync_now(&sims.wacr).await, "created");
    assert!(m > 30, "{m}");
    sims.set
        .wacr
        .api()
        .with_store(|s| s.listing = Listing::EmptyAfterFirstPage);
    let run = app.sync_now(&sims.wacr).await;
    assert_eq!(run["status"], "failed", "{run}");
    let error = run["error"].as_str().expect("error");
    assert!(
        error.starts_with("the listing ended early at page 2, so nothing was marked deleted")
            && error.contains("meta.last_page"),
        "{error}"
    );
    assert_eq!(count(&run, "deleted"), 0);
    assert_eq!(
        live_remote_ids(&app, &reader, &sims.wacr).await.len() as i64,
        m
    );
}

crate::db_tests!(
    an_empty_listing_holds_every_deletion_and_tells_nobody,
    a_truncated_listing_is_held_until_an_operator_applies_it,
    discarding_deletes_nothing_and_a_run_still_lacking_them_holds_again,
    the_guard_follows_the_connection_settings,
    a_per_page_count_or_an_empty_page_midway_never_loses_contacts,
);
