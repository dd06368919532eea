//! Four clients creating, reading and listing contacts through the API while a
//! fault comes and goes, and what every suite checks afterwards.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// One answer a client got.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub what: &'static str,
    pub status: u16,
    pub retry_after: bool,
    /// A contact created (201): its id and the phone it was created with.
    pub created: Option<(String, String)>,
    pub at: Instant,
    /// How long the answer took.
    pub took: Duration,
}

/// Clients running until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    clients: Vec<tokio::task::JoinHandle<Vec<Outcome>>>,
}

/// A request that took longer than this is a hang, not an answer.
const HANG: Duration = Duration::from_secs(15);

async fn call(
    what: &'static str,
    req: reqwest::RequestBuilder,
    out: &mut Vec<Outcome>,
) -> Option<Value> {
    let at = Instant::now();
    match req.timeout(HANG).send().await {
        Ok(res) => {
            let status = res.status().as_u16();
            let retry_after = res.headers().contains_key("retry-after");
            let body: Option<Value> = res.json().await.ok();
            if status >= 400
                && !out
                    .iter()
                    .any(|o: &Outcome| o.what == what && o.status == status)
            {
                // The first of each kind of refusal, to read in the test's output.
                eprintln!(
                    "{what} answered {status}: {}",
                    body.clone().unwrap_or_default()
                );
            }
            let created = (what == "create" && status == 201)
                .then(|| {
                    let b = body.as_ref()?;
                    Some((
                        b["id"].as_str()?.to_string(),
                        b["phones"][0]["e164"].as_str()?.to_string(),
                    ))
                })
                .flatten();
            out.push(Outcome {
                what,
                status,
                retry_after,
                created,
                at,
                took: at.elapsed(),
            });
            body
        }
        Err(e) => {
            // No answer at all: recorded as status 0, a failure of the suite.
            eprintln!("{what}: no answer: {e}");
            out.push(Outcome {
                what,
                status: 0,
                retry_after: false,
                created: None,
                at,
                took: at.elapsed(),
            });
            None
        }
    }
}

impl Load {
    /// `clients` clients on `base`, writing to the WA.cr connection `connection`
    /// with `key` (contacts:read and contacts:write).
    pub fn start(base: &str, key: &str, connection: &str, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (0..clients)
            .map(|n| {
                let (base, key, connection, stop) = (
                    base.to_string(),
                    key.to_string(),
                    connection.to_string(),
                    stop.clone(),
                );
                tokio::spawn(async move {
                    let http = reqwest::Client::new();
                    let mut out = Vec::new();
                    let mut i = 0u32;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        // Indian mobile numbers, one per client and step.
                        let phone = format!("+91 98{n}{i:07}");
                        let created = call(
                            "create",
                            http.post(format!("{base}/v1/connections/{connection}/contacts"))
                                .bearer_auth(&key)
                                .header("idempotency-key", format!("chaos-{n}-{i}-{}", ulid::Ulid::new()))
                                .json(&json!({"first_name": "Chaos", "last_name": format!("{n}-{i}"), "phone": phone})),
                            &mut out,
                        )
                        .await;
                        if let Some(id) = created.as_ref().and_then(|b| b["id"].as_str()) {
                            call(
                                "read",
                                http.get(format!("{base}/v1/contacts/{id}")).bearer_auth(&key),
                                &mut out,
                            )
                            .await;
                        }
                        call(
                            "list",
                            http.get(format!("{base}/v1/contacts?limit=20")).bearer_auth(&key),
                            &mut out,
                        )
                        .await;
                    }
                    out
                })
            })
            .collect();
        Load { stop, clients }
    }

    pub async fn stop(self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for c in self.clients {
            all.extend(c.await.expect("client"));
        }
        all
    }
}

/// Every answer was one a client can act on: no 500, no hang; a 503 says when
/// to come back. Returns the answers counted by kind and status, to print.
pub fn no_server_errors(outcomes: &[Outcome]) -> BTreeMap<(String, u16), usize> {
    let mut counts = BTreeMap::new();
    for o in outcomes {
        *counts.entry((o.what.to_string(), o.status)).or_insert(0) += 1;
    }
    let slowest = outcomes.iter().map(|o| o.took).max().unwrap_or_default();
    eprintln!("answers: {counts:?}; the slowest took {slowest:?}");
    for o in outcomes {
        assert!(
            o.status != 0 && o.status != 500,
            "{} answered {} (none may be a 500 or no answer): {counts:?}",
            o.what,
            o.status
        );
        if o.status == 503 {
            assert!(o.retry_after, "a 503 without Retry-After: {counts:?}");
        }
    }
    counts
}

/// Polls `path` until it answers 200; how long after `since` that was (bounded).
pub async fn answers_normally(base: &str, key: &str, path: &str, since: Instant) -> Duration {
    let http = reqwest::Client::new();
    loop {
        let ok = http
            .get(format!("{base}{path}"))
            .bearer_auth(key)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        if ok {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < Duration::from_secs(30),
            "{path} still failing 30 s after the fault ended"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every contact a client was answered 201 for is in the store, as created.
pub async fn every_created_contact_is_stored(base: &str, key: &str, outcomes: &[Outcome]) -> usize {
    let http = reqwest::Client::new();
    let created: Vec<&(String, String)> =
        outcomes.iter().filter_map(|o| o.created.as_ref()).collect();
    for (id, phone) in &created {
        let res = http
            .get(format!("{base}/v1/contacts/{id}"))
            .bearer_auth(key)
            .send()
            .await
            .expect("read back");
        assert_eq!(res.status(), 200, "{id} answered 201 and is gone");
        let c: Value = res.json().await.expect("json");
        assert_eq!(c["phones"][0]["e164"], phone.as_str(), "{c}");
        assert_eq!(c["remote_was_deleted"], false, "{c}");
    }
    created.len()
}

/// The org's whole change feed: no event twice (by id), and no contact created
/// twice.
pub async fn no_event_twice(base: &str, key: &str) -> usize {
    let http = reqwest::Client::new();
    let mut events: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/v1/events?limit=500");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = http
            .get(url)
            .bearer_auth(key)
            .send()
            .await
            .expect("feed")
            .json()
            .await
            .expect("json");
        events.extend(page["data"].as_array().expect("data").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let ids: HashSet<&str> = events.iter().filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(ids.len(), events.len(), "an event id twice");
    let mut created: HashMap<&str, usize> = HashMap::new();
    for e in events.iter().filter(|e| e["type"] == "contact.created") {
        *created
            .entry(e["data"]["contact_id"].as_str().expect("contact id"))
            .or_default() += 1;
    }
    let twice: Vec<_> = created.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "contacts created twice: {twice:?}");
    events.len()
}

/// The remote ids of the connection's live contacts in the store.
pub async fn stored_remote_ids(base: &str, key: &str, connection: &str) -> HashSet<String> {
    let http = reqwest::Client::new();
    let mut ids = HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/v1/contacts?connection_id={connection}&limit=500");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = http
            .get(url)
            .bearer_auth(key)
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        for c in page["data"].as_array().expect("data") {
            ids.insert(c["remote_id"].as_str().expect("remote id").to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return ids,
        }
    }
}
