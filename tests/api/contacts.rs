//! `GET /v1/contacts` and `GET /v1/contacts/{id}` over contacts loaded from the simulators.

use std::collections::HashSet;

use serde_json::{json, Value};
use unicontacts::service::api_keys::Scope;
use unicontacts::store::contacts::{upsert_contact, Origin};
use unicontacts_adapters::canonical::ContactRecord;
use unicontacts_adapters::ProviderKind;

use crate::helpers::{assert_error, json_at, send, spawn_app, Backend, Sims, TestApp};

/// Every page of `path` (which has no cursor yet), as contact JSON.
async fn all_pages(app: &TestApp, key: &str, path: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut next: Option<String> = None;
    loop {
        let url = match &next {
            None => path.to_string(),
            Some(c) => format!("{path}{sep}cursor={c}"),
        };
        let res = send(app.get(&url, key)).await;
        assert_eq!(res.status(), 200, "{url}");
        let page: Value = res.json().await.expect("json");
        out.extend(page["data"].as_array().expect("data").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => next = Some(c.to_string()),
            None => return out,
        }
    }
}

fn ids(contacts: &[Value]) -> Vec<String> {
    contacts
        .iter()
        .map(|c| c["id"].as_str().expect("id").to_string())
        .collect()
}

async fn every_loaded_contact_is_listed_once_across_providers(backend: Backend) {
    let app = spawn_app(backend).await;
    let sims = app.connect_sims(21, 120, json!({})).await;
    let loaded = app.load_all(&sims).await;
    let reader = app.reader_key().await;
    let all = all_pages(&app, &reader, "/v1/contacts?limit=7").await;
    assert_eq!(all.len() as u64, loaded);
    let unique: HashSet<String> = ids(&all).into_iter().collect();
    assert_eq!(unique.len(), all.len(), "no repeats");
    let providers: HashSet<&str> = all.iter().filter_map(|c| c["provider"].as_str()).collect();
    assert_eq!(providers.len(), 3);
    let c = &all[0];
    for field in [
        "id",
        "connection_id",
        "provider",
        "remote_id",
        "person_id",
        "display_name",
        "phones",
        "memberships",
        "fetched_at",
        "remote_was_deleted",
    ] {
        assert!(c.get(field).is_some(), "{field} in {c}");
    }
    assert!(
        c.get("remote_data").is_none(),
        "remote_data only when asked"
    );

    // provider and connection filters
    let wacr = all_pages(&app, &reader, "/v1/contacts?provider=wacr&limit=500").await;
    assert_eq!(wacr.len(), sims.set.wacr.api().with_store(|s| s.len()));
    let by_conn = all_pages(
        &app,
        &reader,
        &format!("/v1/contacts?connection_id={}", Sims::id(&sims.gateway)),
    )
    .await;
    assert_eq!(
        by_conn.len(),
        sims.set.gateway.api().with_store(|s| s.len())
    );
    assert!(by_conn.iter().all(|c| c["provider"] == "gateway"));
}

async fn filters_find_by_name_phone_label_membership_and_time(backend: Backend) {
    let app = spawn_app(backend).await;
    let sims = app.connect_sims(22, 150, json!({})).await;
    app.load_all(&sims).await;
    let reader = app.reader_key().await;
    let world = &sims.set.world;

    // phone, in any written form, finds the person at every provider that has them
    let person = world
        .people
        .iter()
        .find(|p| p.provider_count() == 3 && p.phone.is_some())
        .expect("a person in all three providers");
    let digits = person.phone.clone().expect("phone");
    let spaced = format!(
        "+{} {}",
        person.calling_code(),
        &digits[person.calling_code().len()..]
    );
    for form in [
        format!("+{digits}"),
        digits.clone(),
        format!("{digits}@c.us"),
        spaced,
    ] {
        let found = all_pages(
            &app,
            &reader,
            &format!("/v1/contacts?phone={}", urlencode(&form)),
        )
        .await;
        let providers: HashSet<&str> = found
            .iter()
            .filter_map(|c| c["provider"].as_str())
            .collect();
        assert_eq!(providers.len(), 3, "{form}: {found:?}");
    }

    // q: case-insensitive substring of name, phone or email
    let last = person.last_name.to_uppercase();
    let found = all_pages(
        &app,
        &reader,
        &format!("/v1/contacts?q={}", urlencode(&last)),
    )
    .await;
    assert!(!found.is_empty());
    assert!(
        found
            .iter()
            .all(|c| c.to_string().to_uppercase().contains(&last)),
        "{last}"
    );
    let tail = &digits[digits.len() - 6..];
    let found = all_pages(&app, &reader, &format!("/v1/contacts?q={tail}")).await;
    assert!(found.iter().any(|c| c["phones"].to_string().contains(tail)));
    let found = all_pages(&app, &reader, "/v1/contacts?q=%25").await;
    assert!(found.is_empty(), "LIKE wildcards in q are literal");

    // label (case-insensitive) and membership
    let labelled = all_pages(&app, &reader, "/v1/contacts?label=VIP").await;
    assert!(!labelled.is_empty());
    assert!(labelled.iter().all(|c| c["labels"]
        .as_array()
        .expect("labels")
        .iter()
        .any(|l| l == "vip")));
    let group = &world.groups[0].jid;
    let members = all_pages(
        &app,
        &reader,
        &format!("/v1/contacts?membership={}", urlencode(group)),
    )
    .await;
    assert!(!members.is_empty());
    assert!(members
        .iter()
        .all(|c| c["memberships"].to_string().contains(group.as_str())));

    // modified_after
    let everything = all_pages(&app, &reader, "/v1/contacts?limit=500").await;
    let past = all_pages(
        &app,
        &reader,
        "/v1/contacts?modified_after=2000-01-01T00:00:00Z&limit=500",
    )
    .await;
    assert_eq!(past.len(), everything.len());
    let future = all_pages(
        &app,
        &reader,
        "/v1/contacts?modified_after=2999-01-01T00:00:00%2B02:00",
    )
    .await;
    assert!(future.is_empty());

    // include_deleted
    let gone = everything[0]["id"].as_str().expect("id").to_string();
    app.store
        .run({
            let gone = gone.clone();
            move |conn| {
                use diesel::prelude::*;
                use unicontacts::store::schema::contacts;
                diesel::update(contacts::table.filter(contacts::id.eq(gone)))
                    .set(contacts::remote_was_deleted.eq(true))
                    .execute(conn)?;
                Ok(())
            }
        })
        .await
        .expect("mark deleted");
    // Written in SQL, as another process would: shown within a second (the
    // page's copy ages out).
    let started = std::time::Instant::now();
    while ids(&all_pages(&app, &reader, "/v1/contacts?limit=500").await).contains(&gone) {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "a contact deleted elsewhere is still listed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let with_deleted =
        all_pages(&app, &reader, "/v1/contacts?include_deleted=true&limit=500").await;
    let deleted = with_deleted
        .iter()
        .find(|c| c["id"] == gone.as_str())
        .expect("listed");
    assert_eq!(deleted["remote_was_deleted"], true);
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn bad_filter_values_are_422_naming_the_parameter(backend: Backend) {
    let app = spawn_app(backend).await;
    let reader = app.reader_key().await;
    for (query, param) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("phone=call%20me", "phone"),
        ("phone=205227043110953%40lid", "phone"),
        ("modified_after=yesterday", "modified_after"),
        ("provider=hubspot", "provider"),
        ("include_deleted=perhaps", "include_deleted"),
        ("cursor=no%2Bpe", "cursor"),
        ("sort=name", "sort"),
        ("q=", "q"),
    ] {
        let res = send(app.get(&format!("/v1/contacts?{query}"), &reader)).await;
        let err = assert_error(res, 422, "validation_failed").await;
        assert!(
            err["error"]["details"]["fields"][param].is_array(),
            "{query}: {err}"
        );
    }
}

async fn rows_inserted_between_pages_are_neither_skipped_nor_repeated(backend: Backend) {
    let app = spawn_app(backend).await;
    let sims = app.connect_sims(23, 60, json!({})).await;
    app.load_all(&sims).await;
    let reader = app.reader_key().await;
    let before: Vec<String> = ids(&all_pages(&app, &reader, "/v1/contacts?limit=500").await);

    let first: Value = send(app.get("/v1/contacts?limit=5", &reader))
        .await
        .json()
        .await
        .expect("json");
    let mut seen = ids(first["data"].as_array().expect("data"));
    let mut cursor = first["next_cursor"]
        .as_str()
        .expect("more pages")
        .to_string();
    // New contacts arrive while the client pages.
    let connection = app.connection(&Sims::id(&sims.wacr)).await;
    let mut inserted = Vec::new();
    for i in 0..3 {
        let record = ContactRecord {
            remote_id: format!("{}", 900_000 + i),
            display_name: Some(format!("Late Arrival {i}")),
            ..ContactRecord::default()
        };
        let c = connection.clone();
        let (row, _) = app
            .store
            .run(move |conn| {
                let origin = Origin {
                    org_id: &c.org_id,
                    connection_id: &c.id,
                    provider: ProviderKind::Wacr,
                };
                upsert_contact(conn, &origin, &record, unicontacts::ids::now())
            })
            .await
            .expect("insert");
        inserted.push(row.id);
    }
    loop {
        let page: Value = send(app.get(&format!("/v1/contacts?limit=5&cursor={cursor}"), &reader))
            .await
            .json()
            .await
            .expect("json");
        seen.extend(ids(page["data"].as_array().expect("data")));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no repeats");
    let expected: HashSet<&String> = before.iter().chain(inserted.iter()).collect();
    assert_eq!(
        unique, expected,
        "nothing skipped; the new rows come at the end"
    );
}

async fn one_contact_by_id_with_and_without_remote_data(backend: Backend) {
    let app = spawn_app(backend).await;
    let sims = app.connect_sims(24, 40, json!({})).await;
    app.load_all(&sims).await;
    let reader = app.reader_key().await;
    let listed: Value = send(app.get("/v1/contacts?provider=periskope&limit=1", &reader))
        .await
        .json()
        .await
        .expect("json");
    let contact = &listed["data"][0];
    let id = contact["id"].as_str().expect("id");
    let got: Value = send(app.get(&format!("/v1/contacts/{id}"), &reader))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(&got, contact);
    let raw: Value = send(app.get(&format!("/v1/contacts/{id}?include=remote_data"), &reader))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        raw["remote_data"]["contact_id"], contact["remote_id"],
        "the provider's object, untouched"
    );
    let res = send(app.get(&format!("/v1/contacts/{id}?include=everything"), &reader)).await;
    assert_error(res, 422, "validation_failed").await;
    assert_error(
        send(app.get("/v1/contacts/ctc_nope", &reader)).await,
        404,
        "not_found",
    )
    .await;

    // Another org sees nothing of it.
    let (_, stranger) = app.create_key("other-org", &[Scope::ContactsRead]).await;
    assert_error(
        send(app.get(&format!("/v1/contacts/{id}"), &stranger)).await,
        404,
        "not_found",
    )
    .await;
    let theirs: Value = send(app.get("/v1/contacts", &stranger))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(theirs["data"], json!([]));
}

async fn read_keys_read_contacts_and_nothing_else(backend: Backend) {
    let app = spawn_app(backend).await;
    let reader = app.reader_key().await;
    assert_eq!(send(app.get("/v1/contacts", &reader)).await.status(), 200);
    for path in ["/v1/admin/connections", "/v1/admin/api-keys"] {
        assert_error(send(app.get(path, &reader)).await, 403, "forbidden").await;
    }
    // An admin-only key is not a reader.
    assert_error(
        send(app.get("/v1/contacts", &app.admin_key)).await,
        403,
        "forbidden",
    )
    .await;
    assert_error(
        send(app.client.get(app.url("/v1/contacts"))).await,
        401,
        "unauthorized",
    )
    .await;
}

/// A page of contacts is compressed for a client that accepts gzip or brotli,
/// and plain for one that does not.
async fn pages_are_compressed_when_the_client_accepts_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let sims = app.connect_sims(56, 120, json!({})).await;
    app.load_all(&sims).await;
    let reader = app.reader_key().await;
    // A client that decodes nothing itself, so the bytes are what was sent.
    let raw = reqwest::Client::builder()
        .no_gzip()
        .build()
        .expect("client");
    let url = app.url("/v1/contacts?limit=100");
    let plain = raw
        .get(&url)
        .bearer_auth(&reader)
        .send()
        .await
        .expect("plain");
    assert_eq!(plain.status(), 200);
    assert!(plain.headers().get("content-encoding").is_none());
    let plain = plain.bytes().await.expect("body");
    serde_json::from_slice::<Value>(&plain).expect("plain JSON");
    for encoding in ["gzip", "br"] {
        let res = raw
            .get(&url)
            .bearer_auth(&reader)
            .header("accept-encoding", encoding)
            .send()
            .await
            .expect("compressed");
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-encoding"], encoding);
        let body = res.bytes().await.expect("body");
        assert!(
            body.len() * 3 < plain.len(),
            "{encoding}: {} of {} bytes",
            body.len(),
            plain.len()
        );
    }
    // The suite's own client asks for gzip and reads the same page.
    let decoded: Value = send(app.get("/v1/contacts?limit=100", &reader))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        decoded,
        serde_json::from_slice::<Value>(&plain).expect("json")
    );
}

/// HEAD is answered wherever GET is: the same status and headers, no body.
async fn head_answers_wherever_get_does(backend: Backend) {
    let app = spawn_app(backend).await;
    let sims = app.connect_sims(57, 30, json!({})).await;
    app.load_all(&sims).await;
    let reader = app.reader_key().await;
    let raw = reqwest::Client::builder()
        .no_gzip()
        .build()
        .expect("client");
    let first: Value = send(app.get("/v1/contacts?limit=1", &reader))
        .await
        .json()
        .await
        .expect("json");
    let id = first["data"][0]["id"].as_str().expect("id").to_string();
    for path in [
        "/healthz".to_string(),
        "/v1/contacts?limit=5".to_string(),
        format!("/v1/contacts/{id}"),
        format!(
            "/v1/people/{}",
            first["data"][0]["person_id"].as_str().expect("person")
        ),
    ] {
        let got = raw
            .get(app.url(&path))
            .bearer_auth(&reader)
            .send()
            .await
            .expect("get");
        let (status, length) = (got.status(), got.headers()["content-length"].clone());
        let body = got.bytes().await.expect("body");
        let head = raw
            .head(app.url(&path))
            .bearer_auth(&reader)
            .send()
            .await
            .expect("head");
        assert_eq!(head.status(), status, "{path}");
        assert_eq!(head.headers()["content-length"], length, "{path}");
        assert_eq!(
            length.to_str().expect("length"),
            body.len().to_string(),
            "{path}"
        );
        assert_eq!(head.headers()["content-type"], "application/json", "{path}");
        assert!(
            head.bytes().await.expect("body").is_empty(),
            "{path}: no body"
        );
    }
    // Not where there is no GET.
    let res = raw
        .head(app.url(&format!(
            "/v1/connections/{}/contacts/batch",
            Sims::id(&sims.wacr)
        )))
        .bearer_auth(&reader)
        .send()
        .await
        .expect("head");
    assert_eq!(res.status(), 405);
}

/// The company of contact `id` on the page, if it is there.
fn company_on(page: &Value, id: &str) -> Option<Value> {
    page["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|c| c["id"] == id)
        .map(|c| c["company"].clone())
}

/// A list page is kept whole in memory, and every write shows on it: this
/// process's at once, another process's within a second; one org never gets
/// another's page for the same query.
async fn a_list_page_read_again_shows_every_write(backend: Backend) {
    let app = spawn_app(backend).await;
    let sims = app
        .connect_sims(
            47,
            12,
            json!({"default_status_id": 1, "default_source_id": 1, "default_kind": "lead"}),
        )
        .await;
    app.load(&sims.wacr).await;
    let reader = app.reader_key().await;
    let (_, writer) = app
        .create_key("test-org", &[Scope::ContactsRead, Scope::ContactsWrite])
        .await;
    let other = app.spawn_beside(|s| s.scheduler_tick_ms = 0).await;
    let path = format!(
        "/v1/contacts?limit=500&connection_id={}",
        Sims::id(&sims.wacr)
    );
    let first = json_at(&app.address, &path, &reader).await;
    let listed = first["data"].as_array().expect("data").len();
    assert!(listed > 0, "{first}");
    let id = first["data"][0]["id"].as_str().expect("id").to_string();
    let patch = |base: String, company: &'static str| {
        let (url, writer) = (format!("{base}/v1/contacts/{id}"), writer.clone());
        async move {
            let res = send(
                reqwest::Client::new()
                    .patch(url)
                    .bearer_auth(writer)
                    .json(&json!({ "company": company })),
            )
            .await;
            assert_eq!(res.status(), 200);
        }
    };

    // Read twice (the second from memory), written here, read at once.
    for company in ["Paged Here Ltd", "Paged Here Again Ltd"] {
        json_at(&app.address, &path, &reader).await;
        json_at(&app.address, &path, &reader).await;
        patch(app.address.clone(), company).await;
        let page = json_at(&app.address, &path, &reader).await;
        assert_eq!(company_on(&page, &id), Some(json!(company)), "{page}");
    }

    // Changed at the provider and synced by this process: on the page at once
    // (a sync tells no one; the store's write count moves).
    let remote: i64 = first["data"][0]["remote_id"]
        .as_str()
        .expect("remote id")
        .parse()
        .expect("a WA.cr id");
    json_at(&app.address, &path, &reader).await;
    sims.set.wacr.api().with_store(|s| {
        s.get_mut(remote).expect("contact")["company"] = json!("Synced Here Ltd");
    });
    let run = app.sync_now(&sims.wacr).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let page = json_at(&app.address, &path, &reader).await;
    assert_eq!(company_on(&page, &id), Some(json!("Synced Here Ltd")));

    // A contact created here is on the page at once.
    let res = send(app.post(
        &format!("/v1/connections/{}/contacts", Sims::id(&sims.wacr)),
        &writer,
        &json!({"first_name": "Newly", "last_name": "Paged", "phone": "+91 98111 22335"}),
    ))
    .await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.expect("json");
    let page = json_at(&app.address, &path, &reader).await;
    assert_eq!(page["data"].as_array().expect("data").len(), listed + 1);
    assert!(company_on(&page, created["id"].as_str().expect("id")).is_some());

    // Another org asking the same gets its own page: empty.
    let (_, stranger) = app.create_key("other-org", &[Scope::ContactsRead]).await;
    let theirs = json_at(&app.address, &path, &stranger).await;
    assert_eq!(theirs["data"], json!([]), "{theirs}");

    // Written by another process: there at once, here within a second (its
    // notice, or the copy's age).
    json_at(&other, &path, &reader).await;
    patch(other.clone(), "Paged Elsewhere Ltd").await;
    let there = json_at(&other, &path, &reader).await;
    assert_eq!(company_on(&there, &id), Some(json!("Paged Elsewhere Ltd")));
    let started = std::time::Instant::now();
    while company_on(&json_at(&app.address, &path, &reader).await, &id)
        != Some(json!("Paged Elsewhere Ltd"))
    {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "another process's write is not shown here"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

crate::db_tests!(
    head_answers_wherever_get_does,
    pages_are_compressed_when_the_client_accepts_it,
    every_loaded_contact_is_listed_once_across_providers,
    filters_find_by_name_phone_label_membership_and_time,
    bad_filter_values_are_422_naming_the_parameter,
    rows_inserted_between_pages_are_neither_skipped_nor_repeated,
    one_contact_by_id_with_and_without_remote_data,
    read_keys_read_contacts_and_nothing_else,
    a_list_page_read_again_shows_every_write,
);
