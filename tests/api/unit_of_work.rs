//! Every writer of contacts goes through one unit of work, which moves the
//! store's change counter when it commits: whatever wrote a change, the next
//! read of that contact, of a list page holding it and of its person, in the
//! same process, shows it, even though each of them was just read and cached.
//! One test per writer, from one table.

use serde_json::{json, Value};
use unicontacts::service::api_keys::Scope;

use crate::helpers::{send, spawn_app, Backend, Sims, TestApp};

/// The writers of contacts.
#[derive(Debug, Clone, Copy)]
enum Writer {
    SyncPage,
    SyncDeletionCheck,
    LiveRead,
    ApiCreate,
    ApiUpdate,
    ApiDelete,
    BatchCreate,
    BatchDelete,
    HeldDeletionsApplied,
    ConnectionDeletion,
}

/// What the next reads must show of the contact.
#[derive(Debug)]
enum Expect {
    /// Live, with this company.
    Company(&'static str),
    /// Kept, marked deleted upstream.
    Deleted,
    /// No longer stored.
    Gone,
}

struct Bench {
    app: TestApp,
    sims: Sims,
    /// A key that reads and writes contacts.
    key: String,
}

impl Bench {
    async fn json(&self, path: &str) -> (u16, Value) {
        let res = send(self.app.get(path, &self.key)).await;
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// One WA.cr contact as stored: its id, its remote id, its person.
    async fn a_wacr_contact(&self, nth: usize) -> (String, i64, Option<String>) {
        let (_, page) = self.json("/v1/contacts?provider=wacr&limit=100").await;
        let c = &page["data"][nth];
        (
            c["id"].as_str().expect("id").to_string(),
            c["remote_id"]
                .as_str()
                .and_then(|r| r.parse().ok())
                .expect("WA.cr remote id"),
            c["person_id"].as_str().map(str::to_string),
        )
    }

    /// Reads the contact, the list page and its person: now cached.
    async fn read_all(&self, id: Option<&str>, person: Option<&str>) -> Value {
        if let Some(id) = id {
            self.json(&format!("/v1/contacts/{id}")).await;
        }
        if let Some(p) = person {
            self.json(&format!("/v1/people/{p}")).await;
        }
        self.json(LIST).await.1
    }
}

/// One page holds every contact of the test (three providers of `SIZE`).
const LIST: &str = "/v1/contacts?limit=500";
const SIZE: usize = 20;

fn in_list<'a>(page: &'a Value, id: &str) -> Option<&'a Value> {
    page["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|c| c["id"] == id)
}

async fn check(writer: Writer, backend: Backend) {
    let app = spawn_app(backend).await;
    let sims = app
        .connect_sims(
            71,
            SIZE,
            json!({"default_status_id": 1, "default_source_id": 1, "default_kind": "lead"}),
        )
        .await;
    app.load_all(&sims).await;
    let key = app
        .create_key("test-org", &[Scope::ContactsRead, Scope::ContactsWrite])
        .await
        .1;
    let bench = Bench { app, sims, key };
    let (app, sims) = (&bench.app, &bench.sims);
    let wacr = Sims::id(&sims.wacr);
    let (id, remote, person) = bench.a_wacr_contact(0).await;
    let upstream = |company: &'static str| {
        sims.set.wacr.api().with_store(|s| {
            s.get_mut(remote).expect("contact")["company"] = json!(company);
        });
    };

    // Reads cached just before the write; the write; what it must show.
    let before = bench.read_all(Some(&id), person.as_deref()).await;
    assert!(
        in_list(&before, &id).is_some(),
        "{writer:?}: not listed first"
    );
    let (id, expect) = match writer {
        Writer::SyncPage => {
            upstream("Synced Ltd");
            let run = app.sync_now(&sims.wacr).await;
            assert_eq!(run["status"], "succeeded", "{run}");
            (id, Expect::Company("Synced Ltd"))
        }
        Writer::SyncDeletionCheck => {
            sims.set.wacr.api().with_store(|s| s.remove(remote));
            let run = app.sync_now(&sims.wacr).await;
            assert_eq!(run["counts"]["deleted"], 1, "{run}");
            (id, Expect::Deleted)
        }
        Writer::LiveRead => {
            upstream("Read Through Ltd");
            let (status, _) = bench
                .json(&format!(
                    "/v1/connections/{wacr}/contacts/{remote}?fresh=true"
                ))
                .await;
            assert_eq!(status, 200);
            (id, Expect::Company("Read Through Ltd"))
        }
        Writer::ApiCreate => {
            let res = send(app.post(
                &format!("/v1/connections/{wacr}/contacts"),
                &bench.key,
                &json!({"first_name": "Uni", "last_name": "Work",
                        "phone": "+91 98111 22381", "company": "Created Ltd"}),
            ))
            .await;
            let status = res.status();
            let made: Value = res.json().await.expect("json");
            assert_eq!(status, 201, "{made}");
            (
                made["id"].as_str().expect("id").into(),
                Expect::Company("Created Ltd"),
            )
        }
        Writer::ApiUpdate => {
            let res = send(app.patch(
                &format!("/v1/contacts/{id}"),
                &bench.key,
                &json!({"company": "Updated Ltd"}),
            ))
            .await;
            assert_eq!(res.status(), 200);
            (id, Expect::Company("Updated Ltd"))
        }
        Writer::ApiDelete => {
            let res = send(app.delete(&format!("/v1/contacts/{id}"), &bench.key)).await;
            assert_eq!(res.status(), 204);
            (id, Expect::Deleted)
        }
        Writer::BatchCreate => {
            let res = send(app.post(
                &format!("/v1/connections/{wacr}/contacts/batch"),
                &bench.key,
                &json!({"contacts": [{"first_name": "Bat", "last_name": "Ch",
                        "phone": "+91 98111 22391", "company": "Batched Ltd"}]}),
            ))
            .await;
            assert_eq!(res.status(), 200);
            let out: Value = res.json().await.expect("json");
            let made = out["results"][0]["contact"]["id"]
                .as_str()
                .unwrap_or_else(|| panic!("{out}"));
            (made.to_string(), Expect::Company("Batched Ltd"))
        }
        Writer::BatchDelete => {
            let res = send(app.post(
                &format!("/v1/connections/{wacr}/contacts/batch-delete"),
                &bench.key,
                &json!({"ids": [id]}),
            ))
            .await;
            assert_eq!(res.status(), 200);
            let out: Value = res.json().await.expect("json");
            assert_eq!(out["summary"]["failed"], 0, "{out}");
            (id, Expect::Deleted)
        }
        Writer::HeldDeletionsApplied => {
            // More than the guard lets through: the run holds them all.
            let gone: Vec<i64> = sims.set.wacr.api().with_store(|s| {
                let mut ids: Vec<i64> = s.all().filter_map(|c| c["id"].as_i64()).collect();
                ids.sort_unstable();
                ids.retain(|i| *i != remote);
                ids.truncate(5);
                ids.push(remote);
                for i in &ids {
                    s.remove(*i);
                }
                ids
            });
            let run = app.sync_now(&sims.wacr).await;
            assert_eq!(run["status"], "held", "{run}");
            assert_eq!(run["counts"]["deletions_held"], gone.len(), "{run}");
            // Held, the contact is still live: read (and cached) as such.
            let held = bench.read_all(Some(&id), person.as_deref()).await;
            assert!(in_list(&held, &id).is_some());
            let res = send(app.post(
                &format!(
                    "/v1/admin/sync-runs/{}/held-deletions/apply",
                    run["id"].as_str().expect("run")
                ),
                &app.admin_key,
                &json!({}),
            ))
            .await;
            assert_eq!(res.status(), 200);
            (id, Expect::Deleted)
        }
        Writer::ConnectionDeletion => {
            let res =
                send(app.delete(&format!("/v1/admin/connections/{wacr}"), &app.admin_key)).await;
            assert_eq!(res.status(), 204);
            (id, Expect::Gone)
        }
    };

    // The contact, the page, the person: each read at once.
    let (status, contact) = bench.json(&format!("/v1/contacts/{id}")).await;
    let (_, page) = bench.json(LIST).await;
    let listed = in_list(&page, &id);
    match expect {
        Expect::Company(company) => {
            assert_eq!(status, 200, "{writer:?}: {contact}");
            assert_eq!(contact["company"], company, "{writer:?}: the contact");
            let listed = listed.unwrap_or_else(|| panic!("{writer:?}: not in the list"));
            assert_eq!(listed["company"], company, "{writer:?}: the list page");
            let person = contact["person_id"].as_str().expect("a person");
            let (status, view) = bench.json(&format!("/v1/people/{person}")).await;
            assert_eq!(status, 200, "{writer:?}: {view}");
            let mine = view["contacts"]
                .as_array()
                .expect("contacts")
                .iter()
                .find(|c| c["id"] == id.as_str())
                .unwrap_or_else(|| panic!("{writer:?}: not in its person: {view}"));
            assert_eq!(mine["company"], company, "{writer:?}: the person view");
        }
        Expect::Deleted | Expect::Gone => {
            match expect {
                Expect::Deleted => {
                    assert_eq!(status, 200, "{writer:?}: {contact}");
                    assert_eq!(
                        contact["remote_was_deleted"], true,
                        "{writer:?}: the contact"
                    );
                }
                _ => assert_eq!(status, 404, "{writer:?}: {contact}"),
            }
            assert!(listed.is_none(), "{writer:?}: still in the list page");
            let person = person.expect("the contact had a person");
            let (status, view) = bench.json(&format!("/v1/people/{person}")).await;
            if status == 200 {
                let still = view["contacts"]
                    .as_array()
                    .expect("contacts")
                    .iter()
                    .any(|c| c["id"] == id.as_str());
                assert!(!still, "{writer:?}: still in its person: {view}");
            } else {
                assert_eq!(status, 404, "{writer:?}: {view}");
            }
        }
    }
}

async fn a_sync_page(backend: Backend) {
    check(Writer::SyncPage, backend).await;
}

async fn a_sync_deletion_check(backend: Backend) {
    check(Writer::SyncDeletionCheck, backend).await;
}

async fn a_live_read(backend: Backend) {
    check(Writer::LiveRead, backend).await;
}

async fn an_api_create(backend: Backend) {
    check(Writer::ApiCreate, backend).await;
}

async fn an_api_update(backend: Backend) {
    check(Writer::ApiUpdate, backend).await;
}

async fn an_api_delete(backend: Backend) {
    check(Writer::ApiDelete, backend).await;
}

async fn a_batch_create(backend: Backend) {
    check(Writer::BatchCreate, backend).await;
}

async fn a_batch_delete(backend: Backend) {
    check(Writer::BatchDelete, backend).await;
}

async fn held_deletions_applied(backend: Backend) {
    check(Writer::HeldDeletionsApplied, backend).await;
}

async fn a_connection_deletion(backend: Backend) {
    check(Writer::ConnectionDeletion, backend).await;
}

crate::db_tests!(
    a_sync_page,
    a_sync_deletion_check,
    a_live_read,
    an_api_create,
    an_api_update,
    an_api_delete,
    a_batch_create,
    a_batch_delete,
    held_deletions_applied,
    a_connection_deletion,
);
