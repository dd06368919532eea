//! The change feed: `GET /v1/events`, written with each change in its own
//! transaction (contacts created, updated, deleted, restored; syncs finished).

use serde_json::{json, Value};
use unicontacts::service::api_keys::Scope;

use crate::helpers::{
    assert_error, assert_relink_changes_nothing, providers_of, send, spawn_app, spawn_app_with,
    Backend, Sims, TestApp,
};

/// Every event after `after` (an event id), following `next_cursor` by pages of `limit`.
pub async fn feed(app: &TestApp, key: &str, query: &str, limit: u32) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/events?limit={limit}&{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let res = send(app.get(&path, key)).await;
        assert_eq!(res.status(), 200, "{path}");
        let page: Value = res.json().await.expect("json");
        out.extend(page["data"].as_array().expect("data").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

pub fn of_type<'a>(events: &'a [Value], t: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == t).collect()
}

pub async fn last_id(app: &TestApp, key: &str) -> String {
    feed(app, key, "", 500)
        .await
        .last()
        .map(|e| e["id"].as_str().expect("id").to_string())
        .unwrap_or_else(|| "evt_0000000000000000".into())
}

async fn every_change_is_an_event_in_the_feed(backend: Backend) {
    let app = spawn_app(backend).await;
    let sims = app
        .connect_sims(
            71,
            30,
            json!({"default_status_id": 1, "default_source_id": 1, "default_kind": "lead"}),
        )
        .await;
    let reader = app.reader_key().await;
    let wacr = Sims::id(&sims.wacr);
    let run = app.sync_now(&sims.wacr).await;
    let created = run["counts"]["created"].as_i64().expect("created") as usize;
    assert!(created > 5);
    let events = feed(&app, &reader, "", 500).await;
    let creates = of_type(&events, "contact.created");
    assert_eq!(creates.len(), created);
    for e in &creates {
        assert_eq!(e["data"]["connection_id"], wacr.as_str());
        assert_eq!(e["data"]["provider"], "wacr");
        assert_eq!(e["data"]["cause"], "sync");
        assert_eq!(e["data"]["run_id"], run["id"]);
        assert!(e["data"]["contact_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("ctc_")));
        assert!(
            e["data"]["person_id"]
                .as_str()
                .is_some_and(|id| id.starts_with("per_")),
            "{e}"
        );
    }
    let finished = of_type(&events, "sync_run.finished");
    assert_eq!(finished.len(), 1);
    assert_eq!(finished[0]["data"]["run_id"], run["id"]);
    assert_eq!(finished[0]["data"]["counts"]["created"], created);
    // Ids are ordered and every event once.
    let ids: Vec<&str> = events.iter().filter_map(|e| e["id"].as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(ids, sorted);

    // An upstream edit: `contact.updated` naming exactly the field.
    let (remote, remote_id) = sims.set.wacr.api().with_store(|s| {
        let c = s.all().next().expect("a contact").clone();
        (c["id"].as_i64().expect("id"), c["id"].to_string())
    });
    sims.set.wacr.api().with_store(|s| {
        s.get_mut(remote).expect("contact")["company"] = json!("Changed Upstream Ltd");
    });
    let mark = last_id(&app, &reader).await;
    app.sync_now(&sims.wacr).await;
    let after = feed(&app, &reader, &format!("after={mark}"), 500).await;
    let updates = of_type(&after, "contact.updated");
    assert_eq!(updates.len(), 1, "{after:?}");
    assert_eq!(updates[0]["data"]["remote_id"], remote_id.as_str());
    assert_eq!(updates[0]["data"]["changed_fields"], json!(["company"]));
    let contact_id = updates[0]["data"]["contact_id"]
        .as_str()
        .expect("id")
        .to_string();

    // Gone upstream, then back.
    let removed = sims
        .set
        .wacr
        .api()
        .with_store(|s| s.remove(remote).expect("contact"));
    let mark = last_id(&app, &reader).await;
    app.sync_now(&sims.wacr).await;
    let after = feed(&app, &reader, &format!("after={mark}"), 500).await;
    let deleted = of_type(&after, "contact.deleted");
    assert_eq!(deleted.len(), 1, "{after:?}");
    assert_eq!(deleted[0]["data"]["contact_id"], contact_id.as_str());
    sims.set.wacr.api().with_store(|s| s.restore(removed));
    let mark = last_id(&app, &reader).await;
    app.sync_now(&sims.wacr).await;
    let after = feed(&app, &reader, &format!("after={mark}"), 500).await;
    let restored = of_type(&after, "contact.restored");
    assert_eq!(restored.len(), 1, "{after:?}");
    assert_eq!(restored[0]["data"]["contact_id"], contact_id.as_str());

    // A write through the API: its request id in the event.
    let writer = app
        .create_key("test-org", &[Scope::ContactsRead, Scope::ContactsWrite])
        .await
        .1;
    let mark = last_id(&app, &reader).await;
    let res = send(app.post(
        &format!("/v1/connections/{wacr}/contacts"),
        &writer,
        &json!({"first_name": "Ev", "last_name": "Ent", "phone": "+91 98111 22371"}),
    ))
    .await;
    assert_eq!(res.status(), 201);
    let request_id = res.headers()["x-request-id"]
        .to_str()
        .expect("id")
        .to_string();
    let made: Value = res.json().await.expect("json");
    let after = feed(
        &app,
        &reader,
        &format!("after={mark}&types=contact.created"),
        500,
    )
    .await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0]["data"]["contact_id"], made["id"]);
    assert_eq!(after[0]["data"]["cause"], "api_write");
    assert_eq!(after[0]["data"]["request_id"], request_id.as_str());

    // A live read that finds a newer copy stores it, and says so.
    sims.set.wacr.api().with_store(|s| {
        s.get_mut(remote).expect("contact")["company"] = json!("Changed Again");
    });
    let mark = last_id(&app, &reader).await;
    let res = send(app.get(
        &format!("/v1/connections/{wacr}/contacts/{remote}?fresh=true"),
        &reader,
    ))
    .await;
    assert_eq!(res.status(), 200);
    let after = feed(&app, &reader, &format!("after={mark}"), 500).await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0]["type"], "contact.updated");
    assert_eq!(after[0]["data"]["cause"], "live_read");
    assert_eq!(after[0]["data"]["changed_fields"], json!(["company"]));
}

async fn the_feed_pages_filters_and_guards(backend: Backend) {
    let app = spawn_app(backend).await;
    let sims = app.connect_sims(72, 20, json!({})).await;
    app.load_all(&sims).await;
    let reader = app.reader_key().await;
    let all = feed(&app, &reader, "", 500).await;
    assert!(all.len() > 20);
    // Small pages give the same events in the same order.
    assert_eq!(feed(&app, &reader, "", 7).await, all);
    // `after` starts after an event.
    let tenth = all[9]["id"].as_str().expect("id");
    assert_eq!(
        feed(&app, &reader, &format!("after={tenth}"), 500).await,
        all[10..].to_vec()
    );
    // By type and by connection.
    let runs = feed(&app, &reader, "types=sync_run.finished", 500).await;
    assert_eq!(runs.len(), 3);
    let gateway = Sims::id(&sims.gateway);
    let of_gateway = feed(&app, &reader, &format!("connection_id={gateway}"), 500).await;
    assert!(!of_gateway.is_empty());
    assert!(of_gateway
        .iter()
        .all(|e| e["data"]["connection_id"] == gateway.as_str()));
    // Bad filters, named together.
    let err = assert_error(
        send(app.get(
            "/v1/events?types=contact.exploded&after=nope&limit=0",
            &reader,
        ))
        .await,
        422,
        "validation_failed",
    )
    .await;
    for f in ["types", "after", "limit"] {
        assert!(
            err["error"]["details"]["fields"][f].is_array(),
            "{f}: {err}"
        );
    }
    // The read scope; another org sees none of it.
    assert_error(
        send(app.get("/v1/events", &app.admin_key)).await,
        403,
        "forbidden",
    )
    .await;
    let (_, other) = app.create_key("other-org", &[Scope::ContactsRead]).await;
    assert!(feed(&app, &other, "", 500).await.is_empty());
}

async fn a_reader_following_the_feed_during_a_sync_sees_every_event_once(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.rate_limit_per_second = 100_000;
        s.rate_limit_burst = 100_000;
    })
    .await;
    let sims = app.connect_sims(73, 1500, json!({"page_size": 50})).await;
    let reader = app.reader_key().await;
    // Three syncs of one org at once: their pages commit interleaved.
    let sync = async {
        let runs = futures_util::future::join_all(
            [&sims.periskope, &sims.wacr, &sims.gateway].map(|c| app.sync_now(c)),
        )
        .await;
        for run in runs {
            assert_eq!(run["status"], "succeeded", "{run}");
        }
    };
    // The reader follows with `after`, as a consumer polling the feed would.
    let follow = async {
        let mut seen: Vec<Value> = Vec::new();
        let mut quiet = 0;
        loop {
            let after = seen
                .last()
                .map(|e| e["id"].as_str().expect("id").to_string())
                .unwrap_or_else(|| "evt_0000000000000000".into());
            let page: Value =
                send(app.get(&format!("/v1/events?limit=100&after={after}"), &reader))
                    .await
                    .json()
                    .await
                    .expect("json");
            let data = page["data"].as_array().expect("data").clone();
            let finished = data
                .iter()
                .filter(|e| e["type"] == "sync_run.finished")
                .count();
            seen.extend(data);
            let runs = seen
                .iter()
                .filter(|e| e["type"] == "sync_run.finished")
                .count();
            if runs == 3 {
                return seen;
            }
            if finished == 0 {
                quiet += 1;
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            assert!(quiet < 20_000, "the feed stalled");
        }
    };
    let ((), seen) = tokio::join!(sync, follow);
    let all = feed(&app, &reader, "", 500).await;
    assert_eq!(
        seen, all,
        "every event once, in order, while the sync wrote"
    );
    let numbers: Vec<u64> = all
        .iter()
        .map(|e| e["id"].as_str().expect("id")[4..].parse().expect("number"))
        .collect();
    assert_eq!(
        numbers,
        (1..=all.len() as u64).collect::<Vec<_>>(),
        "no gaps"
    );
}

/// Every person of the org with the providers of its contacts, page after page.
async fn people_with_providers(
    app: &TestApp,
    key: &str,
) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let mut out = std::collections::BTreeMap::new();
    let mut cursor = String::new();
    loop {
        let page: Value = send(app.get(&format!("/v1/people?limit=200{cursor}"), key))
            .await
            .json()
            .await
            .expect("json");
        for p in page["data"].as_array().expect("data") {
            out.insert(p["id"].as_str().expect("id").to_string(), providers_of(p));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => return out,
        }
    }
}

async fn a_deleted_connection_takes_its_contacts_out_of_people(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.rate_limit_per_second = 10_000;
        s.rate_limit_burst = 10_000;
    })
    .await;
    let sims = app.connect_sims(44, 120, json!({})).await;
    for c in [&sims.periskope, &sims.wacr, &sims.gateway] {
        assert_eq!(app.sync_now(c).await["status"], "succeeded");
    }
    let reader = app.reader_key().await;
    let wacr_contacts: Vec<String> = app
        .stored_contacts(&sims.wacr)
        .await
        .iter()
        .map(|c| c["id"].as_str().expect("id").to_string())
        .collect();
    assert!(wacr_contacts.len() > 30, "{}", wacr_contacts.len());
    let before = people_with_providers(&app, &reader).await;
    let only_wacr: Vec<&String> = before
        .iter()
        .filter(|(_, p)| p.len() == 1 && p.contains("wacr"))
        .map(|(id, _)| id)
        .collect();
    assert!(!only_wacr.is_empty());
    let mark = last_id(&app, &reader).await;

    let res = send(app.delete(
        &format!("/v1/admin/connections/{}", Sims::id(&sims.wacr)),
        &app.admin_key,
    ))
    .await;
    assert_eq!(res.status(), 204);

    // Its contacts are gone, each with its event.
    let after = feed(&app, &reader, &format!("after={mark}"), 500).await;
    let mut deleted: Vec<String> = of_type(&after, "contact.deleted")
        .iter()
        .map(|e| {
            assert_eq!(e["data"]["connection_id"], Sims::id(&sims.wacr).as_str());
            assert_eq!(e["data"]["cause"], "api_write");
            e["data"]["contact_id"].as_str().expect("id").to_string()
        })
        .collect();
    deleted.sort();
    let mut expected = wacr_contacts.clone();
    expected.sort();
    assert_eq!(deleted, expected);
    for id in &wacr_contacts {
        let res = send(app.get(&format!("/v1/contacts/{id}"), &reader)).await;
        assert_eq!(res.status(), 404, "{id}");
    }
    // The people made of them alone are gone (with their events); the others
    // keep their ids and their other contacts.
    let now = people_with_providers(&app, &reader).await;
    let mut gone: Vec<&str> = of_type(&after, "person.deleted")
        .iter()
        .map(|e| e["data"]["person_id"].as_str().expect("id"))
        .collect();
    gone.sort();
    assert_eq!(gone, only_wacr);
    for (id, providers) in &now {
        assert!(!providers.is_empty(), "{id} has no contact");
        assert!(!providers.contains("wacr"), "{id}");
    }
    let split = after.iter().any(|e| e["type"] == "person.split");
    for (id, providers) in &before {
        let rest: std::collections::BTreeSet<String> =
            providers.iter().filter(|p| *p != "wacr").cloned().collect();
        if !rest.is_empty() && !split {
            assert_eq!(now.get(id), Some(&rest), "{id}");
        }
    }
    // What is left is what linking the org from scratch gives.
    assert_relink_changes_nothing(&app, "after the deletion").await;
    // No row of the connection's contacts or their keys is left behind.
    let cid = Sims::id(&sims.wacr);
    let left = app
        .store
        .run(move |conn| {
            use diesel::prelude::*;
            use unicontacts::store::schema::{contact_keys, contacts};
            let contacts: i64 = contacts::table
                .filter(contacts::connection_id.eq(&cid))
                .count()
                .get_result(conn)?;
            let keys: i64 = contact_keys::table
                .filter(contact_keys::contact_id.ne_all(contacts::table.select(contacts::id)))
                .count()
                .get_result(conn)?;
            Ok((contacts, keys))
        })
        .await
        .expect("count");
    assert_eq!(left, (0, 0));
}

crate::db_tests!(
    a_deleted_connection_takes_its_contacts_out_of_people,
    every_change_is_an_event_in_the_feed,
    the_feed_pages_filters_and_guards,
    a_reader_following_the_feed_during_a_sync_sees_every_event_once,
    people_merging_and_splitting_are_events,
);

async fn people_merging_and_splitting_are_events(backend: Backend) {
    let app = spawn_app(backend).await;
    let sims = app.connect_sims(74, 200, json!({})).await;
    for c in [&sims.periskope, &sims.wacr] {
        app.sync_now(c).await;
    }
    let reader = app.reader_key().await;
    let first = feed(&app, &reader, "", 500).await;
    // A first sync makes a person per contact that shares nothing.
    assert!(!of_type(&first, "person.created").is_empty());
    let p = sims
        .set
        .world
        .people
        .iter()
        .find(|p| p.in_periskope && p.in_wacr && !p.in_gateway)
        .expect("a person in Periskope and WA.cr")
        .clone();
    let e164 = p.e164().expect("phone");
    let person_of = |phone: String| {
        let app = &app;
        let reader = reader.clone();
        async move {
            let q: String = url::form_urlencoded::byte_serialize(phone.as_bytes()).collect();
            let page: Value = send(app.get(&format!("/v1/people?phone={q}"), &reader))
                .await
                .json()
                .await
                .expect("json");
            page["data"][0]["id"].as_str().expect("person").to_string()
        }
    };
    let kept = person_of(e164.clone()).await;

    // WA.cr gives them another number: the person splits.
    let (id, old) = sims.set.wacr.api().with_store(|s| {
        let id = s
            .all()
            .find(|c| {
                c["phone"].as_str().is_some_and(|ph| {
                    ph.chars().filter(char::is_ascii_digit).collect::<String>() == e164[1..]
                })
            })
            .and_then(|c| c["id"].as_i64())
            .expect("wacr contact");
        let c = s.get_mut(id).expect("contact");
        let old = c["phone"].clone();
        c["phone"] = json!("+447700900777");
        (id, old)
    });
    let mark = last_id(&app, &reader).await;
    app.sync_now(&sims.wacr).await;
    let after = feed(
        &app,
        &reader,
        &format!("after={mark}&types=person.created,person.split,person.merged,person.deleted"),
        500,
    )
    .await;
    let split_off = person_of("+447700900777".into()).await;
    let types: Vec<&str> = after.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(types, ["person.created", "person.split"], "{after:?}");
    assert_eq!(after[0]["data"]["person_id"], split_off.as_str());
    assert_eq!(after[1]["data"]["person_id"], kept.as_str());
    let mut into = vec![kept.clone(), split_off.clone()];
    into.sort();
    let mut got: Vec<String> = after[1]["data"]["into_person_ids"]
        .as_array()
        .expect("into")
        .iter()
        .map(|v| v.as_str().expect("id").to_string())
        .collect();
    got.sort();
    assert_eq!(got, into);
    assert_eq!(after[1]["data"]["cause"], "sync");

    // And back: merged into the kept person, the other deleted.
    sims.set.wacr.api().with_store(|s| {
        s.get_mut(id).expect("contact")["phone"] = old.clone();
    });
    let mark = last_id(&app, &reader).await;
    app.sync_now(&sims.wacr).await;
    let after = feed(
        &app,
        &reader,
        &format!("after={mark}&types=person.created,person.split,person.merged,person.deleted"),
        500,
    )
    .await;
    let types: Vec<&str> = after.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(types, ["person.merged", "person.deleted"], "{after:?}");
    assert_eq!(after[0]["data"]["person_id"], kept.as_str());
    assert_eq!(after[0]["data"]["merged_person_ids"], json!([split_off]));
    assert_eq!(after[1]["data"]["person_id"], split_off.as_str());
}
