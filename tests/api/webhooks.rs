//! Signed webhooks: a receiver in the test (an HTTP server on a random port)
//! checks every delivery's signature with the Standard Webhooks algorithm,
//! written here from the spec (not our signer), and records what arrived.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::sync::watch;
use unicontacts::config::Settings;
use unicontacts::service::api_keys::Scope;

use crate::helpers::{assert_error, send, spawn_app_with, Backend, Sims, TestApp};
use crate::processes::Replica;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Hit {
    pub path: String,
    id: String,
    timestamp: i64,
    signature: String,
    body: String,
    at: Instant,
    answered: u16,
}

impl Hit {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

#[derive(Default)]
struct Inner {
    hits: Vec<Hit>,
    /// Answers to give first (status, Retry-After), then `default`.
    script: VecDeque<(u16, Option<&'static str>)>,
    default: u16,
    delay: Duration,
    in_flight: HashSet<String>,
    /// Requests for an id at a path that arrived while another was in flight.
    overlaps: usize,
}

#[derive(Clone)]
pub struct Receiver {
    base: String,
    inner: Arc<Mutex<Inner>>,
    count: watch::Receiver<usize>,
}

async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    data: web::Data<(Arc<Mutex<Inner>>, watch::Sender<usize>)>,
) -> HttpResponse {
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let id = header("webhook-id");
    let (answer, retry_after, delay) = {
        let mut inner = data.0.lock().expect("lock");
        if !inner.in_flight.insert(format!("{} {id}", req.path())) {
            inner.overlaps += 1;
        }
        let (status, retry) = inner.script.pop_front().unwrap_or((inner.default, None));
        (status, retry, inner.delay)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    {
        let mut inner = data.0.lock().expect("lock");
        inner.in_flight.remove(&format!("{} {id}", req.path()));
        inner.hits.push(Hit {
            path: req.path().to_string(),
            timestamp: header("webhook-timestamp").parse().unwrap_or(0),
            signature: header("webhook-signature"),
            body: String::from_utf8_lossy(&body).into_owned(),
            at: Instant::now(),
            answered: answer,
            id,
        });
        let n = inner.hits.len();
        data.1.send_replace(n);
    }
    let mut res =
        HttpResponse::build(actix_web::http::StatusCode::from_u16(answer).expect("status"));
    if let Some(r) = retry_after {
        res.insert_header(("retry-after", r));
    }
    res.body("ok")
}

impl Receiver {
    pub async fn start(default: u16) -> Receiver {
        let inner = Arc::new(Mutex::new(Inner {
            default,
            ..Inner::default()
        }));
        let (tx, rx) = watch::channel(0usize);
        let data = web::Data::new((inner.clone(), tx));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(receive))
        })
        .workers(2)
        .bind("127.0.0.1:0")
        .expect("bind");
        let port = server.addrs()[0].port();
        tokio::spawn(server.run());
        Receiver {
            base: format!("http://127.0.0.1:{port}"),
            inner,
            count: rx,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn set(&self, f: impl FnOnce(&mut Inner)) {
        f(&mut self.inner.lock().expect("lock"));
    }

    fn hits(&self) -> Vec<Hit> {
        self.inner.lock().expect("lock").hits.clone()
    }

    fn overlaps(&self) -> usize {
        self.inner.lock().expect("lock").overlaps
    }

    /// Waits (up to `within`) until `done` holds for the hits so far.
    pub async fn until(&self, within: Duration, done: impl Fn(&[Hit]) -> bool) -> Vec<Hit> {
        let mut count = self.count.clone();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let hits = self.hits();
            if done(&hits) {
                return hits;
            }
            if tokio::time::timeout_at(deadline, count.changed())
                .await
                .is_err()
            {
                panic!(
                    "the receiver did not get what was awaited in {within:?}; it got {} requests: {:?}",
                    hits.len(),
                    hits.iter().map(|h| (&h.id, h.answered)).collect::<Vec<_>>()
                );
            }
        }
    }
}

/// Standard Webhooks verification, from the spec: the HMAC-SHA256 of
/// `{id}.{timestamp}.{body}` under the base64-decoded secret (after `whsec_`),
/// base64, as `v1,<sig>`; the header may carry several, space-separated.
pub fn verifies(secret: &str, hit: &Hit) -> bool {
    let key = B64
        .decode(secret.strip_prefix("whsec_").expect("whsec_ secret"))
        .expect("base64 secret");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("key");
    mac.update(format!("{}.{}.{}", hit.id, hit.timestamp, hit.body).as_bytes());
    let expected = format!("v1,{}", B64.encode(mac.finalize().into_bytes()));
    hit.signature.split(' ').any(|s| s == expected)
}

fn open_targets(s: &mut Settings) {
    s.webhook_poll_ms = 20;
    s.webhook_allow_http = true;
    s.webhook_allow_private_targets = true;
    s.rate_limit_per_second = 100_000;
    s.rate_limit_burst = 100_000;
}

/// Creates an endpoint; returns its JSON (with the secret).
async fn create_endpoint(app: &TestApp, body: Value) -> Value {
    let res = send(app.post("/v1/admin/webhooks", &app.admin_key, &body)).await;
    assert_eq!(res.status(), 201, "create webhook");
    assert_eq!(res.headers()["cache-control"], "no-store");
    res.json().await.expect("json")
}

/// The whole feed, in order.
async fn feed(app: &TestApp) -> Vec<Value> {
    let reader = app.reader_key().await;
    let mut out: Vec<Value> = Vec::new();
    loop {
        let after = out
            .last()
            .map(|e| e["id"].as_str().expect("id").to_string())
            .unwrap_or_else(|| "evt_0000000000000000".into());
        let page: Value = send(app.get(&format!("/v1/events?limit=500&after={after}"), &reader))
            .await
            .json()
            .await
            .expect("json");
        let data = page["data"].as_array().expect("data").clone();
        if data.is_empty() {
            return out;
        }
        out.extend(data);
    }
}

/// The ids of the hits answered 2xx, in arrival order.
fn delivered_ids(hits: &[Hit]) -> Vec<String> {
    hits.iter()
        .filter(|h| (200..300).contains(&h.answered))
        .map(|h| h.id.clone())
        .collect()
}

fn ids_of(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_string())
        .collect()
}

async fn endpoint(app: &TestApp, id: &str) -> Value {
    send(app.get(&format!("/v1/admin/webhooks/{id}"), &app.admin_key))
        .await
        .json()
        .await
        .expect("json")
}

/// The endpoint once `done` holds for it (asked every 10 ms, for up to 20 s):
/// the worker's progress is not an event the test can await otherwise.
async fn endpoint_once(app: &TestApp, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let state = endpoint(app, id).await;
        if done(&state) {
            return state;
        }
        assert!(
            Instant::now() < deadline,
            "the endpoint never got there: {state}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every delivery of an endpoint (newest first).
async fn deliveries(app: &TestApp, id: &str, query: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let res = send(app.get(
            &format!("/v1/admin/webhooks/{id}/deliveries?limit=500{query}{cursor}"),
            &app.admin_key,
        ))
        .await;
        assert_eq!(res.status(), 200);
        let page: Value = res.json().await.expect("json");
        out.extend(page["data"].as_array().expect("data").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => return out,
        }
    }
}

async fn events_reach_the_endpoint_signed_and_in_feed_order(backend: Backend) {
    let app = spawn_app_with(backend, open_targets).await;
    let receiver = Receiver::start(200).await;
    let created = create_endpoint(
        &app,
        json!({"url": receiver.url("/hook"), "description": "test"}),
    )
    .await;
    let secret = created["secret"].as_str().expect("secret").to_string();
    assert!(secret.starts_with("whsec_") && B64.decode(&secret[6..]).expect("b64").len() >= 24);
    let id = created["id"].as_str().expect("id").to_string();
    assert_eq!(created["enabled"], true);
    assert_eq!(created["all_event_types"], true);
    // The secret is never shown again.
    for path in [
        format!("/v1/admin/webhooks/{id}"),
        "/v1/admin/webhooks".to_string(),
    ] {
        let text = send(app.get(&path, &app.admin_key))
            .await
            .text()
            .await
            .expect("text");
        assert!(
            !text.contains(&secret) && !text.contains("whsec_"),
            "{text}"
        );
    }

    // Creates, an upstream edit, a deletion, a revival, a write through the API,
    // and the people the other providers' contacts join.
    let sims = app
        .connect_sims(
            81,
            25,
            json!({"default_status_id": 1, "default_source_id": 1, "default_kind": "lead"}),
        )
        .await;
    let wacr = Sims::id(&sims.wacr);
    app.sync_now(&sims.wacr).await;
    let remote = sims.set.wacr.api().with_store(|s| {
        s.all().next().expect("a contact")["id"]
            .as_i64()
            .expect("id")
    });
    sims.set.wacr.api().with_store(|s| {
        s.get_mut(remote).expect("contact")["company"] = json!("Hooked Ltd");
    });
    app.sync_now(&sims.wacr).await;
    let removed = sims
        .set
        .wacr
        .api()
        .with_store(|s| s.remove(remote).expect("contact"));
    app.sync_now(&sims.wacr).await;
    sims.set.wacr.api().with_store(|s| s.restore(removed));
    app.sync_now(&sims.wacr).await;
    let writer = app
        .create_key("test-org", &[Scope::ContactsRead, Scope::ContactsWrite])
        .await
        .1;
    let res = send(app.post(
        &format!("/v1/connections/{wacr}/contacts"),
        &writer,
        &json!({"first_name": "Web", "last_name": "Hook", "phone": "+91 98111 22381"}),
    ))
    .await;
    assert_eq!(res.status(), 201);
    app.sync_now(&sims.periskope).await;
    app.sync_now(&sims.gateway).await;

    let events = feed(&app).await;
    let types: HashSet<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    for t in [
        "contact.created",
        "contact.updated",
        "contact.deleted",
        "contact.restored",
        "person.created",
        "sync_run.finished",
    ] {
        assert!(types.contains(t), "{t} in {types:?}");
    }
    let hits = receiver
        .until(Duration::from_secs(60), |h| {
            delivered_ids(h).len() >= events.len()
        })
        .await;
    // Exactly the feed, in its order, each once, each signed.
    assert_eq!(delivered_ids(&hits), ids_of(&events));
    for (hit, event) in hits.iter().zip(&events) {
        assert!(verifies(&secret, hit), "signature of {}", hit.id);
        assert_eq!(hit.path, "/hook");
        let body = hit.json();
        assert_eq!(body["type"], event["type"]);
        assert_eq!(body["timestamp"], event["occurred_at"]);
        assert_eq!(body["data"], event["data"]);
        assert!((hit.timestamp - chrono::Utc::now().timestamp()).abs() < 120);
    }
    let update = hits
        .iter()
        .map(Hit::json)
        .find(|b| b["type"] == "contact.updated" && b["data"]["cause"] == "sync")
        .expect("an update");
    assert_eq!(update["data"]["changed_fields"], json!(["company"]));
    // Signatures are not forgeable with another secret.
    assert!(!verifies(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        &hits[0]
    ));

    // The delivery log has each (once the last is recorded), delivered at the
    // first attempt.
    let last = events.last().expect("events")["id"].clone();
    let state = endpoint_once(&app, &id, |s| s["last_event_id"] == last).await;
    let log = deliveries(&app, &id, "&status=delivered").await;
    assert_eq!(log.len(), events.len());
    assert!(log.iter().all(|d| d["attempts"] == 1
        && d["last_status_code"] == 200
        && d["status"] == "delivered"
        && d["last_latency_ms"].is_number()));
    assert_eq!(state["failed_attempts"], 0);
}

async fn a_receiver_that_was_down_gets_every_event_in_order(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        open_targets(s);
        s.webhook_retry_schedule_ms = vec![50; 10];
    })
    .await;
    let receiver = Receiver::start(200).await;
    // Down: a 503 asking for a second, three more 503s, then up.
    receiver.set(|r| {
        r.script = VecDeque::from([(503, Some("1")), (503, None), (503, None), (503, None)]);
    });
    let created = create_endpoint(&app, json!({"url": receiver.url("/in")})).await;
    let id = created["id"].as_str().expect("id").to_string();
    let sims = app.connect_sims(82, 12, json!({})).await;
    app.sync_now(&sims.wacr).await;
    let events = feed(&app).await;
    let hits = receiver
        .until(Duration::from_secs(60), |h| {
            delivered_ids(h).len() >= events.len()
        })
        .await;
    assert_eq!(delivered_ids(&hits), ids_of(&events));
    // The first event was tried five times with one id, the later ones held back.
    let first = &events[0]["id"];
    assert!(hits[..5]
        .iter()
        .all(|h| h.id == first.as_str().expect("id")));
    assert_eq!(
        hits[..5].iter().map(|h| h.answered).collect::<Vec<_>>(),
        vec![503, 503, 503, 503, 200]
    );
    // Retry-After honoured over the 50 ms schedule.
    assert!(
        hits[1].at - hits[0].at >= Duration::from_millis(900),
        "{:?}",
        hits[1].at - hits[0].at
    );
    let log = deliveries(&app, &id, "").await;
    let first_delivery = log
        .iter()
        .find(|d| d["event_id"] == *first)
        .expect("first delivery");
    assert_eq!(first_delivery["attempts"], 5);
    assert_eq!(first_delivery["status"], "delivered");

    // Replay one delivery: sent again with its id.
    let did = first_delivery["id"].as_str().expect("id");
    let res = send(app.post(
        &format!("/v1/admin/webhooks/{id}/deliveries/{did}/replay"),
        &app.admin_key,
        &json!({}),
    ))
    .await;
    assert_eq!(res.status(), 200);
    let replayed: Value = res.json().await.expect("json");
    assert_eq!(replayed["attempts"], 6);
    assert_eq!(replayed["status"], "delivered");
    let n = hits.len();
    let hits = receiver
        .until(Duration::from_secs(10), |h| h.len() > n)
        .await;
    assert_eq!(hits[n].id, first.as_str().expect("id"));

    // Recover since the first event: every event goes again, in order.
    let since = events[0]["occurred_at"].as_str().expect("time");
    let res = send(app.post(
        &format!("/v1/admin/webhooks/{id}/recover"),
        &app.admin_key,
        &json!({"since": since}),
    ))
    .await;
    assert_eq!(res.status(), 202);
    let n = hits.len();
    let hits = receiver
        .until(Duration::from_secs(60), |h| h.len() >= n + events.len())
        .await;
    assert_eq!(delivered_ids(&hits[n..]), ids_of(&events));
    // Bad recoveries and replays.
    let err = assert_error(
        send(app.post(
            &format!("/v1/admin/webhooks/{id}/recover"),
            &app.admin_key,
            &json!({"since": "yesterday"}),
        ))
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert!(
        err["error"]["details"]["fields"]["since"].is_array(),
        "{err}"
    );
    let err = assert_error(
        send(app.get(
            &format!("/v1/admin/webhooks/{id}/deliveries?status=lost"),
            &app.admin_key,
        ))
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert!(
        err["error"]["details"]["fields"]["status"].is_array(),
        "{err}"
    );
    assert_error(
        send(app.post(
            &format!("/v1/admin/webhooks/{id}/deliveries/dlv_nope/replay"),
            &app.admin_key,
            &json!({}),
        ))
        .await,
        404,
        "not_found",
    )
    .await;
}

async fn gone_or_failing_too_long_disables_the_endpoint(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        open_targets(s);
        s.webhook_retry_schedule_ms = vec![100; 100];
        s.webhook_disable_after_seconds = 1;
    })
    .await;
    let gone = Receiver::start(410).await;
    let failing = Receiver::start(500).await;
    let g = create_endpoint(&app, json!({"url": gone.url("/g")})).await;
    let f = create_endpoint(&app, json!({"url": failing.url("/f")})).await;
    let (gid, fid) = (
        g["id"].as_str().expect("id").to_string(),
        f["id"].as_str().expect("id").to_string(),
    );
    let sims = app.connect_sims(83, 8, json!({})).await;
    app.sync_now(&sims.wacr).await;
    let events = feed(&app).await;

    // 410: disabled at the first answer.
    gone.until(Duration::from_secs(30), |h| !h.is_empty()).await;
    let state = endpoint_once(&app, &gid, |s| s["enabled"] == false).await;
    assert!(
        state["disabled_reason"]
            .as_str()
            .is_some_and(|r| r.contains("410")),
        "{state}"
    );
    assert_eq!(gone.hits().len(), 1);
    let log = deliveries(&app, &gid, "&status=failed").await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["last_status_code"], 410);

    // 500 for more than the allowed second: disabled, with its failures on record.
    let state = endpoint_once(&app, &fid, |s| s["enabled"] == false).await;
    assert!(
        state["disabled_reason"]
            .as_str()
            .is_some_and(|r| r.contains("failing since")),
        "{state}"
    );
    let tries = failing.hits();
    assert!(tries.len() >= 3, "{}", tries.len());
    assert!(tries
        .iter()
        .all(|h| h.id == events[0]["id"].as_str().expect("id")));
    assert!(tries.last().expect("hit").at - tries[0].at >= Duration::from_millis(900));

    // Enabled again with the receiver back: delivery resumes at the same event.
    gone.set(|r| r.default = 200);
    let res = send(app.patch(
        &format!("/v1/admin/webhooks/{gid}"),
        &app.admin_key,
        &json!({"enabled": true}),
    ))
    .await;
    assert_eq!(res.status(), 200);
    let back: Value = res.json().await.expect("json");
    assert_eq!(back["disabled_reason"], Value::Null);
    let hits = gone
        .until(Duration::from_secs(60), |h| {
            delivered_ids(h).len() >= events.len()
        })
        .await;
    assert_eq!(delivered_ids(&hits), ids_of(&events));
}

async fn a_rotated_secret_signs_beside_the_new_one(backend: Backend) {
    let app = spawn_app_with(backend, open_targets).await;
    let receiver = Receiver::start(200).await;
    let created = create_endpoint(
        &app,
        json!({"url": receiver.url("/r"), "event_types": ["contact.created"]}),
    )
    .await;
    let id = created["id"].as_str().expect("id").to_string();
    let old = created["secret"].as_str().expect("secret").to_string();
    assert_eq!(created["event_types"], json!(["contact.created"]));
    let res = send(app.post(
        &format!("/v1/admin/webhooks/{id}/rotate-secret"),
        &app.admin_key,
        &json!({}),
    ))
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let rotated: Value = res.json().await.expect("json");
    let new = rotated["secret"].as_str().expect("secret").to_string();
    assert_ne!(new, old);
    let until = chrono::DateTime::parse_from_rfc3339(
        rotated["previous_secret_expires_at"]
            .as_str()
            .expect("until"),
    )
    .expect("time");
    let hours = (until.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_minutes();
    assert!((23 * 60..=24 * 60).contains(&hours), "{hours}");

    let sims = app.connect_sims(84, 6, json!({})).await;
    app.sync_now(&sims.wacr).await;
    let creates: Vec<Value> = feed(&app)
        .await
        .into_iter()
        .filter(|e| e["type"] == "contact.created")
        .collect();
    let hits = receiver
        .until(Duration::from_secs(60), |h| {
            delivered_ids(h).len() >= creates.len()
        })
        .await;
    // Only its type, and each signed by both secrets during the overlap.
    assert_eq!(delivered_ids(&hits), ids_of(&creates));
    for hit in &hits {
        assert_eq!(hit.signature.split(' ').count(), 2, "{}", hit.signature);
        assert!(verifies(&old, hit) && verifies(&new, hit));
    }
}

async fn webhook_targets_and_input_are_checked(backend: Backend) {
    // The default policy: https only, public addresses only.
    let app = spawn_app_with(backend, |_| {}).await;
    for (url, why) in [
        ("http://93.184.216.34/hook", "https"),
        ("https://127.0.0.1/hook", "loopback"),
        ("https://10.0.0.7/hook", "private"),
        ("https://[::1]/hook", "loopback"),
        ("https://169.254.169.254/latest/meta-data", "metadata"),
        ("https://localhost:8443/hook", "loopback"),
        ("https://user:pw@93.184.216.34/hook", "credentials"),
        ("ftp://93.184.216.34/hook", "https"),
        ("not a url", "absolute"),
    ] {
        let err = assert_error(
            send(app.post("/v1/admin/webhooks", &app.admin_key, &json!({"url": url}))).await,
            422,
            "validation_failed",
        )
        .await;
        let said = err["error"]["details"]["fields"]["url"].to_string();
        assert!(said.contains(why), "{url}: {said}");
    }
    // Every problem at once, nothing stored.
    let err = assert_error(
        send(app.post(
            "/v1/admin/webhooks",
            &app.admin_key,
            &json!({"url": "http://127.0.0.1/x", "event_types": ["contact.exploded"], "description": "x".repeat(501)}),
        ))
        .await,
        422,
        "validation_failed",
    )
    .await;
    for f in ["url", "event_types[0]", "description"] {
        assert!(
            err["error"]["details"]["fields"][f].is_array(),
            "{f}: {err}"
        );
    }
    let list: Value = send(app.get("/v1/admin/webhooks", &app.admin_key))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(list["data"], json!([]));

    // Private targets allowed: the metadata address still is not, nor a
    // redirect-free check bypass through http.
    let open = spawn_app_with(Backend::Sqlite, open_targets).await;
    let err = assert_error(
        send(open.post(
            "/v1/admin/webhooks",
            &open.admin_key,
            &json!({"url": "http://169.254.169.254/latest"}),
        ))
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert!(err["error"]["details"]["fields"]["url"]
        .to_string()
        .contains("metadata"));
    let made = create_endpoint(&open, json!({"url": "http://127.0.0.1:9/hook"})).await;
    let id = made["id"].as_str().expect("id");
    // Another org's admin sees nothing of it; a reader may not look.
    let (_, other) = open.create_key("other-org", &[Scope::Admin]).await;
    for req in [
        open.get(&format!("/v1/admin/webhooks/{id}"), &other),
        open.patch(
            &format!("/v1/admin/webhooks/{id}"),
            &other,
            &json!({"enabled": false}),
        ),
        open.delete(&format!("/v1/admin/webhooks/{id}"), &other),
        open.get(&format!("/v1/admin/webhooks/{id}/deliveries"), &other),
        open.post(
            &format!("/v1/admin/webhooks/{id}/rotate-secret"),
            &other,
            &json!({}),
        ),
    ] {
        assert_error(send(req).await, 404, "not_found").await;
    }
    let reader = open.reader_key().await;
    assert_error(
        send(open.get("/v1/admin/webhooks", &reader)).await,
        403,
        "forbidden",
    )
    .await;
    // PATCH checks the same way; DELETE removes it.
    let err = assert_error(
        send(open.patch(
            &format!("/v1/admin/webhooks/{id}"),
            &open.admin_key,
            &json!({"url": "https://169.254.169.254/", "event_types": ["nope"]}),
        ))
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert!(
        err["error"]["details"]["fields"]["event_types[0]"].is_array(),
        "{err}"
    );
    let res = send(open.delete(&format!("/v1/admin/webhooks/{id}"), &open.admin_key)).await;
    assert_eq!(res.status(), 204);
    assert_error(
        send(open.get(&format!("/v1/admin/webhooks/{id}"), &open.admin_key)).await,
        404,
        "not_found",
    )
    .await;
}

/// Two `unicontacts serve` processes deliver to three endpoints: no event is
/// sent twice at once; one killed with SIGKILL mid-stream loses nothing (after
/// its leases expire, a restarted process and the other deliver the rest).
async fn processes_share_delivery_and_a_killed_one_loses_nothing(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        open_targets(s);
        // This process makes the events; the children deliver them.
        s.webhook_poll_ms = 0;
    })
    .await;
    let receiver = Receiver::start(200).await;
    receiver.set(|r| r.delay = Duration::from_millis(15));
    let paths = ["/a", "/b", "/c"];
    for p in paths {
        create_endpoint(&app, json!({"url": receiver.url(p)})).await;
    }
    let sims = app.connect_sims(85, 60, json!({})).await;
    app.sync_now(&sims.wacr).await;
    let events = ids_of(&feed(&app).await);
    let env = [
        ("UNICONTACTS_WEBHOOK_POLL_MS", "20"),
        ("UNICONTACTS_WEBHOOK_ALLOW_HTTP", "true"),
        ("UNICONTACTS_WEBHOOK_ALLOW_PRIVATE_TARGETS", "true"),
    ];
    let mut first = Replica::start(&app.db, "", &env);
    receiver
        .until(Duration::from_secs(60), |h| h.len() >= 20)
        .await;
    first.kill();
    let before_restart = receiver.hits().len();
    assert!(before_restart < 3 * events.len(), "killed too late to tell");
    let _second = Replica::start(&app.db, "", &env);
    let _third = Replica::start(&app.db, "", &env);
    let hits = receiver
        .until(Duration::from_secs(120), |h| {
            paths.iter().all(|p| {
                h.iter()
                    .filter(|x| x.path == *p)
                    .map(|x| &x.id)
                    .collect::<HashSet<_>>()
                    .len()
                    >= events.len()
            })
        })
        .await;
    assert_eq!(receiver.overlaps(), 0, "an event was sent twice at once");
    for p in paths {
        let got: Vec<String> = hits
            .iter()
            .filter(|h| h.path == p)
            .map(|h| h.id.clone())
            .collect();
        // Every event, in order; at most the one in flight at the kill twice.
        let mut firsts = got.clone();
        firsts.dedup();
        assert_eq!(firsts, events, "{p}");
        assert!(got.len() <= events.len() + 1, "{p}: {} sent", got.len());
    }
}

crate::db_tests!(
    events_reach_the_endpoint_signed_and_in_feed_order,
    a_receiver_that_was_down_gets_every_event_in_order,
    gone_or_failing_too_long_disables_the_endpoint,
    a_rotated_secret_signs_beside_the_new_one,
    webhook_targets_and_input_are_checked,
);

/// The processes test runs alone (not beside the in-process tests), on both backends.
mod processes {
    use crate::helpers::{processes_alone, Backend};

    #[tokio::test]
    async fn sqlite_processes_share_delivery_and_a_killed_one_loses_nothing() {
        let _alone = processes_alone().await;
        super::processes_share_delivery_and_a_killed_one_loses_nothing(Backend::Sqlite).await;
    }

    #[tokio::test]
    async fn postgres_processes_share_delivery_and_a_killed_one_loses_nothing() {
        if let Some(backend) = Backend::postgres() {
            let _alone = processes_alone().await;
            super::processes_share_delivery_and_a_killed_one_loses_nothing(backend).await;
        }
    }
}
