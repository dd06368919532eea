//! Identity control against the simulators: merge, split and undo that
//! survive syncs, live reads and relinks; dry runs that write nothing; blocked
//! identifier values.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};
use unicontacts::service::api_keys::Scope;

use crate::events::{feed, of_type};
use crate::helpers::{
    assert_error, assert_relink_changes_nothing, send, spawn_app_with, Backend, Sims, TestApp,
};

/// Every person of the org and its contacts' ids.
async fn grouping(app: &TestApp) -> BTreeMap<String, BTreeSet<String>> {
    all_people(app)
        .await
        .iter()
        .map(|p| (p["id"].as_str().expect("id").to_string(), contact_ids(p)))
        .collect()
}

fn contact_ids(person: &Value) -> BTreeSet<String> {
    person["contacts"]
        .as_array()
        .expect("contacts")
        .iter()
        .map(|c| c["id"].as_str().expect("id").to_string())
        .collect()
}

/// Rows of each table identity control reads or writes.
async fn row_counts(app: &TestApp) -> Vec<(&'static str, i64)> {
    app.store
        .run(|conn| {
            use diesel::prelude::*;
            #[derive(QueryableByName)]
            struct N {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                n: i64,
            }
            let mut out = Vec::new();
            for table in [
                "people",
                "contacts",
                "events",
                "identity_operations",
                "identity_operation_contacts",
                "identity_bonds",
                "merged_people",
                "blocked_identifiers",
            ] {
                let n: N = diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
                    .get_result(conn)?;
                out.push((table, n.n));
            }
            Ok(out)
        })
        .await
        .expect("counts")
}

async fn sync_all(app: &TestApp, sims: &Sims) {
    for c in [&sims.periskope, &sims.wacr, &sims.gateway] {
        let run = app.sync_now(c).await;
        assert_eq!(run["status"], "succeeded", "{run}");
    }
}

async fn app_with_people(backend: Backend, seed: u64) -> (TestApp, Sims) {
    let app = spawn_app_with(backend, |s| {
        s.rate_limit_per_second = 10_000;
        s.rate_limit_burst = 10_000;
    })
    .await;
    let mut app = app;
    // One key for the admin routes and the reads (`contacts:read`) alike.
    app.admin_key = app
        .create_key(
            "test-org",
            &[Scope::Admin, Scope::ContactsRead, Scope::ContactsWrite],
        )
        .await
        .1;
    let sims = app.connect_sims(seed, 30, json!({})).await;
    sync_all(&app, &sims).await;
    (app, sims)
}

async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let res = send(app.post(path, &app.admin_key, &body)).await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Two people with one contact each, of different connections.
fn two_singles(g: &BTreeMap<String, BTreeSet<String>>) -> (String, String) {
    let singles: Vec<&String> = g
        .iter()
        .filter(|(_, c)| c.len() == 1)
        .map(|(p, _)| p)
        .collect();
    (singles[0].clone(), singles[1].clone())
}

/// A live read of one of the person's contacts, through its connection.
async fn live_read(app: &TestApp, person: &str) {
    let view: Value = send(app.get(&format!("/v1/people/{person}"), &app.admin_key))
        .await
        .json()
        .await
        .expect("json");
    let c = &view["contacts"][0];
    let remote: String =
        url::form_urlencoded::byte_serialize(c["remote_id"].as_str().expect("remote").as_bytes())
            .collect();
    let path = format!(
        "/v1/connections/{}/contacts/{}?fresh=true",
        c["connection_id"].as_str().expect("connection"),
        remote.replace('+', "%20")
    );
    let res = send(app.get(&path, &app.admin_key)).await;
    assert_eq!(
        res.status(),
        200,
        "{}",
        res.text().await.unwrap_or_default()
    );
}

async fn a_merge_survives_syncs_and_live_reads_and_its_undo_restores_the_ids(backend: Backend) {
    let (app, sims) = app_with_people(backend, 71).await;
    let before = grouping(&app).await;
    let (a, b) = two_singles(&before);
    let both: BTreeSet<String> = before[&a].union(&before[&b]).cloned().collect();

    // A dry run answers the merged person and writes nothing.
    let counts = row_counts(&app).await;
    let (status, view) = post(
        &app,
        &format!("/v1/people/{a}/merge"),
        json!({"person_id": b, "reason": "same customer", "dry_run": true}),
    )
    .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["id"], a.as_str());
    assert_eq!(contact_ids(&view), both);
    assert!(view.get("operation_id").is_none(), "{view}");
    assert_eq!(row_counts(&app).await, counts, "a dry run wrote");
    assert_eq!(grouping(&app).await, before);

    let (status, view) = post(
        &app,
        &format!("/v1/people/{a}/merge"),
        json!({"person_id": b, "reason": "same customer"}),
    )
    .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(contact_ids(&view), both);
    let op = view["operation_id"]
        .as_str()
        .expect("operation id")
        .to_string();
    assert!(op.starts_with("idop_"), "{op}");
    let gone = assert_error(
        send(app.get(&format!("/v1/people/{b}"), &app.admin_key)).await,
        404,
        "not_found",
    )
    .await;
    assert_eq!(gone["error"]["details"]["merged_into"], a.as_str());
    let events = feed(&app, &app.admin_key, "types=person.merged", 500).await;
    let merged = of_type(&events, "person.merged");
    let last = merged.last().expect("a person.merged");
    assert_eq!(last["data"]["person_id"], a.as_str(), "{last}");
    assert_eq!(last["data"]["merged_person_ids"], json!([b]));
    assert_eq!(last["data"]["cause"], "manual");
    assert_eq!(last["data"]["operation_id"], op.as_str());

    // Two syncs, a live read of each side and a whole-org relink change nothing.
    sync_all(&app, &sims).await;
    sync_all(&app, &sims).await;
    live_read(&app, &a).await;
    assert_relink_changes_nothing(&app, "after a merge").await;
    let mut expected = before.clone();
    expected.remove(&b);
    expected.insert(a.clone(), both.clone());
    assert_eq!(grouping(&app).await, expected, "the merge held");

    // The history names it, with who and why.
    let history: Value = send(app.get(&format!("/v1/people/{a}/history"), &app.admin_key))
        .await
        .json()
        .await
        .expect("json");
    let entry = history["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|e| e["id"] == op.as_str())
        .expect("the merge in the history")
        .clone();
    assert_eq!(entry["kind"], "merge");
    assert_eq!(entry["operation"]["reason"], "same customer");
    assert!(
        entry["operation"]["api_key_id"].as_str().is_some(),
        "{entry}"
    );
    assert!(
        entry["operation"]["request_id"].as_str().is_some(),
        "{entry}"
    );

    // Undone: both people as they were, ids included.
    let (status, undo) = post(
        &app,
        &format!("/v1/admin/identity-operations/{op}/undo"),
        json!({"reason": "not the same after all"}),
    )
    .await;
    assert_eq!(status, 200, "{undo}");
    assert_eq!(undo["kind"], "undo");
    assert_eq!(undo["subject_id"], op.as_str());
    assert_eq!(grouping(&app).await, before, "the undo restored the people");
    assert_relink_changes_nothing(&app, "after the undo").await;
    sync_all(&app, &sims).await;
    assert_eq!(grouping(&app).await, before, "and a sync keeps them");
    let undone = feed(&app, &app.admin_key, "types=identity_operation.undone", 500).await;
    assert_eq!(undone.len(), 1, "{undone:?}");
    assert_eq!(undone[0]["data"]["undone_operation_id"], op.as_str());
    let again = assert_error(
        send(app.post(
            &format!("/v1/admin/identity-operations/{op}/undo"),
            &app.admin_key,
            &json!({}),
        ))
        .await,
        409,
        "conflict",
    )
    .await;
    assert_eq!(again["error"]["details"]["undone_by"], undo["id"]);
}

async fn a_split_survives_syncs_and_its_undo_restores_the_person(backend: Backend) {
    let (app, sims) = app_with_people(backend, 72).await;
    let before = grouping(&app).await;
    let (person, contacts) = before
        .iter()
        .find(|(_, c)| c.len() >= 2)
        .map(|(p, c)| (p.clone(), c.clone()))
        .expect("a person linked across providers");
    let moved = contacts.iter().next().expect("one").clone();

    let counts = row_counts(&app).await;
    let (status, view) = post(
        &app,
        &format!("/v1/people/{person}/split"),
        json!({"contact_ids": [moved], "reason": "a colleague's phone", "dry_run": true}),
    )
    .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(contact_ids(&view), BTreeSet::from([moved.clone()]));
    assert_eq!(row_counts(&app).await, counts, "a dry run wrote");

    let (status, view) = post(
        &app,
        &format!("/v1/people/{person}/split"),
        json!({"contact_ids": [moved], "reason": "a colleague's phone"}),
    )
    .await;
    assert_eq!(status, 201, "{view}");
    let new_person = view["id"].as_str().expect("id").to_string();
    assert_ne!(new_person, person);
    assert_eq!(contact_ids(&view), BTreeSet::from([moved.clone()]));
    let op = view["operation_id"]
        .as_str()
        .expect("operation")
        .to_string();
    let mut expected = before.clone();
    expected.get_mut(&person).expect("person").remove(&moved);
    expected.insert(new_person.clone(), BTreeSet::from([moved.clone()]));
    assert_eq!(grouping(&app).await, expected);

    // The identifiers they share do not join them again.
    sync_all(&app, &sims).await;
    live_read(&app, &new_person).await;
    live_read(&app, &person).await;
    sync_all(&app, &sims).await;
    assert_relink_changes_nothing(&app, "after a split").await;
    assert_eq!(grouping(&app).await, expected, "the split held");

    // Bad requests: every problem named.
    let (status, err) = post(
        &app,
        &format!("/v1/people/{person}/split"),
        json!({"contact_ids": contacts.iter().collect::<Vec<_>>(), "reason": "x"}),
    )
    .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{err}"
    );
    let (status, err) = post(
        &app,
        &format!("/v1/people/{person}/split"),
        json!({"contact_ids": [], "reason": ""}),
    )
    .await;
    assert_eq!(status, 422, "{err}");
    let fields = &err["error"]["details"]["fields"];
    assert!(
        fields["contact_ids"].is_array() && fields["reason"].is_array(),
        "{err}"
    );

    let (status, _) = post(
        &app,
        &format!("/v1/admin/identity-operations/{op}/undo"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(grouping(&app).await, before, "the undo restored the person");
    assert_relink_changes_nothing(&app, "after the split's undo").await;
}

async fn an_undo_that_later_operations_build_on_is_refused_naming_them(backend: Backend) {
    let (app, _sims) = app_with_people(backend, 73).await;
    let before = grouping(&app).await;
    let (a, b) = two_singles(&before);
    let (_, merged) = post(
        &app,
        &format!("/v1/people/{a}/merge"),
        json!({"person_id": b, "reason": "one"}),
    )
    .await;
    let merge = merged["operation_id"].as_str().expect("merge").to_string();
    let moved = before[&b].iter().next().expect("b's contact").clone();
    let (status, split) = post(
        &app,
        &format!("/v1/people/{a}/split"),
        json!({"contact_ids": [moved], "reason": "two after all"}),
    )
    .await;
    assert_eq!(status, 201, "{split}");
    let split_op = split["operation_id"].as_str().expect("split").to_string();
    let refused = assert_error(
        send(app.post(
            &format!("/v1/admin/identity-operations/{merge}/undo"),
            &app.admin_key,
            &json!({}),
        ))
        .await,
        409,
        "conflict",
    )
    .await;
    assert_eq!(refused["error"]["details"]["operations"], json!([split_op]));
    assert!(
        refused["error"]["message"]
            .as_str()
            .expect("message")
            .contains(&split_op),
        "{refused}"
    );
    // In reverse order, both undo, and everything is as before.
    for op in [&split_op, &merge] {
        let (status, body) = post(
            &app,
            &format!("/v1/admin/identity-operations/{op}/undo"),
            json!({}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(grouping(&app).await, before);
    // Another org's operation is not found.
    let (_, stranger) = app.create_key("other-org", &[Scope::Admin]).await;
    let res = send(app.post(
        &format!("/v1/admin/identity-operations/{merge}/undo"),
        &stranger,
        &json!({}),
    ))
    .await;
    assert_error(res, 404, "not_found").await;
    let res = send(app.post(
        &format!("/v1/people/{a}/merge"),
        &stranger,
        &json!({"person_id": b, "reason": "x"}),
    ))
    .await;
    assert_error(res, 404, "not_found").await;
}

async fn by_phone(app: &TestApp, e164: &str) -> Vec<Value> {
    let phone: String = url::form_urlencoded::byte_serialize(e164.as_bytes()).collect();
    let page: Value = send(app.get(&format!("/v1/people?phone={phone}"), &app.admin_key))
        .await
        .json()
        .await
        .expect("json");
    page["data"].as_array().expect("data").clone()
}

async fn a_blocked_switchboard_number_unlinks_its_strangers_at_once(backend: Backend) {
    let (app, sims) = app_with_people(backend, 74).await;
    // Three WA.cr contacts give the company's number: one person.
    sims.set.wacr.api().with_store(|s| {
        let mut ids: Vec<i64> = s.all().filter_map(|c| c["id"].as_i64()).collect();
        ids.sort_unstable();
        for id in ids.into_iter().take(3) {
            s.get_mut(id).expect("contact")["phone"] = json!("+44 20 7946 0000");
        }
    });
    app.sync_now(&sims.wacr).await;
    let linked = by_phone(&app, "+442079460000").await;
    assert_eq!(linked.len(), 1, "{linked:?}");
    let glued = contact_ids(&linked[0]);
    assert!(glued.len() >= 3, "{glued:?}");
    let before = grouping(&app).await;

    let (status, blocked) = post(
        &app,
        "/v1/admin/identity/blocked-values",
        json!({"kind": "phone", "value": "442079460000@c.us", "reason": "switchboard"}),
    )
    .await;
    assert_eq!(status, 201, "{blocked}");
    assert_eq!(blocked["value"], "+442079460000");
    let people = by_phone(&app, "+442079460000").await;
    assert_eq!(people.len(), glued.len(), "each stranger alone: {people:?}");
    assert_relink_changes_nothing(&app, "after a block").await;
    app.sync_now(&sims.wacr).await;
    assert_eq!(
        by_phone(&app, "+442079460000").await.len(),
        glued.len(),
        "a sync keeps them apart"
    );
    let splits = feed(&app, &app.admin_key, "types=person.split", 500).await;
    assert!(
        splits.iter().any(|e| e["data"]["cause"] == "manual"),
        "{splits:?}"
    );
    // Blocked twice: 409; listed; lifted: linked again at once.
    let (status, _) = post(
        &app,
        "/v1/admin/identity/blocked-values",
        json!({"kind": "phone", "value": "+44 20 7946 0000", "reason": "again"}),
    )
    .await;
    assert_eq!(status, 409);
    let list: Value = send(app.get("/v1/admin/identity/blocked-values", &app.admin_key))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(list["data"].as_array().expect("data").len(), 1, "{list}");
    let id = blocked["id"].as_str().expect("id");
    let res = send(app.delete(
        &format!("/v1/admin/identity/blocked-values/{id}"),
        &app.admin_key,
    ))
    .await;
    assert_eq!(res.status(), 204);
    assert_eq!(
        by_phone(&app, "+442079460000").await.len(),
        1,
        "linked again"
    );
    assert_eq!(
        grouping(&app).await,
        before,
        "as before the block, ids included"
    );
    assert_relink_changes_nothing(&app, "after the block was lifted").await;
    // A value that is no phone.
    let (status, err) = post(
        &app,
        "/v1/admin/identity/blocked-values",
        json!({"kind": "phone", "value": "not a number", "reason": "x"}),
    )
    .await;
    assert_eq!(status, 422, "{err}");
    assert!(
        err["error"]["details"]["fields"]["value"].is_array(),
        "{err}"
    );
}

async fn an_erasure_at_the_providers_reports_each_contact(backend: Backend) {
    let (app, sims) = app_with_people(backend, 76).await;
    let people = all_people(&app).await;
    let providers = |p: &Value| -> BTreeSet<String> {
        p["contacts"]
            .as_array()
            .expect("contacts")
            .iter()
            .map(|c| c["provider"].as_str().expect("provider").to_string())
            .collect()
    };
    // A person at WA.cr (which deletes) and at Periskope (which cannot).
    let person = people
        .iter()
        .find(|p| {
            let at = providers(p);
            at.contains("wacr") && at.contains("periskope")
        })
        .expect("a person at WA.cr and Periskope")
        .clone();
    let wacr_remote: i64 = person["contacts"]
        .as_array()
        .expect("contacts")
        .iter()
        .find(|c| c["provider"] == "wacr")
        .and_then(|c| c["remote_id"].as_str())
        .expect("wacr id")
        .parse()
        .expect("integer id");
    let id = person["id"].as_str().expect("id");
    let (status, erased) = post(
        &app,
        &format!("/v1/people/{id}/erase"),
        json!({"reason": "forget me", "at_providers": true}),
    )
    .await;
    assert_eq!(status, 200, "{erased}");
    for c in erased["contacts"].as_array().expect("contacts") {
        let expected = match c["provider"].as_str() {
            Some("wacr") => "deleted",
            _ => "unsupported",
        };
        assert_eq!(c["at_provider"], expected, "{c}");
    }
    let gone = sims
        .set
        .wacr
        .api()
        .with_store(|s| s.all().all(|c| c["id"].as_i64() != Some(wacr_remote)));
    assert!(gone, "WA.cr no longer holds the contact");
}

crate::db_tests!(
    a_merge_survives_syncs_and_live_reads_and_its_undo_restores_the_ids,
    a_split_survives_syncs_and_its_undo_restores_the_person,
    an_undo_that_later_operations_build_on_is_refused_naming_them,
    a_blocked_switchboard_number_unlinks_its_strangers_at_once,
    an_erased_person_leaves_no_row_and_does_not_come_back,
    an_erasure_at_the_providers_reports_each_contact,
);

/// Every person's view.
async fn all_people(app: &TestApp) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = "/v1/people?limit=200".to_string();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page: Value = send(app.get(&path, &app.admin_key))
            .await
            .json()
            .await
            .expect("json");
        out.extend(page["data"].as_array().expect("data").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

/// Each `(table, column)` of the database holding `needle` anywhere in its text.
async fn rows_holding(app: &TestApp, needle: &str) -> Vec<(String, String)> {
    let needle = needle.to_string();
    app.store
        .run(move |conn| {
            use diesel::prelude::*;
            use unicontacts::store::DbConnection;
            #[derive(QueryableByName)]
            struct Name {
                #[diesel(sql_type = diesel::sql_types::Text)]
                name: String,
            }
            #[derive(QueryableByName)]
            struct N {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                n: i64,
            }
            let postgres = matches!(conn, DbConnection::Postgresql(_));
            let tables: Vec<Name> = diesel::sql_query(if postgres {
                "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
            } else {
                "SELECT name FROM sqlite_master WHERE type = 'table'"
            })
            .load(conn)?;
            let mut out = Vec::new();
            for table in tables {
                let columns: Vec<Name> = diesel::sql_query(if postgres {
                    format!("SELECT column_name AS name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = '{}'", table.name)
                } else {
                    format!("SELECT name FROM pragma_table_info('{}')", table.name)
                })
                .load(conn)?;
                for column in columns {
                    let n: N = diesel::sql_query(format!(
                        "SELECT COUNT(*) AS n FROM \"{}\" WHERE CAST(\"{}\" AS TEXT) LIKE $1",
                        table.name, column.name
                    ))
                    .bind::<diesel::sql_types::Text, _>(format!("%{needle}%"))
                    .get_result(conn)?;
                    if n.n > 0 {
                        out.push((table.name.clone(), column.name));
                    }
                }
            }
            Ok(out)
        })
        .await
        .expect("scan")
}

/// What identifies a person in text: its name, its phones as each provider
/// wrote them and in E.164 digits, its LIDs.
fn needles_of(person: &Value) -> Vec<String> {
    let mut out: BTreeSet<String> = BTreeSet::new();
    if let Some(name) = person["display_name"]["value"].as_str() {
        out.insert(name.to_string());
    }
    for p in person["phones"].as_array().expect("phones") {
        if let Some(e164) = p["value"]["e164"].as_str() {
            out.insert(e164.trim_start_matches('+').to_string());
        }
    }
    for c in person["contacts"].as_array().expect("contacts") {
        for p in c["phones"].as_array().into_iter().flatten() {
            if let Some(raw) = p["raw"].as_str() {
                out.insert(raw.to_string());
            }
        }
    }
    for l in person["wa_lids"].as_array().expect("lids") {
        let lid = l["value"].as_str().expect("lid");
        out.insert(lid.trim_end_matches("@lid").to_string());
    }
    out.into_iter().collect()
}

async fn an_erased_person_leaves_no_row_and_does_not_come_back(backend: Backend) {
    let (app, sims) = app_with_people(backend, 75).await;
    let people = all_people(&app).await;
    let name_count = |name: &str| {
        people
            .iter()
            .filter(|p| p["display_name"]["value"].as_str() == Some(name))
            .count()
    };
    // A person of two providers or more, with a phone, a name no one else has.
    let person = people
        .iter()
        .find(|p| {
            p["contacts"].as_array().expect("contacts").len() >= 2
                && !p["phones"].as_array().expect("phones").is_empty()
                && p["display_name"]["value"]
                    .as_str()
                    .is_some_and(|n| name_count(n) == 1)
        })
        .expect("a linked person")
        .clone();
    let id = person["id"].as_str().expect("id").to_string();
    let e164 = person["phones"][0]["value"]["e164"]
        .as_str()
        .expect("e164")
        .to_string();
    let needles = needles_of(&person);
    for needle in &needles {
        assert!(
            !rows_holding(&app, needle).await.is_empty(),
            "the scan finds {needle} before the erasure"
        );
    }

    let (status, erased) = post(
        &app,
        &format!("/v1/people/{id}/erase"),
        json!({"reason": "the customer asked to be forgotten"}),
    )
    .await;
    assert_eq!(status, 200, "{erased}");
    let suppression = erased["suppression_id"]
        .as_str()
        .expect("suppression")
        .to_string();
    let erased_ids: BTreeSet<String> = erased["contacts"]
        .as_array()
        .expect("contacts")
        .iter()
        .map(|c| c["contact_id"].as_str().expect("id").to_string())
        .collect();
    assert!(contact_ids(&person).is_subset(&erased_ids), "{erased}");
    assert!(erased["contacts"]
        .as_array()
        .expect("contacts")
        .iter()
        .all(|c| c["at_provider"] == "not_asked"));
    for needle in &needles {
        assert_eq!(
            rows_holding(&app, needle).await,
            Vec::<(String, String)>::new(),
            "no row holds {needle} after the erasure"
        );
    }
    assert_error(
        send(app.get(&format!("/v1/people/{id}"), &app.admin_key)).await,
        404,
        "not_found",
    )
    .await;
    let events = feed(
        &app,
        &app.admin_key,
        "types=person.erased,contact.erased",
        500,
    )
    .await;
    assert_eq!(of_type(&events, "person.erased").len(), 1, "{events:?}");
    assert_eq!(of_type(&events, "contact.erased").len(), erased_ids.len());

    // Syncs find the person at every provider and store nothing of it.
    let mut suppressed = 0;
    for c in [&sims.periskope, &sims.wacr, &sims.gateway] {
        let run = app.sync_now(c).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        suppressed += run["counts"]["suppressed"].as_i64().expect("suppressed");
    }
    assert!(
        suppressed >= 2,
        "the runs skipped its contacts: {suppressed}"
    );
    for needle in &needles {
        assert_eq!(
            rows_holding(&app, needle).await,
            Vec::<(String, String)>::new(),
            "a sync stored {needle} again"
        );
    }
    assert!(by_phone(&app, &e164).await.is_empty());
    // A create through the API is refused before it reaches the provider.
    let created = send(app.post(
        &format!("/v1/connections/{}/contacts", Sims::id(&sims.periskope)),
        &app.admin_key,
        &json!({"display_name": "Someone", "phone": e164}),
    ))
    .await;
    assert_error(created, 409, "suppressed").await;
    // Nor may an update give another contact the phone.
    let other = all_people(&app)
        .await
        .into_iter()
        .flat_map(|p| p["contacts"].as_array().cloned().unwrap_or_default())
        .find(|c| c["provider"] == "wacr")
        .expect("a WA.cr contact");
    let before_update = sims.set.wacr.requests().len();
    let updated = send(app.patch(
        &format!("/v1/contacts/{}", other["id"].as_str().expect("id")),
        &app.admin_key,
        &json!({"phone": e164}),
    ))
    .await;
    assert_error(updated, 409, "suppressed").await;
    assert_eq!(
        sims.set.wacr.requests().len(),
        before_update,
        "nothing reached the provider"
    );

    // Listed without its values; lifted, the next sync brings it back as new.
    let list: Value = send(app.get("/v1/admin/suppressions", &app.admin_key))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(list["data"][0]["id"], suppression.as_str(), "{list}");
    assert!(list["data"][0]["kinds"]
        .as_array()
        .expect("kinds")
        .contains(&json!("phone")));
    let text = list.to_string();
    assert!(needles.iter().all(|n| !text.contains(n.as_str())), "{text}");
    let res = send(app.delete(
        &format!("/v1/admin/suppressions/{suppression}"),
        &app.admin_key,
    ))
    .await;
    assert_eq!(res.status(), 204);
    sync_all(&app, &sims).await;
    let back = by_phone(&app, &e164).await;
    assert_eq!(back.len(), 1, "{back:?}");
    assert!(
        contact_ids(&back[0]).is_disjoint(&erased_ids),
        "new contacts"
    );
}
