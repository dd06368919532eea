//! Webhook delivery: every process's scheduler sends each org's events to its
//! endpoints, at least once and in event order per endpoint.
//!
//! An endpoint is worked by one process at a time: the one holding its lease
//! (taken by a conditional update, renewed with every saved step, let go when
//! the endpoint has nothing due). Its cursor (the last event sent or skipped)
//! moves only after the endpoint answered 2xx, in the same transaction that
//! records the delivery, so a process killed mid-send sends that event again
//! after the lease expires: at least once, never out of order. A failed event
//! holds the endpoint's later events back until it is delivered or its retries
//! are spent (then it is recorded `failed` and the next goes). `410 Gone`
//! disables the endpoint at once; failing for `webhook_disable_after_seconds`
//! disables it too.

pub mod sign;
pub mod target;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::ids;
use crate::secrets::Sealer;
use crate::store::events::{self as events, EventRow};
use crate::store::models::DeliveryStatus;
use crate::store::webhooks::{self as queries, EndpointProgress, EndpointRow};
use crate::store::{Store, StoreError};
use crate::tasks::CancellationToken;
use target::TargetPolicy;

/// One attempt's timeout.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of an answer read (the rest is dropped).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// An endpoint's lease: longer than an attempt can take, renewed at every step.
pub const LEASE: Duration = Duration::from_secs(30);
/// Events read from the feed at a time.
const BATCH: i64 = 100;
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Characters of an answer's body kept in the delivery log.
const ERROR_SNIPPET: usize = 200;

/// An endpoint's secrets, as sealed in its row.
#[derive(Clone, Serialize, Deserialize)]
pub struct Secrets {
    pub current: String,
    #[serde(default)]
    pub previous: Option<String>,
    #[serde(default)]
    pub previous_until: Option<NaiveDateTime>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("previous_until", &self.previous_until)
            .finish_non_exhaustive()
    }
}

impl Secrets {
    /// The secrets that sign at `now`: the current one, and the previous one
    /// until its overlap ends.
    pub fn signing(&self, now: NaiveDateTime) -> Vec<String> {
        let mut out = vec![self.current.clone()];
        if let (Some(p), Some(until)) = (&self.previous, self.previous_until) {
            if now < until {
                out.push(p.clone());
            }
        }
        out
    }

    pub fn open(sealer: &Sealer, row: &EndpointRow) -> Result<Self, StoreError> {
        let plain = sealer.open(&row.id, &row.secrets)?;
        serde_json::from_str(&plain)
            .map_err(|_| StoreError::Corrupt(format!("webhook {}: unreadable secrets", row.id)))
    }

    pub fn seal(&self, sealer: &Sealer, endpoint_id: &str) -> String {
        let plain = serde_json::to_string(self).unwrap_or_default();
        sealer.seal(endpoint_id, &plain)
    }
}

/// The outcome of one POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub code: Option<i32>,
    pub error: Option<String>,
    pub latency_ms: i64,
    /// The endpoint's `Retry-After` (on 429 and 503).
    pub retry_after: Option<Duration>,
}

impl Outcome {
    pub fn delivered(&self) -> bool {
        self.code.is_some_and(|c| (200..300).contains(&c))
    }

    pub fn gone(&self) -> bool {
        self.code == Some(410)
    }
}

/// The body sent: `{"type", "timestamp", "data"}`.
pub fn body_of(event: &EventRow) -> String {
    // `data` is stored as JSON text: put it in as it is.
    format!(
        r#"{{"type":{},"timestamp":{},"data":{}}}"#,
        serde_json::Value::String(event.event_type.clone()),
        serde_json::Value::String(ids::rfc3339(event.occurred_at)),
        event.data
    )
}

/// Sends events to endpoints.
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
}

impl Sender {
    pub fn new(policy: TargetPolicy) -> Self {
        Self {
            client: target::client(policy, TIMEOUT),
        }
    }

    /// POSTs the event, signed with each of `secrets`.
    pub async fn send(&self, url: &str, secrets: &[String], event: &EventRow) -> Outcome {
        let msg_id = events::event_id(event.seq);
        let body = body_of(event);
        let timestamp = chrono::Utc::now().timestamp();
        let signature = sign::signature_header(secrets, &msg_id, timestamp, &body);
        let started = Instant::now();
        let sent = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &msg_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                return Outcome {
                    code: None,
                    error: Some(describe(e)),
                    latency_ms: started.elapsed().as_millis() as i64,
                    retry_after: None,
                }
            }
        };
        let status = response.status();
        let retry_after = matches!(status.as_u16(), 429 | 503)
            .then(|| retry_after(response.headers()))
            .flatten();
        let snippet = read_capped(response).await;
        let latency_ms = started.elapsed().as_millis() as i64;
        let error = (!status.is_success()).then(|| {
            let mut e = format!("answered {status}");
            if !snippet.is_empty() {
                e.push_str(": ");
                e.push_str(&snippet);
            }
            e
        });
        Outcome {
            code: Some(i32::from(status.as_u16())),
            error,
            latency_ms,
            retry_after,
        }
    }
}

/// What failed, in words (never the URL's query, which may carry a token).
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    if e.is_timeout() {
        format!("no answer within {} s", TIMEOUT.as_secs())
    } else if e.is_connect() {
        let mut cause = String::new();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            cause = s.to_string();
            source = s.source();
        }
        format!("could not connect: {cause}")
    } else {
        format!("request failed: {e}")
    }
}

/// The answer's first bytes (at most [`MAX_RESPONSE_BYTES`] are read), as a
/// short one-line snippet.
async fn read_capped(mut response: reqwest::Response) -> String {
    let mut read: Vec<u8> = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = MAX_RESPONSE_BYTES - read.len();
        read.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if read.len() >= MAX_RESPONSE_BYTES {
            break;
        }
    }
    String::from_utf8_lossy(&read)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(ERROR_SNIPPET)
        .collect::<String>()
        .trim()
        .to_string()
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let raw = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let wait = match raw.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = chrono::DateTime::parse_from_rfc2822(raw).ok()?;
            (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
                .to_std()
                .unwrap_or_default()
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// How delivery behaves (from the settings).
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// How often due endpoints are looked for.
    pub poll: Duration,
    /// The waits after the 1st, 2nd, … failed attempt at an event; when spent the
    /// event is recorded `failed` and the next one goes.
    pub retry_schedule: Vec<Duration>,
    /// An endpoint failing this long is disabled.
    pub disable_after: Duration,
    /// Endpoints worked at once by this process.
    pub concurrency: usize,
    pub policy: TargetPolicy,
}

/// This process's delivery worker.
pub struct Worker {
    store: Store,
    sender: Sender,
    config: DeliveryConfig,
    /// Who holds the leases this process takes.
    owner: String,
}

impl Worker {
    pub fn new(store: Store, config: DeliveryConfig) -> Self {
        Self {
            store,
            sender: Sender::new(config.policy),
            owner: ids::new_id("dlw"),
            config,
        }
    }

    /// Delivers until `stop`: every `poll`, takes the due endpoints' leases (up
    /// to `concurrency` at once) and works each until it has nothing due. On stop
    /// the attempts in flight finish and their leases are let go.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut working: JoinSet<()> = JoinSet::new();
        let mut tick = tokio::time::interval(self.config.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = tick.tick() => {}
                Some(_) = working.join_next(), if !working.is_empty() => continue,
            }
            let room = self.config.concurrency.saturating_sub(working.len());
            if room == 0 {
                continue;
            }
            let claimed = {
                let (owner, until) = (self.owner.clone(), ids::now() + chrono_of(LEASE));
                self.store
                    .write(move |conn| {
                        queries::claim_due(conn, &owner, ids::now(), until, room as i64)
                    })
                    .await
            };
            match claimed {
                Ok(endpoints) => {
                    for endpoint in endpoints {
                        let me = self.clone();
                        let stop = stop.clone();
                        working.spawn(async move { me.work(endpoint, stop).await });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot look for webhook deliveries"),
            }
        }
        while working.join_next().await.is_some() {}
    }

    /// Sends the endpoint's due events in order until none is left, one fails, or
    /// the lease is lost; then lets the lease go.
    async fn work(&self, endpoint: EndpointRow, stop: CancellationToken) {
        let id = endpoint.id.clone();
        if let Err(e) = self.deliver(endpoint, &stop).await {
            tracing::warn!(webhook = %id, error = %e, "webhook delivery stopped");
        }
        let (owner, id2) = (self.owner.clone(), id.clone());
        if let Err(e) = self
            .store
            .write(move |conn| queries::release(conn, &id2, &owner))
            .await
        {
            tracing::warn!(webhook = %id, error = %e, "cannot let a webhook lease go");
        }
    }

    async fn deliver(
        &self,
        mut ep: EndpointRow,
        stop: &CancellationToken,
    ) -> Result<(), StoreError> {
        let sealer = self.store.sealer()?;
        let secrets = Secrets::open(&sealer, &ep)?;
        let types = ep.types();
        loop {
            let (org, after) = (ep.org_id.clone(), ep.cursor_seq);
            let batch = self
                .store
                .run(move |conn| events::list(conn, &org, after, &[], None, BATCH))
                .await?;
            if batch.is_empty() {
                return Ok(());
            }
            let mut skipped_to = None;
            for event in batch {
                if stop.is_cancelled() {
                    break;
                }
                if !types.is_empty() && !types.contains(&event.event_type) {
                    skipped_to = Some(event.seq);
                    continue;
                }
                if let Some(seq) = skipped_to.take() {
                    if !self.advance(&mut ep, seq).await? {
                        return Ok(());
                    }
                }
                let outcome = self
                    .sender
                    .send(&ep.url, &secrets.signing(ids::now()), &event)
                    .await;
                if !self.record(&mut ep, &event, &outcome).await? {
                    return Ok(());
                }
            }
            if let Some(seq) = skipped_to {
                if !self.advance(&mut ep, seq).await? {
                    return Ok(());
                }
            }
            if stop.is_cancelled() {
                return Ok(());
            }
        }
    }

    /// Moves the cursor past events not of the endpoint's types.
    async fn advance(&self, ep: &mut EndpointRow, seq: i64) -> Result<bool, StoreError> {
        let progress = EndpointProgress {
            cursor_seq: seq,
            attempts: ep.attempts,
            next_attempt_at: None,
            failing_since: ep.failing_since,
            disabled_reason: None,
        };
        let (id, owner, from) = (ep.id.clone(), self.owner.clone(), ep.cursor_seq);
        let until = ids::now() + chrono_of(LEASE);
        let kept = self
            .store
            .write(move |conn| queries::save_progress(conn, &id, &owner, from, &progress, until))
            .await?;
        if kept {
            ep.cursor_seq = seq;
        }
        Ok(kept)
    }

    /// Records an attempt and what it means for the endpoint, in one
    /// transaction; `false` when the endpoint is no longer this process's to
    /// work (lease lost, disabled, deleted, rewound) or must wait.
    async fn record(
        &self,
        ep: &mut EndpointRow,
        event: &EventRow,
        outcome: &Outcome,
    ) -> Result<bool, StoreError> {
        let now = ids::now();
        let mut progress = EndpointProgress {
            cursor_seq: ep.cursor_seq,
            attempts: ep.attempts,
            next_attempt_at: None,
            failing_since: ep.failing_since,
            disabled_reason: None,
        };
        let status;
        let mut next_attempt_at = None;
        if outcome.delivered() {
            status = DeliveryStatus::Delivered;
            progress.cursor_seq = event.seq;
            progress.attempts = 0;
            progress.failing_since = None;
        } else if outcome.gone() {
            status = DeliveryStatus::Failed;
            progress.disabled_reason = Some("the endpoint answered 410 Gone".into());
        } else {
            let failing_since = *progress.failing_since.get_or_insert(now);
            progress.attempts += 1;
            let failed_for = (now - failing_since).to_std().unwrap_or_default();
            if failed_for >= self.config.disable_after {
                status = DeliveryStatus::Failed;
                progress.disabled_reason = Some(format!(
                    "failing since {} ({} attempts at the last event)",
                    ids::rfc3339(failing_since),
                    progress.attempts
                ));
            } else if let Some(wait) = self
                .config
                .retry_schedule
                .get(progress.attempts as usize - 1)
                .copied()
            {
                status = DeliveryStatus::Pending;
                let wait = outcome.retry_after.unwrap_or(wait);
                next_attempt_at = Some(now + chrono_of(wait));
                progress.next_attempt_at = next_attempt_at;
            } else {
                // Retries spent: given up, and the next event goes.
                status = DeliveryStatus::Failed;
                progress.cursor_seq = event.seq;
                progress.attempts = 0;
            }
        }
        let (id, owner, from) = (ep.id.clone(), self.owner.clone(), ep.cursor_seq);
        crate::metrics::delivery(match status {
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Pending => "retrying",
            _ => "failed",
        });
        let (endpoint, event_seq, event_type) = (ep.clone(), event.seq, event.event_type.clone());
        let outcome2 = outcome.clone();
        let saved = progress.clone();
        let until = now + chrono_of(LEASE);
        let kept = self
            .store
            .write(move |conn| {
                crate::store::in_transaction(conn, |conn| {
                    // A commit lost to a database crash moves the cursor back one
                    // event: that event is sent again, which at-least-once allows.
                    crate::store::relax_commit(conn)?;
                    if !queries::save_progress(conn, &id, &owner, from, &saved, until)? {
                        return Ok(false);
                    }
                    queries::record_attempt(
                        conn,
                        &ids::new_id(ids::DELIVERY),
                        &endpoint,
                        event_seq,
                        &event_type,
                        status,
                        outcome2.code,
                        outcome2.error.as_deref(),
                        outcome2.latency_ms,
                        next_attempt_at,
                        now,
                    )?;
                    Ok(true)
                })
            })
            .await?;
        if !kept {
            return Ok(false);
        }
        if let Some(reason) = &progress.disabled_reason {
            tracing::warn!(webhook = %ep.id, reason = %reason, "webhook endpoint disabled");
        }
        let go_on = status != DeliveryStatus::Pending && progress.disabled_reason.is_none();
        ep.cursor_seq = progress.cursor_seq;
        ep.attempts = progress.attempts;
        ep.failing_since = progress.failing_since;
        Ok(go_on)
    }
}

fn chrono_of(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}
