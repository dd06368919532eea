//! Periskope's chats in the canonical contact: a sync lists every chat and gives
//! each contact its groups (name, role), its 1-1 chat, the chat's assignee,
//! custom properties and labels; live reads read the 1-1 chat and keep the
//! groups' names the sync stored; the person view merges a group seen at two
//! providers into one membership.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use unicontacts_simulators::periskope::ORG_PHONE;

use crate::helpers::{send, spawn_app_with, Backend, Sims, TestApp};

async fn app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |s| {
        s.rate_limit_per_second = 100_000;
        s.rate_limit_burst = 100_000;
    })
    .await
}

/// What the simulator's chats say of each contact, worked out from the raw chat
/// objects: `{memberships: [{remote_id, name, role}], has_direct_chat, assignee,
/// custom_properties, chat_labels}` by contact id.
fn expected_from_chats(chats: &[Value]) -> BTreeMap<String, Value> {
    let mut out: BTreeMap<String, Value> = BTreeMap::new();
    let blank = || {
        json!({"memberships": [], "has_direct_chat": false, "assignee": null,
               "custom_properties": {}, "chat_labels": []})
    };
    for chat in chats {
        let id = chat["chat_id"].as_str().expect("chat id");
        if chat["chat_type"] == "group" {
            for (contact, m) in chat["members"].as_object().expect("members") {
                let role = if m["is_super_admin"] == true {
                    "superadmin"
                } else if m["is_admin"] == true {
                    "admin"
                } else {
                    "member"
                };
                let e = out.entry(contact.clone()).or_insert_with(blank);
                e["memberships"]
                    .as_array_mut()
                    .expect("array")
                    .push(json!({"remote_id": id, "name": chat["chat_name"], "role": role}));
            }
        } else {
            let e = out.entry(id.to_string()).or_insert_with(blank);
            e["has_direct_chat"] = json!(true);
            e["assignee"] = chat["assigned_to"].clone();
            e["custom_properties"] = chat["custom_properties"].clone();
            let mut labels: Vec<&String> = chat["label_ids"]
                .as_object()
                .expect("label ids")
                .keys()
                .collect();
            labels.sort();
            e["chat_labels"] = json!(labels);
        }
    }
    for e in out.values_mut() {
        e["memberships"]
            .as_array_mut()
            .expect("array")
            .sort_by_key(|m| m["remote_id"].as_str().unwrap_or("").to_string());
    }
    out
}

/// The chat fields of a served contact, in the shape of `expected_from_chats`.
fn chat_fields(contact: &Value) -> Value {
    let memberships: Vec<Value> = contact["memberships"]
        .as_array()
        .expect("memberships")
        .iter()
        .map(|m| {
            assert_eq!(m["kind"], "whatsapp_group", "{m}");
            json!({"remote_id": m["remote_id"], "name": m["name"], "role": m["role"]})
        })
        .collect();
    json!({
        "memberships": memberships,
        "has_direct_chat": contact["has_direct_chat"],
        "assignee": contact["assignee"],
        "custom_properties": contact["custom_properties"],
        "chat_labels": contact["chat_labels"],
    })
}

/// Checks every stored Periskope contact against the simulator's chats; returns
/// how many have groups, an assignee, custom properties, chat labels, no 1-1 chat.
async fn assert_contacts_match_chats(app: &TestApp, sims: &Sims) -> [usize; 5] {
    let chats = sims.set.periskope.api().with_store(|s| s.chats());
    let expected = expected_from_chats(&chats);
    let contacts = app.stored_contacts(&sims.periskope).await;
    assert_eq!(
        contacts.len(),
        sims.set.periskope.api().with_store(|s| s.len())
    );
    let mut seen = [0; 5];
    for c in &contacts {
        let id = c["remote_id"].as_str().expect("remote id");
        let want = expected.get(id).cloned().unwrap_or_else(|| {
            json!({"memberships": [], "has_direct_chat": false, "assignee": null,
                   "custom_properties": {}, "chat_labels": []})
        });
        assert_eq!(chat_fields(c), want, "{id}");
        for (i, on) in [
            !want["memberships"].as_array().expect("array").is_empty(),
            !want["assignee"].is_null(),
            !want["custom_properties"]
                .as_object()
                .expect("object")
                .is_empty(),
            !want["chat_labels"].as_array().expect("array").is_empty(),
            want["has_direct_chat"] == false,
        ]
        .into_iter()
        .enumerate()
        {
            seen[i] += usize::from(on);
        }
    }
    seen
}

async fn a_sync_gives_every_contact_its_chats(backend: Backend) {
    let app = app(backend).await;
    // Pages of 40: the chats take several pages, as the contacts do.
    let sims = app.connect_sims(61, 160, json!({"page_size": 40})).await;
    let (contacts, chats) = sims
        .set
        .periskope
        .api()
        .with_store(|s| (s.len(), s.chat_count()));
    let run = app.sync_now(&sims.periskope).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    // Chat pages are the run's pages too.
    assert!(chats > 40, "{chats}");
    assert_eq!(
        run["pages"].as_u64(),
        Some((contacts.div_ceil(40) + chats.div_ceil(40)) as u64),
        "{run}"
    );
    let seen = assert_contacts_match_chats(&app, &sims).await;
    assert!(
        seen.iter().all(|n| *n > 0),
        "every kind of chat field is exercised: {seen:?}"
    );
    // Roles as the world gives them, admins among them.
    let contacts_json = app.stored_contacts(&sims.periskope).await;
    assert!(contacts_json
        .iter()
        .flat_map(|c| c["memberships"].as_array().cloned().unwrap_or_default())
        .any(|m| m["role"] == "admin" || m["role"] == "superadmin"));

    // Nothing changed upstream: nothing changes here.
    let again = app.sync_now(&sims.periskope).await;
    assert_eq!(again["counts"]["updated"], 0, "{again}");
    assert_eq!(again["counts"]["created"], 0, "{again}");

    // A group renamed upstream: each of its members is updated, and only they.
    let (jid, members) = sims.set.periskope.api().with_store(|s| {
        let group = s
            .chats()
            .iter()
            .filter(|c| c["chat_type"] == "group")
            .max_by_key(|c| c["members"].as_object().map_or(0, |m| m.len()))
            .expect("a group")
            .clone();
        let jid = group["chat_id"].as_str().expect("jid").to_string();
        s.chat_mut(&jid).expect("chat")["chat_name"] = json!("Renamed Upstream");
        let members = group["members"]
            .as_object()
            .expect("members")
            .keys()
            .filter(|k| k.as_str() != ORG_PHONE)
            .count();
        (jid, members)
    });
    assert!(members >= 2, "{members}");
    let renamed = app.sync_now(&sims.periskope).await;
    assert_eq!(renamed["counts"]["updated"], members, "{renamed}");
    assert_contacts_match_chats(&app, &sims).await;
    // The feed says what changed: the memberships, of exactly those contacts.
    let feed: Value = send(app.get(
        "/v1/events?types=contact.updated&limit=200",
        &app.reader_key().await,
    ))
    .await
    .json()
    .await
    .expect("json");
    let updated = feed["data"].as_array().expect("data");
    assert_eq!(updated.len(), members, "{feed}");
    for e in updated {
        assert_eq!(e["data"]["changed_fields"], json!(["memberships"]), "{e}");
    }
    let renamed_in = app
        .stored_contacts(&sims.periskope)
        .await
        .iter()
        .filter(|c| {
            c["memberships"]
                .as_array()
                .expect("memberships")
                .iter()
                .any(|m| m["remote_id"] == jid.as_str() && m["name"] == "Renamed Upstream")
        })
        .count();
    assert_eq!(renamed_in, members);
}

/// Syncs, checks the contacts against the chats, and returns the groups the run
/// read one by one (`GET /v1/chats/{id}`).
async fn sync_reading_groups(app: &TestApp, sims: &Sims) -> (Value, Vec<String>) {
    sims.set.periskope.clear_requests();
    let run = app.sync_now(&sims.periskope).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let mut reads: Vec<String> = sims
        .set
        .periskope
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.starts_with("/v1/chats/"))
        .map(|r| r.path["/v1/chats/".len()..].to_string())
        .collect();
    reads.sort();
    let seen = assert_contacts_match_chats(app, sims).await;
    assert!(seen[0] > 0, "{seen:?}");
    (run, reads)
}

async fn groups_listed_without_members_are_read_when_new_or_changed(backend: Backend) {
    let app = app(backend).await;
    let sims = app.connect_sims(62, 120, json!({})).await;
    let groups = sims.set.periskope.api().with_store(|s| {
        s.list_without_members = true;
        s.chats()
            .iter()
            .filter(|c| c["chat_type"] == "group")
            .map(|c| c["chat_id"].as_str().expect("id").to_string())
            .collect::<Vec<_>>()
    });
    assert!(groups.len() >= 2, "{groups:?}");
    // The first run reads each group once, no 1-1 chat.
    let (_, reads) = sync_reading_groups(&app, &sims).await;
    let mut all = groups.clone();
    all.sort();
    assert_eq!(reads, all, "one read per group, none per 1-1 chat");

    // Nothing changed: no group is read again, and no contact changes.
    let (run, reads) = sync_reading_groups(&app, &sims).await;
    assert_eq!(reads, Vec::<String>::new());
    assert_eq!(run["counts"]["updated"], 0, "{run}");

    // A group renamed and left by a member upstream: that group alone is read.
    let changed = groups[0].clone();
    let left = sims.set.periskope.api().with_store(|s| {
        let chat = s.chat_mut(&changed).expect("group");
        chat["chat_name"] = json!("Renamed Upstream");
        let members = chat["members"].as_object_mut().expect("members");
        let left = members
            .keys()
            .find(|k| k.as_str() != ORG_PHONE)
            .expect("a member")
            .clone();
        members.remove(&left);
        let count = members.len();
        chat["member_count"] = json!(count);
        left
    });
    let (run, reads) = sync_reading_groups(&app, &sims).await;
    assert_eq!(reads, vec![changed.clone()]);
    assert!(run["counts"]["updated"].as_u64() > Some(0), "{run}");
    let contacts = app.stored_contacts(&sims.periskope).await;
    let former = contacts
        .iter()
        .find(|c| c["remote_id"] == left.as_str())
        .expect("the member who left");
    assert!(
        former["memberships"]
            .as_array()
            .expect("memberships")
            .iter()
            .all(|m| m["remote_id"] != changed.as_str()),
        "{former}"
    );

    // A group gone upstream is forgotten: when it is back, even as it was, it is
    // read again.
    let gone = groups[1].clone();
    let chat = sims
        .set
        .periskope
        .api()
        .with_store(|s| s.remove_chat(&gone))
        .expect("group");
    let (_, reads) = sync_reading_groups(&app, &sims).await;
    assert_eq!(reads, Vec::<String>::new());
    sims.set.periskope.api().with_store(|s| s.put_chat(chat));
    let (_, reads) = sync_reading_groups(&app, &sims).await;
    assert_eq!(reads, vec![gone]);
}

async fn live_reads_take_the_direct_chat_and_keep_the_synced_groups(backend: Backend) {
    let app = app(backend).await;
    let sims = app.connect_sims(63, 160, json!({})).await;
    app.load(&sims.periskope).await;
    let reader = app.reader_key().await;
    let world = sims.set.world.clone();
    let with_dm = world
        .periskope_people()
        .find(|p| p.has_dm && !p.groups.is_empty())
        .expect("a person with a 1-1 chat and groups");
    let without_dm = world
        .periskope_people()
        .find(|p| !p.has_dm)
        .expect("a person without a 1-1 chat");
    let path = |digits: &str| {
        format!(
            "/v1/connections/{}/contacts/{digits}?fresh=true",
            Sims::id(&sims.periskope)
        )
    };
    let digits = with_dm.phone.clone().expect("phone");
    let contact_id = format!("{digits}@c.us");
    let before: Value = send(app.get(&path(&digits), &reader))
        .await
        .json()
        .await
        .expect("json");
    // The agent and a property change in Periskope.
    sims.set.periskope.api().with_store(|s| {
        let chat = s.chat_mut(&contact_id).expect("1-1 chat");
        chat["assigned_to"] = json!("new.agent@hashlabs.dev");
        chat["custom_properties"] = json!({"property-tier": "gold"});
    });
    sims.set.periskope.clear_requests();
    let after: Value = send(app.get(&path(&digits), &reader))
        .await
        .json()
        .await
        .expect("json");
    let calls: Vec<String> = sims
        .set
        .periskope
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        calls,
        vec![
            format!("GET /v1/contacts/{digits}"),
            format!("GET /v1/chats/{contact_id}")
        ],
        "the contact and its 1-1 chat; no call per group"
    );
    assert_eq!(after["assignee"], "new.agent@hashlabs.dev");
    assert_eq!(after["custom_properties"], json!({"property-tier": "gold"}));
    assert_eq!(after["has_direct_chat"], true);
    // The groups keep the names and roles the sync stored.
    assert_eq!(after["memberships"], before["memberships"]);
    assert_eq!(
        after["memberships"].as_array().expect("array").len(),
        with_dm.groups.len()
    );
    for m in after["memberships"].as_array().expect("array") {
        let g = world
            .groups
            .iter()
            .find(|g| g.jid == m["remote_id"].as_str().unwrap_or(""))
            .expect("a world group");
        assert_eq!(m["name"], g.name.as_str());
        assert_eq!(m["role"], with_dm.group_role());
    }
    // The read stored what it saw: a sync finds nothing more to change.
    let run = app.sync_now(&sims.periskope).await;
    assert_eq!(run["counts"]["updated"], 0, "{run}");

    // No 1-1 chat: one call, and no chat fields.
    let digits = without_dm.phone.clone().expect("phone");
    sims.set.periskope.clear_requests();
    let read: Value = send(app.get(&path(&digits), &reader))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(sims.set.periskope.requests().len(), 1);
    assert_eq!(read["has_direct_chat"], false);
    assert_eq!(read["assignee"], Value::Null);
    assert_eq!(read["custom_properties"], json!({}));
}

async fn a_group_at_periskope_and_the_gateway_is_one_membership(backend: Backend) {
    let app = app(backend).await;
    let sims = app.connect_sims(61, 160, json!({})).await;
    app.load(&sims.periskope).await;
    app.load(&sims.gateway).await;
    let reader = app.reader_key().await;
    let world = sims.set.world.clone();
    let mut checked = 0;
    for p in world
        .people
        .iter()
        .filter(|p| p.in_periskope && p.in_gateway && p.phone.is_some() && !p.groups.is_empty())
    {
        let phone: String =
            url::form_urlencoded::byte_serialize(p.e164().expect("e164").as_bytes()).collect();
        let page: Value = send(app.get(&format!("/v1/people?phone={phone}"), &reader))
            .await
            .json()
            .await
            .expect("json");
        let person = &page["data"][0];
        let memberships = person["memberships"].as_array().expect("memberships");
        assert_eq!(memberships.len(), p.groups.len(), "{person}");
        for g in &p.groups {
            let group = &world.groups[*g];
            let found: Vec<&Value> = memberships
                .iter()
                .filter(|m| m["value"]["remote_id"] == group.jid.as_str())
                .collect();
            assert_eq!(found.len(), 1, "one membership per group: {person}");
            let m = found[0];
            assert_eq!(m["value"]["name"], group.name.as_str());
            assert_eq!(m["connection_ids"].as_array().expect("ids").len(), 2);
            let mut providers: Vec<&str> = m["value"]["seen_as"]
                .as_array()
                .expect("seen_as")
                .iter()
                .map(|s| {
                    assert_eq!(s["name"], group.name.as_str(), "{s}");
                    assert_eq!(s["role"], p.group_role(), "{s}");
                    s["provider"].as_str().expect("provider")
                })
                .collect();
            providers.sort_unstable();
            assert_eq!(providers, ["gateway", "periskope"]);
        }
        // The 1-1 chat's assignee, with where it came from.
        if p.has_dm && p.index % 3 != 0 {
            assert_eq!(
                person["assignees"][0]["connection_ids"],
                json!([Sims::id(&sims.periskope)])
            );
        }
        checked += 1;
    }
    assert!(checked >= 3, "{checked}");
}

async fn a_chat_listing_that_fails_writes_nothing_and_deletes_nothing(backend: Backend) {
    let app = app(backend).await;
    let sims = app.connect_sims(64, 160, json!({"page_size": 40})).await;
    app.load(&sims.periskope).await;
    // Gone upstream, and the chats then fail from their second page on.
    let gone = sims.set.periskope.api().with_store(|s| {
        let digits = s.all()[0]["contact_id"]
            .as_str()
            .expect("id")
            .trim_end_matches("@c.us")
            .to_string();
        s.remove(&digits);
        format!("{digits}@c.us")
    });
    sims.set
        .periskope
        .set_faults(unicontacts_simulators::Faults {
            fail_after: Some(1),
            ..Default::default()
        });
    let run = app.sync_now(&sims.periskope).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert!(
        run["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("listing chats, page 2")),
        "{run}"
    );
    assert_eq!(
        run["counts"],
        json!({"created": 0, "updated": 0, "unchanged": 0, "deleted": 0, "deletions_held": 0, "suppressed": 0})
    );
    let stored = app.stored_contacts(&sims.periskope).await;
    let kept = stored
        .iter()
        .find(|c| c["remote_id"] == gone.as_str())
        .expect("still stored");
    assert_eq!(kept["remote_was_deleted"], false);
}

async fn a_chat_page_that_is_not_json_fails_the_run_and_says_why(backend: Backend) {
    let app = app(backend).await;
    let sims = app.connect_sims(65, 60, json!({})).await;
    // The first call of the run, the first chat page, answers a body cut short.
    sims.set
        .periskope
        .set_faults(unicontacts_simulators::Faults {
            malformed_next: 1,
            ..Default::default()
        });
    let run = app.sync_now(&sims.periskope).await;
    assert_eq!(run["status"], "failed", "{run}");
    let error = run["error"].as_str().expect("error");
    assert!(
        error.starts_with("listing chats, page 1: ") && error.contains("Periskope chat list"),
        "{run}"
    );
    assert_eq!(
        run["counts"],
        json!({"created": 0, "updated": 0, "unchanged": 0, "deleted": 0, "deletions_held": 0, "suppressed": 0})
    );
    assert!(app.stored_contacts(&sims.periskope).await.is_empty());
    // The next run reads it whole.
    let run = app.sync_now(&sims.periskope).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_contacts_match_chats(&app, &sims).await;
}

crate::db_tests!(
    a_chat_listing_that_fails_writes_nothing_and_deletes_nothing,
    a_chat_page_that_is_not_json_fails_the_run_and_says_why,
    a_sync_gives_every_contact_its_chats,
    groups_listed_without_members_are_read_when_new_or_changed,
    live_reads_take_the_direct_chat_and_keep_the_synced_groups,
    a_group_at_periskope_and_the_gateway_is_one_membership,
);
