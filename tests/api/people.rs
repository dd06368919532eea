//! People: contacts linked across the three simulators by phone and LID.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use unicontacts::service::api_keys::Scope;

use crate::helpers::{
    assert_error, assert_relink_changes_nothing, providers_of, send, spawn_app, spawn_app_with,
    Backend, Sims, TestApp,
};

async fn sync_all(app: &TestApp, sims: &Sims) {
    for c in [&sims.periskope, &sims.wacr, &sims.gateway] {
        let run = app.sync_now(c).await;
        assert_eq!(run["status"], "succeeded", "{run}");
    }
}

async fn people_by_phone(app: &TestApp, key: &str, e164: &str) -> Vec<Value> {
    let phone: String = url::form_urlencoded::byte_serialize(e164.as_bytes()).collect();
    let page: Value = send(app.get(&format!("/v1/people?phone={phone}"), key))
        .await
        .json()
        .await
        .expect("json");
    page["data"].as_array().expect("data").clone()
}

async fn people_merge_across_providers_exactly_as_the_world_says(backend: Backend) {
    // Many lookups in a row: more than the default per-key burst.
    let app = spawn_app_with(backend, |s| {
        s.rate_limit_per_second = 10_000;
        s.rate_limit_burst = 10_000;
    })
    .await;
    let sims = app.connect_sims(61, 160, json!({})).await;
    sync_all(&app, &sims).await;
    let reader = app.reader_key().await;
    let world = &sims.set.world;
    let mut checked = 0;
    for p in world.people.iter().filter(|p| p.phone.is_some()) {
        let expected: BTreeSet<String> = [
            (p.in_periskope, "periskope"),
            (p.in_wacr, "wacr"),
            (p.in_gateway, "gateway"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| name.to_string())
        .collect();
        let found = people_by_phone(&app, &reader, &p.e164().expect("e164")).await;
        assert_eq!(
            found.len(),
            1,
            "one person for {}: {found:?}",
            p.display_name()
        );
        assert_eq!(providers_of(&found[0]), expected, "{}", p.display_name());
        let person = &found[0];
        for c in person["contacts"].as_array().expect("contacts") {
            assert_eq!(
                c["person_id"], person["id"],
                "every contact carries its person_id"
            );
        }
        if p.in_wacr {
            // WA.cr first in the default name precedence.
            assert_eq!(person["display_name"]["value"], p.display_name());
            assert_eq!(
                person["display_name"]["connection_ids"],
                json!([Sims::id(&sims.wacr)])
            );
        }
        let phone_sources = person["phones"][0]["connection_ids"]
            .as_array()
            .expect("sources")
            .len();
        assert_eq!(
            phone_sources,
            expected.len(),
            "the phone came from every connection"
        );
        checked += 1;
    }
    assert!(checked > 100, "{checked}");
    // Every contact has a person; there are as many people as the world has.
    let mut total = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut path = "/v1/people?limit=200".to_string();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page: Value = send(app.get(&path, &reader))
            .await
            .json()
            .await
            .expect("json");
        total += page["data"].as_array().expect("data").len();
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(total, world.people.len());
}

async fn a_lid_links_a_periskope_contact_to_a_gateway_only_person(backend: Backend) {
    let app = spawn_app(backend).await;
    let sims = app.connect_sims(62, 200, json!({})).await;
    let hidden = sims
        .set
        .world
        .people
        .iter()
        .find(|p| p.phone.is_none())
        .expect("a LID-only person")
        .clone();
    // Periskope knows them under another number, with their LID.
    sims.set.periskope.api().with_store(|s| {
        s.upsert(json!({"contact_id": "447700900555@c.us", "contact_name": "Unknown number", "contact_lid": hidden.lid}))
    });
    sync_all(&app, &sims).await;
    let reader = app.reader_key().await;
    let found = people_by_phone(&app, &reader, "+447700900555").await;
    assert_eq!(found.len(), 1);
    assert_eq!(
        providers_of(&found[0]),
        ["gateway", "periskope"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    assert_eq!(found[0]["wa_lids"][0]["value"], hidden.lid.as_str());
}

async fn a_person_splits_when_a_phone_changes_and_keeps_its_id(backend: Backend) {
    let app = spawn_app(backend).await;
    let sims = app.connect_sims(63, 200, json!({})).await;
    sync_all(&app, &sims).await;
    let reader = app.reader_key().await;
    let p = sims
        .set
        .world
        .people
        .iter()
        .find(|p| p.in_periskope && p.in_wacr && !p.in_gateway)
        .expect("a person in Periskope and WA.cr")
        .clone();
    let e164 = p.e164().expect("phone");
    let before = people_by_phone(&app, &reader, &e164).await;
    let person_id = before[0]["id"].as_str().expect("id").to_string();
    assert_eq!(providers_of(&before[0]).len(), 2);

    // WA.cr now has another number for them.
    let old_phone = sims.set.wacr.api().with_store(|s| {
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
    app.sync_now(&sims.wacr).await;
    let after: Value = send(app.get(&format!("/v1/people/{person_id}"), &reader))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        providers_of(&after),
        ["periskope".to_string()].into(),
        "the older contact keeps the person"
    );
    let moved = people_by_phone(&app, &reader, "+447700900777").await;
    assert_eq!(providers_of(&moved[0]), ["wacr".to_string()].into());
    assert_ne!(moved[0]["id"], person_id.as_str());

    // And back: one person again, under the same id.
    sims.set.wacr.api().with_store(|s| {
        s.get_mut(old_phone.0).expect("contact")["phone"] = old_phone.1.clone();
    });
    app.sync_now(&sims.wacr).await;
    let rejoined: Value = send(app.get(&format!("/v1/people/{person_id}"), &reader))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(providers_of(&rejoined).len(), 2);
    assert!(
        people_by_phone(&app, &reader, "+447700900777")
            .await
            .is_empty(),
        "the split-off person is gone"
    );
}

/// A switchboard number: an identifier more live contacts share than
/// `max_contacts_per_identifier` links none of them; back under the limit, it
/// links them again. The incremental linking of each sync page agrees with a
/// whole-org relink every time.
async fn an_overshared_number_links_nobody(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.max_contacts_per_identifier = 3).await;
    let sims = app.connect_sims(64, 40, json!({})).await;
    sync_all(&app, &sims).await;
    let reader = app.reader_key().await;
    let switchboard = "+442079460000";
    // Four WA.cr contacts now give the company's number.
    let changed: Vec<(i64, Value)> = sims.set.wacr.api().with_store(|s| {
        let mut ids: Vec<i64> = s.all().filter_map(|c| c["id"].as_i64()).collect();
        ids.sort_unstable();
        ids.truncate(4);
        ids.iter()
            .map(|id| {
                let c = s.get_mut(*id).expect("contact");
                let old = c["phone"].clone();
                c["phone"] = json!("+44 20 7946 0000");
                (*id, old)
            })
            .collect()
    });
    app.sync_now(&sims.wacr).await;
    assert_relink_changes_nothing(&app, "four share the number").await;
    let people = people_by_phone(&app, &reader, switchboard).await;
    assert_eq!(
        people.len(),
        4,
        "four strangers, not one person: {people:?}"
    );
    for p in &people {
        assert_eq!(p["contacts"].as_array().expect("contacts").len(), 1, "{p}");
    }
    // Reported to an admin, and to no one else.
    let overshared = |key: String| {
        let app = &app;
        async move {
            let res = send(app.get("/v1/admin/identity/overshared", &key)).await;
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.expect("json"))
        }
    };
    let (status, page) = overshared(app.admin_key.clone()).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        page,
        json!({"data": [{"id": "phone_442079460000", "kind": "phone",
                         "value": switchboard, "count": 4}], "next_cursor": null})
    );
    assert_eq!(overshared(reader.clone()).await.0, 403);
    let (_, stranger) = app.create_key("other-org", &[Scope::Admin]).await;
    assert_eq!(overshared(stranger).await.1["data"], json!([]));

    // One gives their own number back: three share it, which links them.
    sims.set.wacr.api().with_store(|s| {
        let (id, old) = &changed[0];
        s.get_mut(*id).expect("contact")["phone"] = old.clone();
    });
    app.sync_now(&sims.wacr).await;
    assert_relink_changes_nothing(&app, "three share the number").await;
    let people = people_by_phone(&app, &reader, switchboard).await;
    assert_eq!(people.len(), 1, "{people:?}");
    assert_eq!(overshared(app.admin_key.clone()).await.1["data"], json!([]));
    assert_eq!(people[0]["contacts"].as_array().expect("contacts").len(), 3);

    // Four again; then one of them is deleted upstream: the three left link.
    sims.set.wacr.api().with_store(|s| {
        s.get_mut(changed[0].0).expect("contact")["phone"] = json!("+44 20 7946 0000");
    });
    app.sync_now(&sims.wacr).await;
    assert_eq!(people_by_phone(&app, &reader, switchboard).await.len(), 4);
    sims.set.wacr.api().with_store(|s| s.remove(changed[1].0));
    let run = app.sync_now(&sims.wacr).await;
    assert_eq!(run["counts"]["deleted"], 1, "{run}");
    assert_relink_changes_nothing(&app, "one of four deleted").await;
    let people = people_by_phone(&app, &reader, switchboard).await;
    assert_eq!(people.len(), 1, "{people:?}");
    assert_eq!(people[0]["contacts"].as_array().expect("contacts").len(), 3);
}

/// A lower `max_contacts_per_identifier` takes effect on the people a later
/// change touches; a relink (what `unicontacts relink` runs) applies it to the
/// whole org at once, with the people's events.
async fn a_relink_applies_a_lowered_limit_to_the_whole_org(backend: Backend) {
    let app = spawn_app(backend).await;
    let sims = app.connect_sims(65, 40, json!({})).await;
    let switchboard = "+442079460000";
    sims.set.wacr.api().with_store(|s| {
        let mut ids: Vec<i64> = s.all().filter_map(|c| c["id"].as_i64()).collect();
        ids.sort_unstable();
        for id in ids.into_iter().take(4) {
            s.get_mut(id).expect("contact")["phone"] = json!("+44 20 7946 0000");
        }
    });
    sync_all(&app, &sims).await;
    let reader = app.reader_key().await;
    let people = people_by_phone(&app, &reader, switchboard).await;
    assert_eq!(people.len(), 1, "under the default limit: one person");
    let before = crate::events::last_id(&app, &reader).await;

    // The same database under a limit of 3, as after a restart with the setting.
    let lowered = app.store.clone().with_max_per_identifier(3);
    let done = unicontacts::service::people::relink(&lowered, Some("test-org"))
        .await
        .expect("relink");
    assert_eq!(done.len(), 1);
    let counts = &done[0].1;
    assert_eq!(
        (counts.contacts_moved, counts.people_created),
        (3, 3),
        "{counts:?}"
    );
    let people = people_by_phone(&app, &reader, switchboard).await;
    assert_eq!(people.len(), 4, "{people:?}");
    let after = crate::events::feed(&app, &reader, &format!("after={before}"), 500).await;
    let types: Vec<&str> = after.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(
        types.iter().filter(|t| **t == "person.created").count(),
        3,
        "{types:?}"
    );
    assert_eq!(
        types.iter().filter(|t| **t == "person.split").count(),
        1,
        "{types:?}"
    );
    assert_eq!(after[0]["data"]["cause"], "relink");
    // Again: nothing left to do.
    let again = unicontacts::service::people::relink(&lowered, None)
        .await
        .expect("relink");
    assert_eq!(again[0].1.contacts_moved, 0);
    // An org that does not exist is named.
    let err = unicontacts::service::people::relink(&lowered, Some("nobody"))
        .await
        .expect_err("no such org");
    assert_eq!(err.details["org"], "nobody");
}

async fn people_are_per_org_and_bad_filters_are_422(backend: Backend) {
    let app = spawn_app(backend).await;
    let sims = app.connect_sims(64, 40, json!({})).await;
    app.sync_now(&sims.periskope).await;
    let reader = app.reader_key().await;
    let page: Value = send(app.get("/v1/people?limit=1", &reader))
        .await
        .json()
        .await
        .expect("json");
    let id = page["data"][0]["id"].as_str().expect("id").to_string();
    let (_, stranger) = app.create_key("other-org", &[Scope::ContactsRead]).await;
    assert_error(
        send(app.get(&format!("/v1/people/{id}"), &stranger)).await,
        404,
        "not_found",
    )
    .await;
    assert_error(
        send(app.get("/v1/people/per_nope", &reader)).await,
        404,
        "not_found",
    )
    .await;
    let err = assert_error(
        send(app.get("/v1/people?phone=nope", &reader)).await,
        422,
        "validation_failed",
    )
    .await;
    assert!(err["error"]["details"]["fields"]["phone"].is_array());
    let name = page["data"][0]["display_name"]["value"]
        .as_str()
        .map(str::to_lowercase);
    if let Some(name) = name {
        let q: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
        let found: Value = send(app.get(&format!("/v1/people?q={q}"), &reader))
            .await
            .json()
            .await
            .expect("json");
        assert!(found["data"]
            .as_array()
            .expect("data")
            .iter()
            .any(|p| p["id"] == id.as_str()));
    }
}

async fn incremental_linking_matches_a_whole_org_relink(backend: Backend) {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    let app = spawn_app(backend).await;
    let sims = app.connect_sims(65, 160, json!({})).await;
    sync_all(&app, &sims).await;
    assert_relink_changes_nothing(&app, "first sync").await;
    let (periskope, wacr, gateway) = (
        sims.set.periskope.api(),
        sims.set.wacr.api(),
        sims.set.gateway.api(),
    );
    let mut rng = StdRng::seed_from_u64(65);
    let mut removed: Vec<Value> = Vec::new();
    for round in 0..6 {
        let phones: Vec<String> = periskope.with_store(|s| {
            s.all()
                .iter()
                .filter_map(|c| c["contact_id"].as_str()?.strip_suffix("@c.us"))
                .map(str::to_string)
                .collect()
        });
        let lids: Vec<String> = gateway.with_store(|s| {
            s.all()
                .filter_map(|d| d["identity"]["lid"].as_str().map(str::to_string))
                .collect()
        });
        for _ in 0..4 {
            let phone = phones[rng.gen_range(0..phones.len())].clone();
            let other = phones[rng.gen_range(0..phones.len())].clone();
            let lid = lids[rng.gen_range(0..lids.len())].clone();
            match rng.gen_range(0..6) {
                // Periskope learns a LID: may join two people.
                0 => periskope.with_store(|s| {
                    if let Some(mut c) = s.get(&phone).cloned() {
                        c["contact_lid"] = json!(lid);
                        s.upsert(c);
                    }
                }),
                // A Periskope contact goes, or one that went comes back.
                1 => match removed.pop() {
                    Some(c) if rng.gen_bool(0.5) => periskope.with_store(|s| s.upsert(c)),
                    back => {
                        removed.extend(back);
                        removed.extend(periskope.with_store(|s| s.remove(&phone)));
                    }
                },
                // WA.cr moves a contact to another person's number, or to a new one.
                2 | 3 => wacr.with_store(|s| {
                    let ids: Vec<i64> = s.all().filter_map(|c| c["id"].as_i64()).collect();
                    let id = ids[rng.gen_range(0..ids.len())];
                    let to = if rng.gen_bool(0.5) {
                        format!("+{other}")
                    } else {
                        format!("+4477009{:05}", rng.gen_range(0..100_000))
                    };
                    s.get_mut(id).expect("contact")["phone"] = json!(to);
                }),
                // The Gateway sees a LID with another phone, or loses it.
                4 => gateway.with_store(|s| {
                    if let Some(d) = s.get_mut(&lid) {
                        d["identity"]["phoneNumber"] = json!(other);
                        d["identity"]["updatedAt"] = json!(1_800_000_000_000_i64 + round);
                    }
                }),
                _ => gateway.with_store(|s| {
                    s.remove(&lid);
                }),
            }
        }
        sync_all(&app, &sims).await;
        assert_relink_changes_nothing(&app, &format!("round {round}")).await;
    }
}

crate::db_tests!(
    people_merge_across_providers_exactly_as_the_world_says,
    a_lid_links_a_periskope_contact_to_a_gateway_only_person,
    a_person_splits_when_a_phone_changes_and_keeps_its_id,
    people_are_per_org_and_bad_filters_are_422,
    incremental_linking_matches_a_whole_org_relink,
    an_overshared_number_links_nobody,
    a_relink_applies_a_lowered_limit_to_the_whole_org,
);
