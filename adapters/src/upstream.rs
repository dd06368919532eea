//! The upstream HTTP client every adapter uses: reqwest with connect and total
//! timeouts, pooled connections and gzip; a slot of the credential's [`Quota`]
//! before every send (shared by every caller of the credential); retries that
//! honour `Retry-After` on 429 and back off (capped, jittered) on transient faults
//! of idempotent calls; and counters of what it did.
//!
//! A 429 never uses up an attempt: the quota pauses every caller until the
//! provider's `Retry-After` (or `Reset`), and the call goes again. An interactive
//! call gives up when its deadline would pass (`RateLimited`, with the wait it
//! would have needed); a background call waits as long as it must.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::Rng;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Method;

use crate::error::AdapterError;
use crate::metrics::{self, MetricLabels};
pub use crate::quota::retry_after;
use crate::quota::{Observation, Priority, Quota};

/// Headers a provider names its own record of a request by, in the order we
/// trust them (Periskope sends `x-periskope-trace-id`).
const TRACE_HEADERS: [&str; 4] = [
    "x-periskope-trace-id",
    "x-request-id",
    "x-trace-id",
    "x-amzn-requestid",
];

tokio::task_local! {
    /// The provider's trace id of the last error answer a call of this task got.
    static LAST_TRACE: std::cell::RefCell<Option<String>>;
}

/// Runs `f` keeping the provider's trace id of the last error answer its
/// upstream calls get, for [`last_trace_id`] (a request being served, a sync run).
pub async fn with_trace_scope<F: std::future::Future>(f: F) -> F::Output {
    LAST_TRACE.scope(std::cell::RefCell::new(None), f).await
}

/// The provider's trace id of the last answer an upstream call of this task got,
/// when that answer was an error (a success clears it); `None` outside
/// [`with_trace_scope`].
pub fn last_trace_id() -> Option<String> {
    LAST_TRACE.try_with(|t| t.borrow().clone()).ok().flatten()
}

fn note_trace(id: Option<String>) {
    let _ = LAST_TRACE.try_with(|t| *t.borrow_mut() = id);
}

impl UpstreamResponse {
    /// The provider's id of this request, from the first trace header it sent.
    pub fn trace_id(&self) -> Option<String> {
        TRACE_HEADERS.iter().find_map(|name| {
            self.headers
                .get(*name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty() && v.len() <= 200)
                .map(str::to_string)
        })
    }
}

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub connect_timeout: Duration,
    /// Whole-request deadline.
    pub timeout: Duration,
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Who is calling: interactive callers go first in each window.
    pub priority: Priority,
    /// The longest a call may take, quota waits and retries included; past it the
    /// call fails (`RateLimited` when the quota would hold it longer). `None`: a
    /// background caller, which waits as long as the quota asks.
    pub deadline: Option<Duration>,
    /// Starting quota of a client that is not given a shared one.
    pub rate_limit_per_second: u32,
    /// The connection calling, for figures kept per connection.
    pub connection_id: Option<String>,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
            max_attempts: 4,
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(10),
            priority: Priority::Background,
            deadline: None,
            rate_limit_per_second: 10,
            connection_id: None,
        }
    }
}

/// Counters of one connection's upstream traffic.
#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    retries: AtomicU64,
    throttled: AtomicU64,
    waited_micros: AtomicU64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct UpstreamStats {
    /// HTTP requests sent (every attempt).
    pub requests: u64,
    /// Attempts after the first.
    pub retries: u64,
    /// 429 answers received.
    pub throttled_429: u64,
    /// Time callers spent waiting for the rate limiter, in milliseconds.
    pub limiter_wait_ms: u64,
}

/// One call to make.
#[derive(Debug, Clone)]
pub struct UpstreamRequest {
    pub method: Method,
    /// Appended to the base URL (`/contacts/42`).
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(HeaderName, String)>,
    pub body: Option<serde_json::Value>,
    /// Safe to send twice (GET, PUT-like); only these are retried after 5xx or timeouts.
    pub idempotent: bool,
    /// What the call does (`list_contacts`), the `operation` of its figures.
    pub operation: &'static str,
}

impl UpstreamRequest {
    pub fn get(path: impl Into<String>) -> Self {
        Self {
            method: Method::GET,
            path: path.into(),
            query: Vec::new(),
            headers: Vec::new(),
            body: None,
            idempotent: true,
            operation: "get",
        }
    }

    pub fn with_body(method: Method, path: impl Into<String>, body: serde_json::Value) -> Self {
        Self {
            idempotent: method == Method::PUT || method == Method::DELETE,
            method,
            path: path.into(),
            query: Vec::new(),
            headers: Vec::new(),
            body: Some(body),
            operation: "write",
        }
    }

    /// Names what the call does in the figures (`get_contact`, `list_contacts`).
    pub fn operation(mut self, operation: &'static str) -> Self {
        self.operation = operation;
        self
    }

    pub fn query(mut self, key: &str, value: impl ToString) -> Self {
        self.query.push((key.to_string(), value.to_string()));
        self
    }

    pub fn idempotent(mut self, yes: bool) -> Self {
        self.idempotent = yes;
        self
    }
}

/// A failure while an answer's body was being read: its deadline, or the
/// connection lost.
pub fn body_error(e: &reqwest::Error) -> AdapterError {
    if e.is_timeout() {
        AdapterError::Timeout
    } else {
        AdapterError::Unreachable {
            message: format!("reading the body: {e}"),
        }
    }
}

/// A reply of any status but 429 (which the client handles itself).
#[derive(Debug, Clone)]
pub struct UpstreamResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// What one attempt came to, as the retry rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// The provider answered with this status.
    Answered(u16),
    /// No answer within the timeout.
    TimedOut,
    /// The connection could not be made: nothing was sent.
    ConnectFailed,
    /// The connection broke after the request may have been sent.
    Broken,
}

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Back off and send again (an attempt used).
    Retry,
    /// Stop: answer what the attempt gave.
    GiveUp,
    /// A 429: wait this long (the quota holds every caller meanwhile) and send
    /// again; it uses no attempt, the provider did nothing with the request.
    Pause(Duration),
    /// A 429 whose wait passes the caller's deadline: stop, rate limited.
    RateLimited(Duration),
}

/// The retry rules, apart from the sending: after attempt number `attempt`
/// (1 for the first) of at most `max_attempts`, for a call that may (or may not,
/// `idempotent`) be sent twice, with `left` before its deadline (`None`: no
/// deadline) and `wait_429` the wait a 429 asked for.
///
/// - A 429 is never the request's failure: pause as asked, or stop rate limited
///   when the wait passes the deadline.
/// - A connection that could not be made sent nothing: any call may go again.
/// - A 5xx or a timeout may have done the work: only an idempotent call goes again.
/// - Anything else is the answer.
pub fn decide(
    attempt: u32,
    max_attempts: u32,
    outcome: Attempt,
    idempotent: bool,
    left: Option<Duration>,
    wait_429: Duration,
) -> Decision {
    let another = attempt < max_attempts;
    match outcome {
        Attempt::Answered(429) => {
            if left.is_some_and(|left| wait_429 > left) {
                Decision::RateLimited(wait_429)
            } else {
                Decision::Pause(wait_429)
            }
        }
        Attempt::ConnectFailed if another => Decision::Retry,
        Attempt::Answered(status) if status >= 500 && idempotent && another => Decision::Retry,
        Attempt::TimedOut if idempotent && another => Decision::Retry,
        _ => Decision::GiveUp,
    }
}

/// The HTTP client of one connection. Cheap to clone; clones share quota and counters.
#[derive(Clone)]
pub struct Upstream {
    http: reqwest::Client,
    base_url: String,
    config: Arc<UpstreamConfig>,
    quota: Arc<Quota>,
    counters: Arc<Counters>,
    labels: Arc<MetricLabels>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// A client of `provider` at `base_url` that asks `quota` before every send.
    pub fn new(
        provider: &'static str,
        base_url: &str,
        config: UpstreamConfig,
        quota: Arc<Quota>,
    ) -> Result<Self, AdapterError> {
        let parsed = url::Url::parse(base_url)
            .map_err(|e| AdapterError::InvalidInput(format!("base URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(AdapterError::InvalidInput(
                "base URL must be http(s)".into(),
            ));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(32)
            .user_agent(concat!("unicontacts/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AdapterError::InvalidInput(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            quota,
            labels: Arc::new(MetricLabels {
                provider,
                connection_id: config.connection_id.clone(),
            }),
            config: Arc::new(config),
            counters: Arc::new(Counters::default()),
        })
    }

    pub fn stats(&self) -> UpstreamStats {
        let c = &self.counters;
        UpstreamStats {
            requests: c.requests.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            throttled_429: c.throttled.load(Ordering::Relaxed),
            limiter_wait_ms: c.waited_micros.load(Ordering::Relaxed) / 1000,
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .config
            .backoff_base
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
        let capped = exp.min(self.config.backoff_max);
        // "Equal jitter": half fixed, half random, so retries of many callers spread out.
        let half = capped / 2;
        half + Duration::from_micros(rand::thread_rng().gen_range(0..=half.as_micros() as u64))
    }

    /// `send`, with any answer outside 2xx turned into the provider's error by `classify`.
    pub async fn send_ok(
        &self,
        req: &UpstreamRequest,
        classify: fn(&UpstreamResponse) -> AdapterError,
    ) -> Result<UpstreamResponse, AdapterError> {
        let res = self.send(req).await?;
        if (200..300).contains(&res.status) {
            note_trace(None);
            Ok(res)
        } else {
            Err(self.failed(req, &res, classify))
        }
    }

    /// An error answer as the provider's error, logged with the provider's trace
    /// id (kept for [`last_trace_id`]).
    fn failed(
        &self,
        req: &UpstreamRequest,
        res: &UpstreamResponse,
        classify: fn(&UpstreamResponse) -> AdapterError,
    ) -> AdapterError {
        let error = classify(res);
        let trace = res.trace_id();
        let (provider, operation) = (self.labels.provider, req.operation);
        let trace_field = trace.as_deref().unwrap_or("");
        if matches!(
            error,
            AdapterError::NotFound | AdapterError::Rejected { .. }
        ) {
            tracing::info!(provider, operation, status = res.status, upstream_trace_id = trace_field, error = %error, "provider answered an error");
        } else {
            tracing::warn!(provider, operation, status = res.status, upstream_trace_id = trace_field, error = %error, "provider answered an error");
        }
        note_trace(trace);
        error
    }

    /// Sends the request, waiting for the quota and retrying as the rules allow.
    /// Any status but 429 comes back as a response; a timeout, an unreachable host,
    /// or (for a call with a deadline) a quota that would hold it past the deadline
    /// come back as errors.
    pub async fn send(&self, req: &UpstreamRequest) -> Result<UpstreamResponse, AdapterError> {
        Ok(self.send_inner(req, false).await?.0)
    }

    /// `send_ok` for a body read as it arrives: a 2xx answer comes back unread
    /// (its status and headers in the response, `body` empty), to be read with
    /// [`reqwest::Response::chunk`]; any other is read and handled as `send_ok` does.
    pub async fn send_ok_streamed(
        &self,
        req: &UpstreamRequest,
        classify: fn(&UpstreamResponse) -> AdapterError,
    ) -> Result<reqwest::Response, AdapterError> {
        match self.send_inner(req, true).await? {
            (_, Some(stream)) => {
                note_trace(None);
                Ok(stream)
            }
            (res, None) => Err(self.failed(req, &res, classify)),
        }
    }

    async fn send_inner(
        &self,
        req: &UpstreamRequest,
        stream: bool,
    ) -> Result<(UpstreamResponse, Option<reqwest::Response>), AdapterError> {
        let url = format!("{}{}", self.base_url, req.path);
        let deadline = self.config.deadline.map(|d| Instant::now() + d);
        let left = || deadline.map(|d| d.saturating_duration_since(Instant::now()));
        // Attempts used by failures; a 429 uses none.
        let mut attempt = 0u32;
        let mut sent_before = false;
        loop {
            let (mut permit, waited) = self.quota.acquire(self.config.priority, deadline).await?;
            self.counters
                .waited_micros
                .fetch_add(waited.as_micros() as u64, Ordering::Relaxed);
            if !waited.is_zero() {
                metrics::upstream()
                    .quota_wait
                    .with_label_values(
                        &self
                            .labels
                            .values(&[self.labels.provider, self.config.priority.as_str()]),
                    )
                    .inc_by(waited.as_secs_f64());
            }
            if sent_before {
                self.counters.retries.fetch_add(1, Ordering::Relaxed);
            }
            sent_before = true;
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            attempt += 1;

            let mut builder = self.http.request(req.method.clone(), &url);
            if let Some(left) = left() {
                if left.is_zero() {
                    return Err(AdapterError::Timeout);
                }
                builder = builder.timeout(left.min(self.config.timeout));
            }
            if !req.query.is_empty() {
                builder = builder.query(&req.query);
            }
            for (name, value) in &req.headers {
                if let Ok(v) = HeaderValue::from_str(value) {
                    builder = builder.header(name.clone(), v);
                }
            }
            if let Some(body) = &req.body {
                builder = builder.json(body);
            }
            permit.sent();
            let sent_at = Instant::now();
            let outcome = match builder.send().await {
                Ok(res) => {
                    let status = res.status().as_u16();
                    let headers = res.headers().clone();
                    let observed = permit.replied(status, &headers).await;
                    if stream && (200..300).contains(&status) {
                        let head = UpstreamResponse {
                            status,
                            headers,
                            body: Bytes::new(),
                        };
                        self.record(
                            req.operation,
                            "success",
                            Some((status, observed)),
                            sent_at.elapsed(),
                        );
                        return Ok((head, Some(res)));
                    }
                    match res.bytes().await {
                        Ok(body) => Ok((
                            UpstreamResponse {
                                status,
                                headers,
                                body,
                            },
                            observed,
                        )),
                        Err(e) => Err((Attempt::Broken, body_error(&e))),
                    }
                }
                Err(e) => {
                    permit.failed().await;
                    if e.is_timeout() {
                        Err((Attempt::TimedOut, AdapterError::Timeout))
                    } else {
                        // A failed connect was never sent, so even a write may go again.
                        let attempt = if e.is_connect() {
                            Attempt::ConnectFailed
                        } else {
                            Attempt::Broken
                        };
                        Err((
                            attempt,
                            AdapterError::Unreachable {
                                message: e.to_string(),
                            },
                        ))
                    }
                }
            };
            let (result, answer) = match &outcome {
                Ok((res, observed)) => (
                    match res.status {
                        200..=299 => "success",
                        429 => "throttled",
                        400..=499 => "client_error",
                        500..=599 => "server_error",
                        _ => "other",
                    },
                    Some((res.status, *observed)),
                ),
                Err((Attempt::TimedOut, _)) => ("timeout", None),
                Err(_) => ("unreachable", None),
            };
            self.record(req.operation, result, answer, sent_at.elapsed());
            let (kind, wait_429) = match &outcome {
                Ok((res, observed)) => (
                    Attempt::Answered(res.status),
                    observed
                        .retry_after_ms
                        .or_else(|| {
                            observed
                                .reset_ms
                                .map(|r| r.saturating_sub(crate::quota::epoch_ms()))
                        })
                        .map(Duration::from_millis)
                        .unwrap_or(Duration::from_secs(1)),
                ),
                Err((kind, _)) => (*kind, Duration::ZERO),
            };
            let decision = decide(
                attempt,
                self.config.max_attempts,
                kind,
                req.idempotent,
                left(),
                wait_429,
            );
            let give_up = |outcome| match outcome {
                Ok((res, _)) => Ok((res, None)),
                Err((_, e)) => Err(e),
            };
            match decision {
                Decision::Pause(wait) => {
                    // The quota paused every caller already; the attempt is not used.
                    self.counters.throttled.fetch_add(1, Ordering::Relaxed);
                    attempt -= 1;
                    tracing::debug!(wait_ms = wait.as_millis() as u64, "upstream 429; pausing");
                }
                Decision::RateLimited(wait) => {
                    self.counters.throttled.fetch_add(1, Ordering::Relaxed);
                    return Err(AdapterError::RateLimited {
                        retry_after: Some(wait),
                    });
                }
                Decision::Retry => {
                    if !self.pause(attempt, &left).await {
                        return give_up(outcome);
                    }
                }
                Decision::GiveUp => return give_up(outcome),
            }
        }
    }

    /// The figures of one attempt.
    fn record(
        &self,
        operation: &'static str,
        result: &'static str,
        answer: Option<(u16, Observation)>,
        took: Duration,
    ) {
        let m = metrics::upstream();
        let provider = self.labels.provider;
        m.requests
            .with_label_values(&self.labels.values(&[provider, operation, result]))
            .inc();
        m.duration
            .with_label_values(&self.labels.values(&[provider, operation]))
            .observe(took.as_secs_f64());
        if let Some((status, observed)) = answer {
            if status == 429 {
                m.throttled
                    .with_label_values(&self.labels.values(&[provider]))
                    .inc();
            }
            if let Some(remaining) = observed.remaining {
                m.quota_remaining
                    .with_label_values(&self.labels.values(&[provider]))
                    .set(remaining as f64);
            }
        }
    }

    /// Backs off before another attempt; `false` when the deadline leaves no room.
    async fn pause(&self, attempt: u32, left: &impl Fn() -> Option<Duration>) -> bool {
        let wait = self.backoff(attempt);
        if left().is_some_and(|left| wait >= left) {
            return false;
        }
        tokio::time::sleep(wait).await;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retry_rules_branch_by_branch() {
        let second = Duration::from_secs(1);
        let d = |attempt, outcome, idempotent, left| {
            decide(attempt, 4, outcome, idempotent, left, second)
        };
        // A 429: paused as asked, whatever the attempt or the method; rate
        // limited when the wait passes the deadline.
        assert_eq!(
            d(4, Attempt::Answered(429), false, None),
            Decision::Pause(second)
        );
        assert_eq!(
            d(
                1,
                Attempt::Answered(429),
                true,
                Some(Duration::from_secs(2))
            ),
            Decision::Pause(second)
        );
        assert_eq!(
            d(
                1,
                Attempt::Answered(429),
                true,
                Some(Duration::from_millis(500))
            ),
            Decision::RateLimited(second)
        );
        // Nothing sent: any call goes again, while attempts are left.
        assert_eq!(d(1, Attempt::ConnectFailed, false, None), Decision::Retry);
        assert_eq!(d(4, Attempt::ConnectFailed, true, None), Decision::GiveUp);
        // A 5xx or a timeout may have done the work: only idempotent calls.
        assert_eq!(d(1, Attempt::Answered(503), true, None), Decision::Retry);
        assert_eq!(d(1, Attempt::Answered(503), false, None), Decision::GiveUp);
        assert_eq!(d(4, Attempt::Answered(500), true, None), Decision::GiveUp);
        assert_eq!(d(2, Attempt::TimedOut, true, None), Decision::Retry);
        assert_eq!(d(2, Attempt::TimedOut, false, None), Decision::GiveUp);
        assert_eq!(d(4, Attempt::TimedOut, true, None), Decision::GiveUp);
        // A connection broken mid-answer, and every other answer, is the answer.
        assert_eq!(d(1, Attempt::Broken, true, None), Decision::GiveUp);
        for status in [200, 201, 204, 400, 401, 404, 409, 422] {
            assert_eq!(
                d(1, Attempt::Answered(status), true, None),
                Decision::GiveUp,
                "{status}"
            );
        }
    }

    use std::time::SystemTime;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        assert_eq!(
            retry_after(&headers(&[("retry-after", "7")])),
            Some(Duration::from_secs(7))
        );
        let later = SystemTime::now() + Duration::from_secs(30);
        let d = retry_after(&headers(&[(
            "retry-after",
            &httpdate::fmt_http_date(later),
        )]))
        .expect("date");
        assert!(
            d > Duration::from_secs(27) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")])), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let up = Upstream::new(
            "test",
            "http://127.0.0.1:1",
            UpstreamConfig {
                backoff_base: Duration::from_millis(100),
                backoff_max: Duration::from_millis(800),
                ..UpstreamConfig::default()
            },
            Quota::new(crate::quota::QuotaConfig {
                style: crate::quota::RateStyle::Silent,
                per_second: 10,
                background_floor: 0.2,
            }),
        )
        .expect("client");
        for attempt in 1..10 {
            let d = up.backoff(attempt);
            let full =
                Duration::from_millis(100 * 2u64.pow(attempt - 1)).min(Duration::from_millis(800));
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
        }
    }
}
