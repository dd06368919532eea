//! Live reads: `GET /v1/connections/{id}/contacts/{remote_id}` against the simulators.

use std::time::Duration;

use serde_json::{json, Value};
use unicontacts::service::api_keys::Scope;
use unicontacts_simulators::{Faults, RateLimit};

use crate::helpers::{
    assert_error, json_at, send, spawn_app, spawn_app_with, Backend, Sims, TestApp,
};

fn live_path(connection: &Value, remote_id: &str) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(remote_id.as_bytes()).collect();
    // Path segments take %20 for spaces, not `+`.
    format!(
        "/v1/connections/{}/contacts/{}",
        Sims::id(connection),
        encoded.replace('+', "%20")
    )
}

/// Upstream detail requests for one path suffix, by the simulator's own record.
fn upstream_hits(requests: &[unicontacts_simulators::RecordedRequest], suffix: &str) -> usize {
    requests.iter().filter(|r| r.path.ends_with(suffix)).count()
}

fn first_periskope_digits(sims: &Sims) -> String {
    sims.set.periskope.api().with_store(|s| {
        s.all()[0]["contact_id"]
            .as_str()
            .expect("id")
            .trim_end_matches("@c.us")
            .to_string()
    })
}

async fn a_miss_then_a_hit_with_a_strong_etag_and_304(backend: Backend) {
    let app = spawn_app(backend).await;
    let sims = app.connect_sims(31, 40, json!({})).await;
    let reader = app.reader_key().await;
    let digits = first_periskope_digits(&sims);
    let path = live_path(&sims.periskope, &digits);

    let res = send(app.get(&path, &reader)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-cache"], "MISS");
    assert_eq!(res.headers()["cache-control"], "private, max-age=60");
    let etag = res.headers()["etag"].to_str().expect("etag").to_string();
    assert!(
        etag.starts_with('"') && !etag.starts_with("W/"),
        "strong: {etag}"
    );
    for h in [
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
    ] {
        assert!(res.headers().contains_key(h), "{h}");
    }
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["remote_id"], format!("{digits}@c.us"));
    assert!(body["id"].as_str().expect("id").starts_with("ctc_"));

    let res = send(app.get(&path, &reader)).await;
    assert_eq!(res.headers()["x-cache"], "HIT");
    assert_eq!(res.headers()["etag"].to_str().expect("etag"), etag);
    assert_eq!(res.json::<Value>().await.expect("json"), body);

    let res = send(app.get(&path, &reader).header("if-none-match", &etag)).await;
    assert_eq!(res.status(), 304);
    assert!(res.bytes().await.expect("body").is_empty());
    let res = send(
        app.get(&path, &reader)
            .header("if-none-match", "\"something-else\""),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        upstream_hits(
            &sims.set.periskope.requests(),
            &format!("/contacts/{digits}")
        ),
        1
    );

    // The read went into the store too.
    let stored: Value = send(app.get(
        &format!("/v1/contacts/{}", body["id"].as_str().expect("id")),
        &reader,
    ))
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(stored["remote_id"], body["remote_id"]);
}

/// The ETag of a contact or person follows what the client is shown, not when a copy
/// was fetched: refreshes that find nothing new keep it (and 304s working), a change
/// at the provider moves it; stored contacts and people answer 304 too.
async fn etags_follow_the_content_not_the_fetch(backend: Backend) {
    let app = spawn_app(backend).await;
    let sims = app.connect_sims(33, 30, json!({})).await;
    let reader = app.reader_key().await;
    let digits = first_periskope_digits(&sims);
    let fresh = format!("{}?fresh=true", live_path(&sims.periskope, &digits));
    let etag_of = |res: &reqwest::Response| {
        res.headers()
            .get("etag")
            .expect("an ETag")
            .to_str()
            .expect("etag")
            .to_string()
    };

    let first = send(app.get(&fresh, &reader)).await;
    let tag = etag_of(&first);
    let first: Value = first.json().await.expect("json");
    let again = send(app.get(&fresh, &reader)).await;
    assert_eq!(etag_of(&again), tag, "a refresh that found nothing new");
    let again: Value = again.json().await.expect("json");
    assert_ne!(
        first["fetched_at"], again["fetched_at"],
        "the copy was fetched again: the test can fail"
    );
    let res = send(app.get(&fresh, &reader).header("if-none-match", &tag)).await;
    assert_eq!(res.status(), 304);

    // The stored contact and its person: the same content tag, and 304.
    let id = first["id"].as_str().expect("id");
    let person = first["person_id"].as_str().expect("person");
    for path in [format!("/v1/contacts/{id}"), format!("/v1/people/{person}")] {
        let res = send(app.get(&path, &reader)).await;
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(res.headers()["cache-control"], "private, no-cache");
        let stored = etag_of(&res);
        assert!(stored.starts_with('"'), "strong: {stored}");
        if path.starts_with("/v1/contacts") {
            assert_eq!(stored, tag, "one content, one tag");
        }
        for condition in [
            stored.clone(),
            format!("W/{stored}"),
            format!("\"x\", {stored}"),
        ] {
            let res = send(app.get(&path, &reader).header("if-none-match", &condition)).await;
            assert_eq!(res.status(), 304, "{path} {condition}");
            assert_eq!(etag_of(&res), stored);
            assert!(res.bytes().await.expect("body").is_empty());
        }
        let res = send(app.get(&path, &reader).header("if-none-match", "\"other\"")).await;
        assert_eq!(res.status(), 200, "{path}");
    }
    let person_tag = etag_of(&send(app.get(&format!("/v1/people/{person}"), &reader)).await);

    // A change at the provider: a new tag everywhere, the old one no longer 304.
    sims.set.periskope.api().with_store(|s| {
        let mut c = s.get(&digits).expect("in the sim").clone();
        c["contact_name"] = json!("Renamed Upstream");
        s.upsert(c);
    });
    let changed = send(app.get(&fresh, &reader).header("if-none-match", &tag)).await;
    assert_eq!(changed.status(), 200);
    let new_tag = etag_of(&changed);
    assert_ne!(new_tag, tag);
    let res = send(
        app.get(&format!("/v1/contacts/{id}"), &reader)
            .header("if-none-match", &tag),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(etag_of(&res), new_tag);
    let res = send(
        app.get(&format!("/v1/people/{person}"), &reader)
            .header("if-none-match", &person_tag),
    )
    .await;
    assert_eq!(res.status(), 200, "the person's contact changed");
    assert_ne!(etag_of(&res), person_tag);
}

async fn a_hundred_concurrent_misses_make_one_upstream_call(backend: Backend) {
    let app = spawn_app(backend).await;
    let sims = app.connect_sims(32, 40, json!({})).await;
    sims.set.gateway.set_faults(Faults {
        latency_ms: 150,
        ..Faults::default()
    });
    let reader = app.reader_key().await;
    let lid = sims
        .set
        .world
        .gateway_people()
        .next()
        .expect("gateway person")
        .lid
        .clone();
    let path = live_path(&sims.gateway, &lid);
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let req = app.get(&path, &reader);
        tasks.push(tokio::spawn(async move {
            req.send().await.map(|r| r.status().as_u16())
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("join").expect("sent"), 200);
    }
    assert_eq!(
        upstream_hits(&sims.set.gateway.requests(), &lid),
        1,
        "single flight"
    );
}

async fn entries_expire_after_the_connection_ttl_and_fresh_skips_the_cache(backend: Backend) {
    let app = spawn_app(backend).await;
    let sims = app
        .connect_sims(33, 40, json!({"cache_ttl_seconds": 1}))
        .await;
    let reader = app.reader_key().await;
    let id = sims
        .set
        .wacr
        .api()
        .with_store(|s| s.all().next().expect("one")["id"].to_string());
    let path = live_path(&sims.wacr, &id);
    let hits = || upstream_hits(&sims.set.wacr.requests(), &format!("/contacts/{id}"));
    let res = send(app.get(&path, &reader)).await;
    assert_eq!(res.headers()["cache-control"], "private, max-age=1");
    assert_eq!(res.headers()["x-cache"], "MISS");
    assert_eq!(
        send(app.get(&path, &reader)).await.headers()["x-cache"],
        "HIT"
    );
    assert_eq!(hits(), 1);
    // The TTL is a span of time: nothing to await but the clock.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(
        send(app.get(&path, &reader)).await.headers()["x-cache"],
        "MISS"
    );
    assert_eq!(hits(), 2);
    let res = send(app.get(&format!("{path}?fresh=true"), &reader)).await;
    assert_eq!(res.headers()["x-cache"], "MISS");
    assert_eq!(hits(), 3);
    assert_error(
        send(app.get(&format!("{path}?fresh=maybe"), &reader)).await,
        422,
        "validation_failed",
    )
    .await;
}

async fn remote_ids_are_accepted_in_the_forms_people_have_them(backend: Backend) {
    let app = spawn_app(backend).await;
    let sims = app.connect_sims(34, 40, json!({})).await;
    let reader = app.reader_key().await;
    let person = sims
        .set
        .world
        .periskope_people()
        .next()
        .expect("periskope person")
        .clone();
    let digits = person.phone.clone().expect("phone");
    let cc = person.calling_code();
    let mut contact_ids = Vec::new();
    for form in [
        digits.clone(),
        format!("{digits}@c.us"),
        format!("+{cc} {}", &digits[cc.len()..]),
    ] {
        let res = send(app.get(&live_path(&sims.periskope, &form), &reader)).await;
        assert_eq!(res.status(), 200, "{form}");
        contact_ids.push(res.json::<Value>().await.expect("json")["id"].clone());
    }
    assert!(
        contact_ids.windows(2).all(|w| w[0] == w[1]),
        "one contact: {contact_ids:?}"
    );
    let lid = sims
        .set
        .world
        .gateway_people()
        .next()
        .expect("gateway person")
        .lid
        .clone();
    for form in [lid.clone(), lid.trim_end_matches("@lid").to_string()] {
        assert_eq!(
            send(app.get(&live_path(&sims.gateway, &form), &reader))
                .await
                .status(),
            200,
            "{form}"
        );
    }
    for (connection, bad) in [
        (&sims.periskope, "205227043110953@lid"),
        (&sims.periskope, "hello"),
        (&sims.wacr, "abc"),
        (&sims.wacr, "-4"),
        (&sims.gateway, "919537851844@c.us"),
    ] {
        let err = assert_error(
            send(app.get(&live_path(connection, bad), &reader)).await,
            422,
            "validation_failed",
        )
        .await;
        assert!(
            err["error"]["details"]["fields"]["remote_id"].is_array(),
            "{bad}"
        );
    }
}

/// Reads once so a copy exists, then breaks the provider `how` and reads fresh.
async fn stale_after(
    app: &TestApp,
    sims: &Sims,
    reader: &str,
    how: impl FnOnce(&Sims),
) -> reqwest::Response {
    let digits = first_periskope_digits(sims);
    let path = live_path(&sims.periskope, &digits);
    let first = send(app.get(&path, reader)).await;
    assert_eq!(first.status(), 200, "a copy exists before the fault");
    how(sims);
    send(app.get(&format!("{path}?fresh=true"), reader)).await
}

fn assert_stale(res: &reqwest::Response) {
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-cache"], "STALE");
    let age: u64 = res.headers()["age"]
        .to_str()
        .expect("age")
        .parse()
        .expect("seconds");
    assert!(age < 60, "{age}");
}

async fn a_failing_provider_is_answered_from_the_copy_as_stale(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.upstream_timeout_ms = 300).await;
    let sims = app.connect_sims(35, 40, json!({})).await;
    let reader = app.reader_key().await;
    // 5xx
    let res = stale_after(&app, &sims, &reader, |s| {
        s.set.periskope.set_faults(Faults {
            fail_next: 10,
            ..Faults::default()
        })
    })
    .await;
    assert_stale(&res);
    // timeout
    let res = stale_after(&app, &sims, &reader, |s| {
        s.set.periskope.set_faults(Faults {
            timeout_next: 10,
            ..Faults::default()
        })
    })
    .await;
    assert_stale(&res);
    // rate limit exhausted
    sims.set.periskope.set_faults(Faults::default());
    let res = stale_after(&app, &sims, &reader, |s| {
        s.set
            .periskope
            .set_rate_limit(Some(RateLimit::for_the_next_minute(0)))
    })
    .await;
    assert_stale(&res);
    sims.set.periskope.set_rate_limit(None);
    // circuit open: no upstream call at all
    let connection = app.connection(&Sims::id(&sims.periskope)).await;
    let (_, breaker) = app
        .state
        .providers
        .interactive(&connection)
        .expect("adapter");
    breaker.trip();
    let before = sims.set.periskope.requests().len();
    let digits = first_periskope_digits(&sims);
    let res = send(app.get(
        &format!("{}?fresh=true", live_path(&sims.periskope, &digits)),
        &reader,
    ))
    .await;
    assert_stale(&res);
    assert_eq!(
        sims.set.periskope.requests().len(),
        before,
        "the open circuit sends nothing"
    );

    // A copy in the store only (loaded by sync, never read live) serves as well.
    app.load(&sims.wacr).await;
    let id = sims
        .set
        .wacr
        .api()
        .with_store(|s| s.all().next().expect("one")["id"].to_string());
    sims.set.wacr.set_faults(Faults {
        fail_next: 10,
        ..Faults::default()
    });
    let res = send(app.get(&live_path(&sims.wacr, &id), &reader)).await;
    assert_stale(&res);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["remote_id"], id);
}

async fn without_a_copy_each_failure_has_its_status(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.upstream_timeout_ms = 300).await;
    let sims = app.connect_sims(36, 40, json!({})).await;
    let reader = app.reader_key().await;
    let gw = &sims.set.gateway;
    let mut people = sims.set.world.gateway_people();
    let mut next_lid = || people.next().expect("enough gateway people").lid.clone();

    // upstream 404
    let res = send(app.get(&live_path(&sims.gateway, "999999999999999@lid"), &reader)).await;
    assert_error(res, 404, "not_found").await;
    // timeout
    gw.set_faults(Faults {
        timeout_next: 10,
        ..Faults::default()
    });
    assert_error(
        send(app.get(&live_path(&sims.gateway, &next_lid()), &reader)).await,
        504,
        "upstream_timeout",
    )
    .await;
    // 5xx
    gw.set_faults(Faults {
        fail_next: 10,
        ..Faults::default()
    });
    assert_error(
        send(app.get(&live_path(&sims.gateway, &next_lid()), &reader)).await,
        502,
        "upstream_error",
    )
    .await;
    // limit exhausted
    gw.set_faults(Faults::default());
    gw.set_rate_limit(Some(RateLimit::for_the_next_minute(1)));
    assert_eq!(
        send(app.get(&live_path(&sims.gateway, &next_lid()), &reader))
            .await
            .status(),
        200
    );
    let res = send(app.get(&live_path(&sims.gateway, &next_lid()), &reader)).await;
    assert!(res.headers().contains_key("retry-after"));
    assert_error(res, 503, "upstream_unavailable").await;
    gw.set_rate_limit(None);
    // credentials refused → 502 that says so
    let res = send(app.patch(
        &format!(
            "/v1/admin/connections/{}?verify=false",
            Sims::id(&sims.gateway)
        ),
        &app.admin_key,
        &json!({"credentials": {"api_key": "revoked-key-0000000000"}}),
    ))
    .await;
    assert_eq!(res.status(), 200);
    let err = assert_error(
        send(app.get(&live_path(&sims.gateway, &next_lid()), &reader)).await,
        502,
        "upstream_error",
    )
    .await;
    assert!(
        err["error"]["message"]
            .as_str()
            .expect("message")
            .contains("credentials"),
        "{err}"
    );
    assert!(
        !err.to_string().contains("revoked-key"),
        "no secret in the error"
    );
    // circuit open, no copy
    let connection = app.connection(&Sims::id(&sims.periskope)).await;
    app.state
        .providers
        .interactive(&connection)
        .expect("adapter")
        .1
        .trip();
    let res = send(app.get(
        &live_path(&sims.periskope, &first_periskope_digits(&sims)),
        &reader,
    ))
    .await;
    assert!(res.headers().contains_key("retry-after"));
    assert_error(res, 503, "upstream_unavailable").await;
}

async fn a_changed_connection_drops_its_cached_contacts(backend: Backend) {
    let app = spawn_app(backend).await;
    let sims = app.connect_sims(37, 40, json!({})).await;
    let reader = app.reader_key().await;
    let path = live_path(&sims.periskope, &first_periskope_digits(&sims));
    send(app.get(&path, &reader)).await;
    assert_eq!(
        send(app.get(&path, &reader)).await.headers()["x-cache"],
        "HIT"
    );
    let res = send(app.patch(
        &format!("/v1/admin/connections/{}", Sims::id(&sims.periskope)),
        &app.admin_key,
        &json!({"settings": {"cache_ttl_seconds": 30}}),
    ))
    .await;
    assert_eq!(res.status(), 200);
    let res = send(app.get(&path, &reader)).await;
    assert_eq!(res.headers()["x-cache"], "MISS");
    assert_eq!(res.headers()["cache-control"], "private, max-age=30");
    let res = send(app.delete(
        &format!("/v1/admin/connections/{}", Sims::id(&sims.periskope)),
        &app.admin_key,
    ))
    .await;
    assert_eq!(res.status(), 204);
    assert_error(send(app.get(&path, &reader)).await, 404, "not_found").await;
}

async fn another_orgs_connection_is_404(backend: Backend) {
    let app = spawn_app(backend).await;
    let sims = app.connect_sims(38, 20, json!({})).await;
    let (_, stranger) = app.create_key("other-org", &[Scope::ContactsRead]).await;
    let path = live_path(&sims.periskope, &first_periskope_digits(&sims));
    // The credentials check of its creation aside.
    sims.set.periskope.clear_requests();
    assert_error(send(app.get(&path, &stranger)).await, 404, "not_found").await;
    assert!(
        sims.set.periskope.requests().is_empty(),
        "nothing was asked upstream"
    );
}

async fn a_key_over_its_quota_gets_429_with_the_rate_headers(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.rate_limit_per_second = 1;
        s.rate_limit_burst = 3;
    })
    .await;
    let reader = app.reader_key().await;
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let res = send(app.get("/v1/contacts", &reader)).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["x-ratelimit-limit"], "3");
        remaining.push(
            res.headers()["x-ratelimit-remaining"]
                .to_str()
                .expect("n")
                .to_string(),
        );
        let reset: u64 = res.headers()["x-ratelimit-reset"]
            .to_str()
            .expect("n")
            .parse()
            .expect("epoch");
        assert!(reset > 1_700_000_000, "epoch seconds: {reset}");
    }
    assert_eq!(remaining, vec!["2", "1", "0"]);
    let res = send(app.get("/v1/contacts", &reader)).await;
    assert_eq!(res.headers()["x-ratelimit-remaining"], "0");
    let wait: u64 = res.headers()["retry-after"]
        .to_str()
        .expect("n")
        .parse()
        .expect("seconds");
    assert!((1..=2).contains(&wait), "{wait}");
    assert_error(res, 429, "rate_limited").await;
    // Per key: another key of the same org is not affected.
    let other = app.reader_key().await;
    assert_eq!(send(app.get("/v1/contacts", &other)).await.status(), 200);
}

/// A stored row we cannot read is a bug on our side: 500 `internal`, nothing of
/// the row or the cause in the body (it goes to the log), whether it is read by
/// id or met on the live-read path (which once answered 503 for it).
async fn a_corrupt_stored_contact_is_a_500_that_keeps_its_cause_out_of_the_body(backend: Backend) {
    let app = spawn_app(backend).await;
    let sims = app.connect_sims(36, 20, json!({})).await;
    let reader = app.reader_key().await;
    let digits = first_periskope_digits(&sims);
    let path = live_path(&sims.periskope, &digits);
    let res = send(app.get(&path, &reader)).await;
    assert_eq!(res.status(), 200);
    let id = res.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let target = id.clone();
    app.store
        .run(move |conn| {
            use diesel::prelude::*;
            use unicontacts::store::schema::contacts;
            // The content hash stays, so the provider's same answer is "unchanged".
            diesel::update(contacts::table.filter(contacts::id.eq(target)))
                .set(contacts::record.eq("{not json: secret-ish}"))
                .execute(conn)?;
            Ok(())
        })
        .await
        .expect("corrupt");
    for path in [format!("/v1/contacts/{id}"), format!("{path}?fresh=true")] {
        let body = assert_error(send(app.get(&path, &reader)).await, 500, "internal").await;
        assert!(!body.to_string().contains("secret-ish"), "{body}");
        assert!(!body.to_string().contains("json"), "{body}");
    }
}

/// `include=remote_data` as on `GET /v1/contacts/{id}`: the provider's object
/// beside the canonical contact, whether the copy came from the provider or the cache.
async fn a_live_read_includes_the_providers_object_when_asked(backend: Backend) {
    let app = spawn_app(backend).await;
    let sims = app.connect_sims(37, 20, json!({})).await;
    let reader = app.reader_key().await;
    let digits = first_periskope_digits(&sims);
    let path = live_path(&sims.periskope, &digits);
    let plain: Value = send(app.get(&path, &reader))
        .await
        .json()
        .await
        .expect("json");
    assert!(plain["remote_data"].is_null(), "{plain}");
    for _ in 0..2 {
        let res = send(app.get(&format!("{path}?include=remote_data"), &reader)).await;
        assert_eq!(res.status(), 200);
        let full: Value = res.json().await.expect("json");
        assert_eq!(
            full["remote_data"]["contact_id"],
            format!("{digits}@c.us"),
            "{full}"
        );
        assert_eq!(full["id"], plain["id"]);
    }
    let body = assert_error(
        send(app.get(&format!("{path}?include=everything"), &reader)).await,
        422,
        "validation_failed",
    )
    .await;
    assert!(
        body["error"]["details"]["fields"]["include"].is_array(),
        "{body}"
    );
}

/// The stored contact's company as `GET /v1/contacts/{id}` answers it at `base`.
async fn stored_company(base: &str, id: &str, key: &str) -> Value {
    json_at(base, &format!("/v1/contacts/{id}"), key).await["company"].clone()
}

async fn a_stored_contact_read_again_shows_every_write(backend: Backend) {
    let app = spawn_app(backend).await;
    let sims = app.connect_sims(39, 20, json!({})).await;
    app.load(&sims.wacr).await;
    let reader = app.reader_key().await;
    let other = app.spawn_beside(|s| s.scheduler_tick_ms = 0).await;
    let contact = app.stored_contacts(&sims.wacr).await[0].clone();
    let (id, remote) = (
        contact["id"].as_str().expect("id").to_string(),
        contact["remote_id"]
            .as_str()
            .expect("remote id")
            .to_string(),
    );
    let remote_num: i64 = remote.parse().expect("a WA.cr id");
    let set_company = |name: &'static str| {
        sims.set.wacr.api().with_store(|s| {
            s.get_mut(remote_num).expect("contact")["company"] = json!(name);
        });
    };
    let refresh = |base: String| {
        let (path, reader) = (
            format!("{base}{}?fresh=true", live_path(&sims.wacr, &remote)),
            reader.clone(),
        );
        async move {
            let res = send(reqwest::Client::new().get(path).bearer_auth(reader)).await;
            assert_eq!(res.status(), 200);
        }
    };
    // Read twice (the second from memory), written here, read at once.
    for company in ["Written Here Ltd", "Written Here Again Ltd"] {
        stored_company(&app.address, &id, &reader).await;
        stored_company(&app.address, &id, &reader).await;
        set_company(company);
        refresh(app.address.clone()).await;
        assert_eq!(stored_company(&app.address, &id, &reader).await, company);
    }
    // Written by another process: shown here within a second (its notice, or
    // the copy's age), and there at once.
    set_company("Written Elsewhere Ltd");
    refresh(other.clone()).await;
    assert_eq!(
        stored_company(&other, &id, &reader).await,
        "Written Elsewhere Ltd"
    );
    let started = std::time::Instant::now();
    while stored_company(&app.address, &id, &reader).await != "Written Elsewhere Ltd" {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "another process's write is not shown here"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

crate::db_tests!(
    a_stored_contact_read_again_shows_every_write,
    a_live_read_includes_the_providers_object_when_asked,
    a_corrupt_stored_contact_is_a_500_that_keeps_its_cause_out_of_the_body,
    a_miss_then_a_hit_with_a_strong_etag_and_304,
    a_hundred_concurrent_misses_make_one_upstream_call,
    entries_expire_after_the_connection_ttl_and_fresh_skips_the_cache,
    remote_ids_are_accepted_in_the_forms_people_have_them,
    a_failing_provider_is_answered_from_the_copy_as_stale,
    without_a_copy_each_failure_has_its_status,
    a_changed_connection_drops_its_cached_contacts,
    another_orgs_connection_is_404,
    a_key_over_its_quota_gets_429_with_the_rate_headers,
    live_reads_and_syncs_do_not_undo_each_other,
    etags_follow_the_content_not_the_fetch,
);

/// Every stored contact of the connection: its remote id.
async fn remote_ids(app: &TestApp, connection: &Value) -> Vec<String> {
    app.stored_contacts(connection)
        .await
        .iter()
        .map(|c| c["remote_id"].as_str().expect("remote id").to_string())
        .collect()
}

async fn live_reads_and_syncs_do_not_undo_each_other(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.rate_limit_per_second = 100_000;
        s.rate_limit_burst = 100_000;
    })
    .await;
    let sims = app.connect_sims(61, 60, json!({})).await;
    let reader = app.reader_key().await;
    for connection in [&sims.periskope, &sims.wacr, &sims.gateway] {
        app.load(connection).await;
        let ids = remote_ids(&app, connection).await;
        assert!(ids.len() > 5, "{}", ids.len());
        // A fresh live read of every contact stores what the detail answer says.
        let mut detail = Vec::new();
        for id in &ids {
            let res = send(app.get(
                &format!("{}?fresh=true", live_path(connection, id)),
                &reader,
            ))
            .await;
            assert_eq!(res.status(), 200);
            detail.push(res.json::<Value>().await.expect("json"));
        }
        for round in 0..2 {
            let run = app.sync_now(connection).await;
            assert_eq!(run["status"], "succeeded", "{run}");
            assert_eq!(
                (
                    run["counts"]["created"].as_i64(),
                    run["counts"]["updated"].as_i64()
                ),
                (Some(0), Some(0)),
                "{} round {round}: {run}",
                connection["provider"]
            );
        }
        if connection["provider"] == "periskope" {
            // The detail carried what the list does not: the test can fail.
            let more = detail
                .iter()
                .filter(|d| {
                    d["has_direct_chat"].is_boolean()
                        || d["memberships"].as_array().is_some_and(|m| !m.is_empty())
                })
                .count();
            assert!(more > 0, "no Periskope detail carried chats");
            // An edit the list shows: updated, and what only the detail knew kept.
            let with_groups = detail
                .iter()
                .find(|d| d["memberships"].as_array().is_some_and(|m| !m.is_empty()))
                .expect("a contact in a group");
            let digits = with_groups["remote_id"]
                .as_str()
                .expect("remote id")
                .trim_end_matches("@c.us")
                .to_string();
            sims.set.periskope.api().with_store(|s| {
                let mut c = s.get(&digits).expect("in the sim").clone();
                c["contact_name"] = json!("Renamed Upstream");
                s.upsert(c);
            });
            let run = app.sync_now(connection).await;
            assert_eq!(run["counts"]["updated"], 1, "{run}");
            let id = with_groups["id"].as_str().expect("id");
            let stored: Value = send(app.get(&format!("/v1/contacts/{id}"), &reader))
                .await
                .json()
                .await
                .expect("json");
            assert_eq!(stored["display_name"], "Renamed Upstream");
            assert_eq!(stored["memberships"], with_groups["memberships"]);
            assert_eq!(stored["has_direct_chat"], with_groups["has_direct_chat"]);
            continue;
        }
        // What only the detail carries is still there.
        for d in &detail {
            let id = d["id"].as_str().expect("id");
            let stored: Value = send(app.get(&format!("/v1/contacts/{id}"), &reader))
                .await
                .json()
                .await
                .expect("json");
            for field in ["memberships", "has_direct_chat"] {
                assert_eq!(stored[field], d[field], "{id} {field}");
            }
        }
    }
}
