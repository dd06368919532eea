//! The upstream HTTP client every adapter uses: reqwest with connect and total
//! timeouts, pooled connections and gzip; a per-connection rate limiter that
//! learns the quota from `X-RateLimit-Limit/Remaining/Reset`; retries that honour
//! `Retry-After` on 429 and back off (capped, jittered) on transient faults of
//! idempotent calls; and counters of what it did.
//!
//! Two mechanisms keep us under the quota. A governor limiter paces sends at the
//! learned rate (rebuilt when the limit changes). A window gate reserves a slot
//! before each send against the last known `Remaining` (less the requests still in
//! flight), and once the window is spent it holds every caller until `Reset`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use governor::{DefaultDirectRateLimiter, Jitter, Quota, RateLimiter};
use rand::Rng;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::Method;

use crate::error::AdapterError;

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub connect_timeout: Duration,
    /// Whole-request deadline.
    pub timeout: Duration,
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// The longest a call waits for the quota (a spent window or a 429's
    /// `Retry-After`); past that it fails with `RateLimited` instead of waiting.
    pub max_throttle_wait: Duration,
    /// Starting quota, until the provider's headers say otherwise.
    pub rate_limit_per_second: u32,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
            max_attempts: 4,
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(10),
            max_throttle_wait: Duration::from_secs(90),
            rate_limit_per_second: 10,
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
        }
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

/// A reply of any status but 429 (which the client handles itself).
#[derive(Debug, Clone)]
pub struct UpstreamResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// The quota as the provider announced it, and what we sent against it.
#[derive(Debug, Default)]
struct Gate {
    limit: Option<u32>,
    /// Epoch seconds when the current window ends, when known.
    reset_at: Option<u64>,
    /// Requests we sent in the current window (in flight included).
    sent: i64,
    /// The most the provider said was used in this window (`limit - remaining`);
    /// above `sent` when someone else spends the same quota.
    server_used: i64,
    in_flight: i64,
    /// Window length, learned from the first reply of a window.
    window: Option<Duration>,
    /// Set by a 429: nobody sends before this.
    paused_until: Option<Instant>,
}

impl Gate {
    /// Requests still allowed in this window; `None` when the provider sends no quota.
    fn budget(&self) -> Option<i64> {
        self.limit
            .map(|l| i64::from(l) - self.sent.max(self.server_used))
    }

    /// The window ended: a fresh one, less what is still on the wire (it may land in it).
    fn roll_over(&mut self, epoch: f64) {
        let next = match (self.reset_at, self.window) {
            (Some(reset), Some(w)) => {
                let w = w.as_secs().max(1);
                let mut r = reset + w;
                while (r as f64) <= epoch {
                    r += w;
                }
                Some(r)
            }
            _ => None,
        };
        self.reset_at = next;
        self.sent = self.in_flight;
        self.server_used = 0;
    }
}

struct Limiter {
    gate: Mutex<Gate>,
    pacer: RwLock<Arc<DefaultDirectRateLimiter>>,
    /// (limit, window) the pacer was built from.
    pacer_quota: Mutex<(u32, Duration)>,
}

/// The pacer's quota: `limit` per `window`, run 10% fast so that it smooths bursts
/// without ever being what holds throughput under the quota (the gate is the hard stop).
fn quota(limit: u32, window: Duration) -> Quota {
    let limit = limit.max(1);
    let period = (window.mul_f64(1.0 / 1.1) / limit).max(Duration::from_micros(1));
    let burst = std::num::NonZeroU32::new(limit).unwrap_or(std::num::NonZeroU32::MIN);
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(burst))
        .allow_burst(burst)
}

fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    let v = headers.get(name)?.to_str().ok()?.trim();
    v.parse::<u64>().ok().or_else(|| {
        v.parse::<f64>()
            .ok()
            .filter(|f| *f >= 0.0)
            .map(|f| f as u64)
    })
}

/// `Retry-After` as seconds or an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

impl Limiter {
    fn new(per_second: u32) -> Self {
        let window = Duration::from_secs(1);
        Self {
            gate: Mutex::new(Gate::default()),
            pacer: RwLock::new(Arc::new(RateLimiter::direct(quota(per_second, window)))),
            pacer_quota: Mutex::new((per_second, window)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Gate> {
        self.gate.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for the pacer and a slot in the window; returns how long it waited.
    async fn acquire(&self, max_wait: Duration) -> Result<Duration, AdapterError> {
        let started = Instant::now();
        let pacer = self.pacer.read().unwrap_or_else(|p| p.into_inner()).clone();
        pacer
            .until_ready_with_jitter(Jitter::up_to(Duration::from_millis(2)))
            .await;
        loop {
            let wait = {
                let mut g = self.lock();
                let now = Instant::now();
                let epoch = epoch_now();
                if g.paused_until.is_some_and(|until| until <= now) {
                    g.paused_until = None;
                }
                if g.reset_at.is_some_and(|reset| epoch >= reset as f64) {
                    g.roll_over(epoch);
                }
                if let Some(until) = g.paused_until {
                    Some(until - now)
                } else {
                    match (g.budget(), g.reset_at) {
                        (Some(b), Some(reset)) if b <= 0 => {
                            Some(Duration::from_secs_f64((reset as f64 - epoch).max(0.0)))
                        }
                        // Spent, and no reset known yet: replies in flight will tell.
                        (Some(b), None) if b <= 0 && g.in_flight > 0 => {
                            Some(Duration::from_millis(20))
                        }
                        _ => {
                            g.sent += 1;
                            g.in_flight += 1;
                            None
                        }
                    }
                }
            };
            match wait {
                None => return Ok(started.elapsed()),
                Some(d) => {
                    if started.elapsed() + d > max_wait {
                        return Err(AdapterError::RateLimited {
                            retry_after: Some(d),
                        });
                    }
                    // A few ms past the reset, spread so waiters do not stampede.
                    let jitter = Duration::from_millis(rand::thread_rng().gen_range(3..15));
                    tokio::time::sleep(d + jitter).await;
                }
            }
        }
    }

    /// Learns from a reply's headers and releases the in-flight slot.
    fn observe(&self, headers: Option<&HeaderMap>) {
        let rebuild = {
            let mut g = self.lock();
            g.in_flight = (g.in_flight - 1).max(0);
            let Some(headers) = headers else { return };
            let limit =
                header_u64(headers, "x-ratelimit-limit").map(|v| v.min(u64::from(u32::MAX)) as u32);
            let remaining = header_u64(headers, "x-ratelimit-remaining");
            let epoch = epoch_now();
            // Epoch seconds per Periskope; a small number is read as seconds-until-reset.
            let reset = header_u64(headers, "x-ratelimit-reset").map(|r| {
                if r < 1_000_000_000 {
                    epoch.ceil() as u64 + r
                } else {
                    r
                }
            });
            if let Some(l) = limit {
                g.limit = Some(l);
            }
            let used = match (g.limit, remaining) {
                (Some(l), Some(r)) => Some(i64::from(l) - r as i64),
                _ => None,
            };
            match (reset, g.reset_at) {
                (Some(t), Some(cur)) if t < cur => {} // a late reply from an older window
                (Some(t), Some(cur)) if t > cur => {
                    // The provider is in a newer window than we thought.
                    g.reset_at = Some(t);
                    g.sent = g.in_flight;
                    g.server_used = used.unwrap_or(0);
                }
                (Some(t), cur) => {
                    if cur.is_none() {
                        g.reset_at = Some(t);
                    }
                    if let Some(u) = used {
                        g.server_used = g.server_used.max(u);
                        if u == 1 {
                            // The first request of a window: its length is the time to reset.
                            let secs = (t as f64 - epoch).ceil().max(1.0);
                            g.window = Some(Duration::from_secs_f64(secs));
                        }
                    }
                }
                (None, _) => {
                    if let Some(u) = used {
                        g.server_used = g.server_used.max(u);
                    }
                }
            }
            match (g.limit, g.window) {
                (Some(l), w) => Some((l, w.unwrap_or(Duration::from_secs(1)))),
                _ => None,
            }
        };
        if let Some((limit, window)) = rebuild {
            let mut current = self.pacer_quota.lock().unwrap_or_else(|p| p.into_inner());
            if *current != (limit, window) {
                *current = (limit, window);
                *self.pacer.write().unwrap_or_else(|p| p.into_inner()) =
                    Arc::new(RateLimiter::direct(quota(limit, window)));
                tracing::debug!(
                    limit,
                    window_ms = window.as_millis() as u64,
                    "upstream quota learned"
                );
            }
        }
    }

    /// A 429: everybody pauses for `wait`, and the window counts as spent.
    fn pause(&self, wait: Duration) {
        let mut g = self.lock();
        let until = Instant::now() + wait;
        g.paused_until = Some(g.paused_until.map_or(until, |u| u.max(until)));
        if let Some(l) = g.limit {
            g.server_used = i64::from(l);
        }
    }

    /// The wait a 429 asks for: `Retry-After`, else until `Reset`.
    fn wait_after_429(&self, headers: &HeaderMap) -> Option<Duration> {
        retry_after(headers).or_else(|| {
            let reset = self.lock().reset_at?;
            Some(Duration::from_secs_f64(
                (reset as f64 - epoch_now()).max(0.0),
            ))
        })
    }
}

/// The HTTP client of one connection. Cheap to clone; clones share limiter and counters.
#[derive(Clone)]
pub struct Upstream {
    http: reqwest::Client,
    base_url: String,
    config: Arc<UpstreamConfig>,
    limiter: Arc<Limiter>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    pub fn new(base_url: &str, config: UpstreamConfig) -> Result<Self, AdapterError> {
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
            limiter: Arc::new(Limiter::new(config.rate_limit_per_second)),
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
            Ok(res)
        } else {
            Err(classify(&res))
        }
    }

    /// Sends the request, waiting for the quota and retrying as the rules allow.
    /// Any status but 429 comes back as a response; a 429 after the last attempt,
    /// a timeout or an unreachable host come back as errors.
    pub async fn send(&self, req: &UpstreamRequest) -> Result<UpstreamResponse, AdapterError> {
        let url = format!("{}{}", self.base_url, req.path);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            if attempt > 1 {
                self.counters.retries.fetch_add(1, Ordering::Relaxed);
            }
            let waited = self.limiter.acquire(self.config.max_throttle_wait).await?;
            self.counters
                .waited_micros
                .fetch_add(waited.as_micros() as u64, Ordering::Relaxed);
            self.counters.requests.fetch_add(1, Ordering::Relaxed);

            let mut builder = self.http.request(req.method.clone(), &url);
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
            let last = attempt >= self.config.max_attempts;
            let outcome = match builder.send().await {
                Ok(res) => {
                    let status = res.status().as_u16();
                    let headers = res.headers().clone();
                    self.limiter.observe(Some(&headers));
                    match res.bytes().await {
                        Ok(body) => Ok(UpstreamResponse {
                            status,
                            headers,
                            body,
                        }),
                        Err(e) if e.is_timeout() => Err(AdapterError::Timeout),
                        Err(e) => Err(AdapterError::Unreachable {
                            message: format!("reading the body: {e}"),
                        }),
                    }
                }
                Err(e) => {
                    self.limiter.observe(None);
                    if e.is_timeout() {
                        Err(AdapterError::Timeout)
                    } else {
                        // A failed connect was never sent, so even a write may be retried.
                        let retry_any = e.is_connect();
                        let err = AdapterError::Unreachable {
                            message: e.to_string(),
                        };
                        if retry_any && !last {
                            tokio::time::sleep(self.backoff(attempt)).await;
                            continue;
                        }
                        Err(err)
                    }
                }
            };
            match outcome {
                Ok(res) if res.status == 429 => {
                    self.counters.throttled.fetch_add(1, Ordering::Relaxed);
                    let wait = self
                        .limiter
                        .wait_after_429(&res.headers)
                        .unwrap_or_else(|| self.backoff(attempt));
                    // A 429 was not processed, so any call may be sent again.
                    if last || wait > self.config.max_throttle_wait {
                        return Err(AdapterError::RateLimited {
                            retry_after: Some(wait),
                        });
                    }
                    tracing::debug!(wait_ms = wait.as_millis() as u64, "upstream 429; pausing");
                    self.limiter.pause(wait);
                }
                Ok(res) if res.status >= 500 && req.idempotent && !last => {
                    tokio::time::sleep(self.backoff(attempt)).await;
                }
                Ok(res) => return Ok(res),
                Err(AdapterError::Timeout) if req.idempotent && !last => {
                    tokio::time::sleep(self.backoff(attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[tokio::test]
    async fn a_spent_window_holds_every_caller_until_reset() {
        let limiter = Limiter::new(100);
        let reset = epoch_now().ceil() as u64 + 2;
        // Three calls sent; the first reply says two of three are used (one arrived late).
        for _ in 0..3 {
            limiter.acquire(Duration::from_secs(5)).await.expect("slot");
        }
        limiter.observe(Some(&headers(&[
            ("x-ratelimit-limit", "3"),
            ("x-ratelimit-remaining", "1"),
            ("x-ratelimit-reset", &reset.to_string()),
        ])));
        // We sent three, so the window is spent whatever the reply counted so far.
        let err = limiter
            .acquire(Duration::from_millis(50))
            .await
            .expect_err("spent");
        match err {
            AdapterError::RateLimited {
                retry_after: Some(d),
            } => {
                assert!(
                    d > Duration::from_secs(1) && d <= Duration::from_secs(3),
                    "{d:?}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn someone_else_spending_the_quota_counts_too() {
        let limiter = Limiter::new(100);
        let reset = epoch_now().ceil() as u64 + 2;
        limiter.acquire(Duration::from_secs(5)).await.expect("slot");
        // We sent one, but the provider says 5 of 5 are used: another client shares the key.
        limiter.observe(Some(&headers(&[
            ("x-ratelimit-limit", "5"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", &reset.to_string()),
        ])));
        assert!(matches!(
            limiter.acquire(Duration::from_millis(50)).await,
            Err(AdapterError::RateLimited { .. })
        ));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let up = Upstream::new(
            "http://127.0.0.1:1",
            UpstreamConfig {
                backoff_base: Duration::from_millis(100),
                backoff_max: Duration::from_millis(800),
                ..UpstreamConfig::default()
            },
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
