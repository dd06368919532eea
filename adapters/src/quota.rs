//! One upstream quota per provider credential (provider, base URL, API key),
//! asked by every caller before every request: sync pages and detail calls, live
//! reads, writes, in every process that shares it.
//!
//! - **Priorities and deadlines.** An interactive caller waits for a slot only as
//!   long as its deadline allows (then it fails with `RateLimited`, saying when to
//!   come back); a background caller (a sync) waits as long as it must. In a
//!   window, interactive callers go first: a background caller takes a slot while
//!   interactive ones wait only below its floor (a share of each window, 20% by
//!   default), so a busy API never starves reconciliation. Every wait, pacing
//!   included, is a sleep inside the caller's future: a caller that goes away
//!   (its HTTP client disconnected) gives its place up and sends nothing.
//! - **Header styles**, each from the provider's own documentation:
//!   [`RateStyle::Reset`] (Periskope: `X-RateLimit-Limit/Remaining/Reset`, Reset in
//!   epoch seconds, on every reply), [`RateStyle::Laravel`] (WA.cr: `Limit` and
//!   `Remaining` on every reply, `Retry-After` and `Reset` only on a 429; a window
//!   begins at the first request after the last one ended, its length learned),
//!   [`RateStyle::Silent`] (the Gateway: no headers; the connection's own rate).
//! - **Learning.** The limit and the window come from the replies; a learned limit
//!   relaxes back to the configured rate once replies stop carrying headers for a
//!   full window. A 429 pauses every caller until `Retry-After` (or `Reset`) and
//!   counts the window as spent.
//!
//! The decisions are [`QuotaState`]'s, a pure state machine over a clock in epoch
//! milliseconds. A quota of one process holds it behind a mutex. A quota shared
//! by replicas keeps it in Redis: each change is computed here from the state as
//! last seen and written by one compare-and-set script, which fails (and hands
//! back the current state to compute again) when another process changed it
//! meanwhile; so the rules are written once, and every change is atomic across
//! processes. While Redis cannot be reached, each process falls back to the state
//! it last saw, at 1/`replicas` of the limit, logs it once, and tries Redis again
//! every second.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;
use serde::Serialize;

use crate::error::AdapterError;

/// Who is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// A client is waiting (live reads, writes): goes first, waits only until its deadline.
    Interactive,
    /// Reconciliation: waits as long as it must, guaranteed its floor of each window.
    Background,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Interactive => "interactive",
            Self::Background => "background",
        }
    }
}

/// How a provider tells its quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateStyle {
    /// `X-RateLimit-Limit/Remaining/Reset` (epoch seconds) on every reply (Periskope).
    Reset,
    /// Laravel's throttle: `X-RateLimit-Limit/Remaining` on every reply,
    /// `Retry-After` and `X-RateLimit-Reset` on a 429 only; a window starts at
    /// the first request after the previous one ended (WA.cr).
    Laravel,
    /// No headers (the Gateway): the connection's configured rate is the quota.
    Silent,
}

/// The longest window a Laravel-style provider is documented to use (WA.cr: per minute).
const LARAVEL_MAX_WINDOW_MS: u64 = 60_000;
/// Added to an estimated window end, against the clock skew of estimating it from
/// our side of the wire.
const ESTIMATE_MARGIN_MS: u64 = 50;

/// A quota's fixed settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuotaConfig {
    pub style: RateStyle,
    /// Requests a second until the provider says otherwise (the connection's setting).
    pub per_second: u32,
    /// The share of each window background callers always get, 0 to 1.
    pub background_floor: f64,
}

/// A reply's rate-limit headers, read in the provider's style.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Observation {
    pub limit: Option<u32>,
    pub remaining: Option<u64>,
    /// When the window ends, epoch ms.
    pub reset_ms: Option<u64>,
    /// A 429's wait, ms.
    pub retry_after_ms: Option<u64>,
}

impl Observation {
    pub fn has_quota_headers(&self) -> bool {
        self.limit.is_some() || self.remaining.is_some()
    }
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
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Reads a reply's headers in `style`. `now_ms` turns a small `Reset` (seconds
/// until, as some servers send) into epoch ms.
pub fn observe_headers(style: RateStyle, headers: &HeaderMap, now_ms: u64) -> Observation {
    let retry_after_ms = retry_after(headers).map(|d| d.as_millis() as u64);
    if style == RateStyle::Silent {
        return Observation {
            retry_after_ms,
            ..Observation::default()
        };
    }
    let reset_ms = header_u64(headers, "x-ratelimit-reset").map(|r| {
        if r < 1_000_000_000 {
            now_ms.div_ceil(1000) * 1000 + r * 1000
        } else {
            r * 1000
        }
    });
    Observation {
        limit: header_u64(headers, "x-ratelimit-limit").map(|v| v.min(u64::from(u32::MAX)) as u32),
        remaining: header_u64(headers, "x-ratelimit-remaining"),
        reset_ms,
        retry_after_ms,
    }
}

pub fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The quota as a client sees it (for operators).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QuotaSnapshot {
    /// Requests per window (learned, or the configured rate per second).
    pub limit: u32,
    pub window_ms: u64,
    /// Whether `limit` came from the provider's headers.
    pub learned: bool,
    /// Requests left in the current window, as far as we know.
    pub remaining: u32,
    /// When the current window ends, epoch ms (0: no window open).
    pub reset_at_ms: u64,
    /// Nobody sends before this, epoch ms (0: not paused).
    pub paused_until_ms: u64,
}

/// The rules, over a clock in epoch ms. See the module doc. Serialised whole
/// when it is shared through Redis.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct QuotaState {
    pub limit: u32,
    pub window_ms: u64,
    pub learned: bool,
    /// When the current window ends (0: none open yet).
    pub window_end_ms: u64,
    /// Slots we took in this window (in flight included).
    pub used: i64,
    /// The most the provider said was used in this window.
    pub server_used: i64,
    /// Slots background callers took in this window.
    pub background_used: i64,
    pub in_flight: i64,
    pub paused_until_ms: u64,
    /// Pacing (GCRA): the theoretical arrival time of the next send. Sends come
    /// as fast as the window allows up to a burst of a whole window, then at the
    /// window's pace.
    pub next_slot_ms: u64,
    /// When a reply last carried quota headers.
    pub last_header_ms: u64,
    /// When the current window's first request was answered (Laravel: its start).
    pub window_start_ms: u64,
    /// `window_end_ms` is the provider's own word (a `Reset`), not our estimate.
    pub provider_window: bool,
    /// The deadlines (epoch ms) of the interactive callers waiting now, in every
    /// process that shares the quota (one that died is forgotten at its deadline).
    pub waiters: Vec<u64>,
    /// (minute since epoch, requests, 429s) for the last hour.
    pub minutes: Vec<(u64, u64, u64)>,
    /// The provider's own limit per window, when it said (0: not said).
    pub provider_limit: u32,
    /// This process's share while it cannot share the quota: `limit` is the
    /// provider's divided by it (0 or 1: the whole).
    pub divisor: u32,
}

impl QuotaState {
    pub fn new(config: &QuotaConfig) -> Self {
        Self {
            limit: config.per_second.max(1),
            window_ms: 1000,
            ..Self::default()
        }
    }

    /// Requests still allowed in this window.
    fn budget(&self) -> i64 {
        if self.provider_limit == 0 {
            return i64::from(self.limit) - self.used.max(self.server_used);
        }
        // Ours (a share of it, on the fallback) and the provider's count of all.
        (i64::from(self.limit) - self.used).min(i64::from(self.provider_limit) - self.server_used)
    }

    /// Whether sends keep to the window's exact pace, one at a time: while the
    /// quota is ours to guess (no headers yet, or a provider that sends none), the
    /// provider's windows may not line up with ours, and only an even pace keeps
    /// every window of theirs within the limit. Once the provider tells its
    /// windows, a whole window may go at once and the window is the hard stop.
    fn strict(&self) -> bool {
        !self.learned
    }

    /// The gap between two sends at the window's pace (run 10% fast once the
    /// window is the provider's, so the pace never holds throughput under it).
    fn pace_ms(&self) -> u64 {
        let speed = if self.strict() { 1.0 } else { 1.1 };
        (self.window_ms as f64 / (f64::from(self.limit.max(1)) * speed)).ceil() as u64
    }

    /// How far ahead of the pace a send may go: a whole window's burst, or none.
    fn tolerance_ms(&self) -> u64 {
        if self.strict() {
            0
        } else {
            self.pace_ms() * u64::from(self.limit.max(1) - 1)
        }
    }

    fn background_floor(&self, config: &QuotaConfig) -> i64 {
        (f64::from(self.limit) * config.background_floor.clamp(0.0, 1.0)).ceil() as i64
    }

    /// A window ended: a fresh one, less what is still on the wire (it may land in it).
    fn roll(&mut self, now: u64, config: &QuotaConfig) {
        if self.window_end_ms == 0 || now < self.window_end_ms {
            return;
        }
        self.window_end_ms = match config.style {
            // Windows follow each other at the provider's pace.
            RateStyle::Reset if self.provider_window => {
                let w = self.window_ms.max(1);
                let mut end = self.window_end_ms + w;
                while end <= now {
                    end += w;
                }
                end
            }
            // The next window starts with the next request.
            _ => {
                self.provider_window = false;
                0
            }
        };
        self.used = self.in_flight;
        self.server_used = 0;
        self.background_used = 0;
    }

    /// Takes a slot now, or says how long to wait before asking again.
    /// `others_waiting`: interactive callers waiting besides those in `waiters`
    /// (tests give it; callers register in `waiters`).
    pub fn try_acquire(
        &mut self,
        now: u64,
        priority: Priority,
        others_waiting: u64,
        config: &QuotaConfig,
    ) -> Result<(), u64> {
        self.roll(now, config);
        self.waiters.retain(|deadline| *deadline > now);
        let interactive_waiting = others_waiting + self.waiters.len() as u64;
        if self.paused_until_ms > now {
            return Err(self.paused_until_ms - now);
        }
        let tolerance = self.tolerance_ms();
        if self.next_slot_ms > now + tolerance {
            return Err(self.next_slot_ms - tolerance - now);
        }
        if self.budget() <= 0 {
            return Err(match self.window_end_ms {
                0 => 20,
                end => end.saturating_sub(now).max(1),
            });
        }
        if priority == Priority::Background
            && interactive_waiting > 0
            && self.background_used >= self.background_floor(config)
        {
            // Interactive callers first; look again at the next pace slot.
            return Err(self.pace_ms().max(10));
        }
        self.used += 1;
        self.in_flight += 1;
        if priority == Priority::Background {
            self.background_used += 1;
        }
        if self.window_end_ms == 0 {
            // Our own estimate until the provider says otherwise.
            self.window_end_ms = now + self.window_ms + ESTIMATE_MARGIN_MS;
            self.window_start_ms = now;
        }
        self.next_slot_ms = self.next_slot_ms.max(now) + self.pace_ms();
        Ok(())
    }

    /// A slot taken but never used (the caller went away before sending).
    pub fn release_unsent(&mut self) {
        self.in_flight = (self.in_flight - 1).max(0);
        self.used = (self.used - 1).max(0);
        self.next_slot_ms = self.next_slot_ms.saturating_sub(self.pace_ms());
    }

    /// A reply (or a failure with no reply: `observation` empty, `replied` false).
    pub fn observe(&mut self, now: u64, replied: bool, obs: &Observation, config: &QuotaConfig) {
        self.in_flight = (self.in_flight - 1).max(0);
        if !replied {
            return;
        }
        if !obs.has_quota_headers() {
            // Headers stopped coming for a full window: back to the configured rate.
            if self.learned && now.saturating_sub(self.last_header_ms) > self.window_ms.max(1000) {
                self.learned = false;
                self.provider_window = false;
                self.provider_limit = 0;
                self.limit = (config.per_second / self.divisor.max(1)).max(1);
                self.window_ms = 1000;
                self.window_end_ms = 0;
                self.server_used = 0;
            }
            return;
        }
        self.last_header_ms = now;
        if let Some(l) = obs.limit {
            let l = l.max(1);
            let share = (l / self.divisor.max(1)).max(1);
            if !self.learned || l != self.provider_limit || share != self.limit {
                self.limit = share;
                if config.style == RateStyle::Laravel && !self.learned {
                    // A first guess at the window: the limit at the configured rate,
                    // within what the provider documents; a 429's Reset corrects it.
                    let guess = u64::from(l) * 1000 / u64::from(config.per_second.max(1));
                    self.window_ms = guess.clamp(1000, LARAVEL_MAX_WINDOW_MS);
                }
            }
            self.provider_limit = l;
            self.learned = true;
        }
        let server_count = match (obs.remaining, self.provider_limit) {
            (Some(r), l) if l > 0 => Some(i64::from(l) - r as i64),
            _ => None,
        };
        match config.style {
            RateStyle::Reset => match obs.reset_ms {
                // A late reply from an older window of the provider's.
                Some(t) if self.provider_window && t < self.window_end_ms => {}
                Some(t) => {
                    let newer = self.provider_window && t > self.window_end_ms;
                    self.window_end_ms = t;
                    self.provider_window = true;
                    if newer {
                        // The provider is in a newer window than we thought.
                        self.used = self.in_flight + 1;
                        self.background_used = 0;
                        self.server_used = server_count.unwrap_or(0);
                    } else if let Some(u) = server_count {
                        self.server_used = self.server_used.max(u);
                    }
                    if server_count == Some(1) {
                        // The window's first request: its length is the time to reset.
                        self.window_ms = t.saturating_sub(now).div_ceil(1000).max(1) * 1000;
                    }
                }
                None => {
                    if let Some(u) = server_count {
                        self.server_used = self.server_used.max(u);
                    }
                }
            },
            RateStyle::Laravel => {
                if server_count == Some(1) {
                    // The first request of a window: it began before this answer,
                    // so it ends no later than a window from now. What we sent
                    // since our own estimate's start stays counted: answers come
                    // out of order, and which of the sends in flight fell in the
                    // new window is unknown, so all of them may have.
                    self.window_start_ms = now;
                    self.window_end_ms = now + self.window_ms + ESTIMATE_MARGIN_MS;
                    self.server_used = 1;
                } else if let Some(u) = server_count {
                    self.server_used = self.server_used.max(u);
                }
            }
            RateStyle::Silent => {}
        }
    }

    /// A 429: everybody pauses for `wait_ms`, and the window counts as spent. A
    /// Laravel 429 says when its window ends: that is its length, learned.
    pub fn throttled(&mut self, now: u64, obs: &Observation, config: &QuotaConfig) {
        let wait = obs
            .retry_after_ms
            .or_else(|| obs.reset_ms.map(|r| r.saturating_sub(now)))
            .unwrap_or(1000);
        let until = now + wait;
        self.paused_until_ms = self.paused_until_ms.max(until);
        self.server_used = i64::from(self.limit.max(self.provider_limit));
        if config.style == RateStyle::Laravel {
            if let Some(reset) = obs.reset_ms.or(Some(until)) {
                if self.window_start_ms != 0 && reset > self.window_start_ms {
                    let learned = (reset - self.window_start_ms).div_ceil(1000) * 1000;
                    self.window_ms = learned.clamp(1000, LARAVEL_MAX_WINDOW_MS);
                }
                self.window_end_ms = reset.max(self.window_end_ms);
            }
        }
    }

    /// Counts a request (and whether it was answered 429) in its minute.
    pub fn count(&mut self, now: u64, throttled: bool) {
        let minute = now / 60_000;
        self.minutes.retain(|(at, _, _)| at + 60 > minute);
        match self.minutes.iter_mut().find(|(at, _, _)| *at == minute) {
            Some(slot) => {
                slot.1 += 1;
                slot.2 += u64::from(throttled);
            }
            None => self.minutes.push((minute, 1, u64::from(throttled))),
        }
    }

    /// Requests and 429s of the last hour.
    pub fn last_hour(&self, now: u64) -> (u64, u64) {
        let minute = now / 60_000;
        self.minutes
            .iter()
            .filter(|(at, _, _)| at + 60 > minute)
            .fold((0, 0), |(r, t), (_, rr, tt)| (r + rr, t + tt))
    }

    pub fn snapshot(&self, now: u64) -> QuotaSnapshot {
        let open = self.window_end_ms > now;
        QuotaSnapshot {
            limit: self.limit,
            window_ms: self.window_ms,
            learned: self.learned,
            remaining: if open {
                self.budget().max(0) as u32
            } else {
                self.limit
            },
            reset_at_ms: if open { self.window_end_ms } else { 0 },
            paused_until_ms: if self.paused_until_ms > now {
                self.paused_until_ms
            } else {
                0
            },
        }
    }
}

/// What a quota reports to operators.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QuotaReport {
    #[serde(flatten)]
    pub now: QuotaSnapshot,
    pub requests_last_hour: u64,
    pub throttled_last_hour: u64,
}

/// How long an idle credential's shared state stays in Redis.
const SHARED_TTL_SECS: u64 = 3600;
/// How long a quota keeps to its in-process fallback before trying Redis again.
const RETRY_REDIS_AFTER: Duration = Duration::from_secs(1);

/// Compare-and-set of a quota's state: written only if it is still what the
/// caller read, else the current value comes back. One script per change, so a
/// change is atomic across every process sharing the quota.
const CAS_SCRIPT: &str = r"
local current = redis.call('GET', KEYS[1])
if current == false then current = '' end
if current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return {1, ''}
end
return {0, current}
";

/// A quota's state in Redis, with the in-process fallback for when Redis cannot
/// be reached: the learned limit divided by the number of processes sharing it.
struct Shared {
    redis: redis::aio::ConnectionManager,
    key: String,
    script: redis::Script,
    /// The state as last read or written: the expected value of the next change.
    cached: Mutex<String>,
    /// Processes sharing the quota, to divide the limit by while on the fallback.
    divisor: u32,
    /// Set while Redis is unreachable: the fallback state, and when to try again.
    fallback: Mutex<Option<(QuotaState, Instant)>>,
}

/// One credential's quota. Cheap to share (`Arc`).
pub struct Quota {
    config: QuotaConfig,
    /// The state when it is this process's alone.
    local: Mutex<QuotaState>,
    /// The state when replicas share it through Redis.
    shared: Option<Shared>,
}

impl std::fmt::Debug for Quota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quota")
            .field("config", &self.config)
            .field("shared", &self.shared.is_some())
            .finish_non_exhaustive()
    }
}

/// A slot taken: report the reply with [`Permit::replied`] or [`Permit::failed`]
/// (or drop it: unsent, the slot is given back).
pub struct Permit {
    quota: Arc<Quota>,
    sent: bool,
    settled: bool,
}

impl Permit {
    /// The request is on the wire.
    pub fn sent(&mut self) {
        self.sent = true;
    }

    /// The provider answered `status` with `headers`; returns what they said.
    pub async fn replied(mut self, status: u16, headers: &HeaderMap) -> Observation {
        self.settled = true;
        let now = epoch_ms();
        let obs = observe_headers(self.quota.config.style, headers, now);
        self.quota
            .update(|s, c| {
                s.observe(now, true, &obs, c);
                if status == 429 {
                    s.throttled(now, &obs, c);
                }
                s.count(now, status == 429);
            })
            .await;
        obs
    }

    /// No answer came (a timeout, a broken connection).
    pub async fn failed(mut self) {
        self.settled = true;
        let now = epoch_ms();
        self.quota
            .update(|s, c| {
                s.observe(now, false, &Observation::default(), c);
                s.count(now, false);
            })
            .await;
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let (quota, sent) = (self.quota.clone(), self.sent);
        let release = async move {
            quota
                .update(|s, c| {
                    if sent {
                        s.observe(epoch_ms(), false, &Observation::default(), c);
                    } else {
                        s.release_unsent();
                    }
                })
                .await;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(release);
        }
    }
}

/// Takes an interactive caller off the waiters when it goes (granted, past its
/// deadline, or dropped).
struct Waiting {
    quota: Arc<Quota>,
    deadline: u64,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let (quota, deadline) = (self.quota.clone(), self.deadline);
        let leave = async move {
            quota
                .update(|s, _| {
                    if let Some(i) = s.waiters.iter().position(|d| *d == deadline) {
                        s.waiters.swap_remove(i);
                    }
                })
                .await;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(leave);
        }
    }
}

impl Quota {
    /// A quota of this process alone.
    pub fn new(config: QuotaConfig) -> Arc<Self> {
        Arc::new(Self {
            local: Mutex::new(QuotaState::new(&config)),
            config,
            shared: None,
        })
    }

    /// A quota shared through Redis under `key` by `divisor` processes.
    pub fn shared(
        config: QuotaConfig,
        redis: redis::aio::ConnectionManager,
        key: String,
        divisor: u32,
    ) -> Arc<Self> {
        Arc::new(Self {
            local: Mutex::new(QuotaState::new(&config)),
            shared: Some(Shared {
                redis,
                key,
                script: redis::Script::new(CAS_SCRIPT),
                cached: Mutex::new(String::new()),
                divisor: divisor.max(1),
                fallback: Mutex::new(None),
            }),
            config,
        })
    }

    pub fn config(&self) -> QuotaConfig {
        self.config
    }

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies `f` to the state, atomically for every process sharing it. `f`
    /// may run more than once (a compare-and-set lost to another process).
    async fn update<T>(&self, mut f: impl FnMut(&mut QuotaState, &QuotaConfig) -> T) -> T {
        let Some(shared) = &self.shared else {
            return f(&mut Self::lock(&self.local), &self.config);
        };
        let on_fallback = Self::lock(&shared.fallback)
            .as_ref()
            .is_some_and(|(_, retry_at)| Instant::now() < *retry_at);
        if !on_fallback {
            match self.update_shared(shared, &mut f).await {
                Ok(out) => {
                    if Self::lock(&shared.fallback).take().is_some() {
                        tracing::warn!(quota = %shared.key, "Redis is reachable again; the quota is shared again");
                    }
                    return out;
                }
                Err(e) => {
                    let mut fb = Self::lock(&shared.fallback);
                    match fb.as_mut() {
                        Some((_, retry_at)) => *retry_at = Instant::now() + RETRY_REDIS_AFTER,
                        None => {
                            tracing::warn!(
                                quota = %shared.key, error = %e, divisor = shared.divisor,
                                "Redis is unreachable; the upstream quota falls back to this process, at a share of its limit"
                            );
                            *fb = Some((
                                self.fallback_state(shared),
                                Instant::now() + RETRY_REDIS_AFTER,
                            ));
                        }
                    }
                }
            }
        }
        let mut fb = Self::lock(&shared.fallback);
        let config = self.fallback_config(shared);
        match fb.as_mut() {
            Some((state, _)) => f(state, &config),
            None => f(&mut Self::lock(&self.local), &config),
        }
    }

    /// The quota this process may use alone while Redis is away: the last known
    /// state, its limit divided among the processes that share it.
    fn fallback_state(&self, shared: &Shared) -> QuotaState {
        let cached = Self::lock(&shared.cached).clone();
        let mut state: QuotaState =
            serde_json::from_str(&cached).unwrap_or_else(|_| QuotaState::new(&self.config));
        state.divisor = shared.divisor;
        let whole = if state.provider_limit > 0 {
            state.provider_limit
        } else {
            state.limit
        };
        state.limit = (whole / shared.divisor).max(1);
        // What every process used of the current window stays counted.
        state.in_flight = 0;
        state.waiters.clear();
        state
    }

    fn fallback_config(&self, shared: &Shared) -> QuotaConfig {
        QuotaConfig {
            per_second: (self.config.per_second / shared.divisor).max(1),
            ..self.config
        }
    }

    async fn update_shared<T>(
        &self,
        shared: &Shared,
        f: &mut impl FnMut(&mut QuotaState, &QuotaConfig) -> T,
    ) -> Result<T, redis::RedisError> {
        let mut redis = shared.redis.clone();
        loop {
            let expected = Self::lock(&shared.cached).clone();
            let mut state = if expected.is_empty() {
                QuotaState::new(&self.config)
            } else {
                serde_json::from_str(&expected).unwrap_or_else(|_| QuotaState::new(&self.config))
            };
            let out = f(&mut state, &self.config);
            let written = serde_json::to_string(&state).unwrap_or_default();
            let (done, current): (i64, String) = shared
                .script
                .key(&shared.key)
                .arg(&expected)
                .arg(&written)
                .arg(SHARED_TTL_SECS)
                .invoke_async(&mut redis)
                .await?;
            *Self::lock(&shared.cached) = if done == 1 { written } else { current };
            if done == 1 {
                return Ok(out);
            }
        }
    }

    /// Waits for a slot; an interactive caller only until `deadline` (then
    /// `RateLimited` with the wait it would have needed). Dropping the future
    /// gives the place up.
    pub async fn acquire(
        self: &Arc<Self>,
        priority: Priority,
        deadline: Option<Instant>,
    ) -> Result<(Permit, Duration), AdapterError> {
        let started = Instant::now();
        let mut waiting: Option<Waiting> = None;
        loop {
            let now = epoch_ms();
            let decision = self.update(|s, c| s.try_acquire(now, priority, 0, c)).await;
            match decision {
                Ok(()) => {
                    return Ok((
                        Permit {
                            quota: self.clone(),
                            sent: false,
                            settled: false,
                        },
                        started.elapsed(),
                    ))
                }
                Err(wait_ms) => {
                    let wait = Duration::from_millis(wait_ms);
                    if let Some(deadline) = deadline {
                        if Instant::now() + wait > deadline {
                            return Err(AdapterError::RateLimited {
                                retry_after: Some(wait),
                            });
                        }
                    }
                    if priority == Priority::Interactive && waiting.is_none() {
                        // Known to every process, so background callers yield to it.
                        let until = now
                            + deadline
                                .map(|d| d.saturating_duration_since(Instant::now()))
                                .unwrap_or(Duration::from_secs(60))
                                .as_millis() as u64;
                        self.update(|s, _| s.waiters.push(until)).await;
                        waiting = Some(Waiting {
                            quota: self.clone(),
                            deadline: until,
                        });
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    pub async fn report(&self) -> QuotaReport {
        let now = epoch_ms();
        self.update(|s, _| {
            let (requests, throttled) = s.last_hour(now);
            QuotaReport {
                now: s.snapshot(now),
                requests_last_hour: requests,
                throttled_last_hour: throttled,
            }
        })
        .await
    }
}

/// The quotas of this process, one per credential id (see
/// `ConnectionConfig::credential_id`), in this process or shared through Redis.
/// Cheap to clone (shared inside).
#[derive(Clone, Default)]
pub struct QuotaRegistry {
    quotas: Arc<Mutex<std::collections::HashMap<String, Arc<Quota>>>>,
    /// Redis, and the number of processes that share it.
    shared: Option<(redis::aio::ConnectionManager, u32)>,
}

impl QuotaRegistry {
    /// Quotas shared with every process on the same Redis; while it cannot be
    /// reached, each process keeps to 1/`divisor` of the limit on its own.
    pub fn shared(redis: redis::aio::ConnectionManager, divisor: u32) -> Self {
        Self {
            quotas: Arc::default(),
            shared: Some((redis, divisor)),
        }
    }

    /// The credential's quota; the first caller's settings make it.
    pub fn quota(&self, credential_id: &str, config: QuotaConfig) -> Arc<Quota> {
        let mut map = self.quotas.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(credential_id.to_string())
            .or_insert_with(|| match &self.shared {
                Some((redis, divisor)) => Quota::shared(
                    config,
                    redis.clone(),
                    format!("unicontacts:quota:{credential_id}"),
                    *divisor,
                ),
                None => Quota::new(config),
            })
            .clone()
    }

    /// What the credential's quota looks like now, if this process has used it.
    pub async fn report(&self, credential_id: &str) -> Option<QuotaReport> {
        let quota = {
            let map = self.quotas.lock().unwrap_or_else(|p| p.into_inner());
            map.get(credential_id).cloned()
        }?;
        Some(quota.report().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(style: RateStyle, per_second: u32) -> QuotaConfig {
        QuotaConfig {
            style,
            per_second,
            background_floor: 0.2,
        }
    }

    fn obs(limit: u32, remaining: u64, reset_ms: Option<u64>) -> Observation {
        Observation {
            limit: Some(limit),
            remaining: Some(remaining),
            reset_ms,
            retry_after_ms: None,
        }
    }

    /// A state that has learned `limit` per 1 s window from the provider.
    fn learned(c: &QuotaConfig, limit: u32) -> QuotaState {
        let mut s = QuotaState::new(c);
        s.limit = limit;
        s.learned = true;
        s
    }

    /// Takes every slot it can at `now`; returns how many.
    fn drain(s: &mut QuotaState, now: u64, p: Priority, waiting: u64, c: &QuotaConfig) -> usize {
        let mut n = 0;
        while s.try_acquire(now, p, waiting, c).is_ok() {
            n += 1;
        }
        n
    }

    #[test]
    fn a_reset_style_window_is_spent_until_its_reset_whatever_the_replies_counted() {
        let c = cfg(RateStyle::Reset, 100);
        let mut s = QuotaState::new(&c);
        let t = 1_000_000_000_000;
        s.try_acquire(t, Priority::Background, 0, &c)
            .expect("first");
        s.observe(t + 10, true, &obs(3, 2, Some(t + 2000)), &c);
        assert_eq!((s.limit, s.window_ms), (3, 2000), "learned");
        assert_eq!(drain(&mut s, t + 20, Priority::Background, 0, &c), 2);
        // Spent: the next slot is at the reset.
        assert_eq!(
            s.try_acquire(t + 30, Priority::Background, 0, &c),
            Err(1970)
        );
        assert!(s.try_acquire(t + 2000, Priority::Background, 0, &c).is_ok());
    }

    #[test]
    fn someone_else_spending_the_same_key_counts_too() {
        let c = cfg(RateStyle::Reset, 100);
        let mut s = QuotaState::new(&c);
        let t = 1_000_000_000_000;
        s.try_acquire(t, Priority::Interactive, 0, &c)
            .expect("slot");
        s.observe(t + 5, true, &obs(5, 0, Some(t + 1000)), &c);
        assert!(s.try_acquire(t + 10, Priority::Interactive, 0, &c).is_err());
    }

    #[test]
    fn interactive_callers_go_first_above_the_background_floor() {
        let c = cfg(RateStyle::Reset, 10);
        let mut s = learned(&c, 10);
        let t = 1_000_000_000_000;
        // With interactive callers waiting, background gets its floor (2 of 10) only.
        assert_eq!(drain(&mut s, t, Priority::Background, 3, &c), 2);
        assert_eq!(drain(&mut s, t, Priority::Interactive, 0, &c), 8);
        // Nobody waiting: background may take what is left of a fresh window.
        let mut s = learned(&c, 10);
        assert_eq!(drain(&mut s, t, Priority::Background, 0, &c), 10);
    }

    #[test]
    fn a_burst_of_a_learned_window_then_the_windows_pace() {
        let c = cfg(RateStyle::Reset, 100);
        let mut s = learned(&c, 10);
        let t = 1_000_000_000_000;
        for _ in 0..10 {
            s.try_acquire(t, Priority::Background, 0, &c)
                .expect("a burst of the window");
        }
        // Were the window's count whole again at once, the pacer still spaces
        // sends at a tenth of the window, run 10% fast.
        s.used = 0;
        s.try_acquire(t + 100, Priority::Background, 0, &c)
            .expect("one slot");
        assert_eq!(s.try_acquire(t + 100, Priority::Background, 0, &c), Err(82));
    }

    #[test]
    fn a_guessed_quota_keeps_an_even_pace() {
        // No headers: any window of the provider's, wherever it starts, sees at
        // most the limit.
        let c = cfg(RateStyle::Silent, 5);
        let mut s = QuotaState::new(&c);
        let t = 1_000_000_000_000;
        s.try_acquire(t, Priority::Background, 0, &c)
            .expect("first");
        assert_eq!(s.try_acquire(t, Priority::Background, 0, &c), Err(200));
        assert!(s.try_acquire(t + 200, Priority::Background, 0, &c).is_ok());
    }

    #[test]
    fn a_laravel_window_starts_at_its_first_request_and_a_429_teaches_its_length() {
        let c = cfg(RateStyle::Laravel, 1);
        let mut s = QuotaState::new(&c);
        let t = 1_000_000_000_000;
        s.try_acquire(t, Priority::Background, 0, &c)
            .expect("first");
        s.observe(t + 20, true, &obs(60, 59, None), &c);
        assert_eq!(s.window_ms, 60_000, "60 at 1/s: a minute");
        assert_eq!(s.window_end_ms, t + 20 + 60_000 + ESTIMATE_MARGIN_MS);
        // A 429 (the provider's window was shorter): its Reset is the truth.
        s.throttled(
            t + 100,
            &Observation {
                limit: Some(60),
                remaining: Some(0),
                reset_ms: Some(t + 30_000),
                retry_after_ms: Some(29_900),
            },
            &c,
        );
        assert_eq!(s.window_ms, 30_000);
        assert_eq!(s.paused_until_ms, t + 30_000);
    }

    #[test]
    fn a_learned_limit_relaxes_when_headers_stop_for_a_window() {
        let c = cfg(RateStyle::Reset, 7);
        let mut s = QuotaState::new(&c);
        let t = 1_000_000_000_000;
        s.try_acquire(t, Priority::Interactive, 0, &c)
            .expect("slot");
        s.observe(t, true, &obs(2, 1, Some(t + 1000)), &c);
        assert_eq!((s.limit, s.learned), (2, true));
        s.try_acquire(t + 200, Priority::Interactive, 0, &c)
            .expect("slot");
        s.observe(t + 500, true, &Observation::default(), &c);
        assert!(s.learned, "within the window: still learned");
        s.try_acquire(t + 1500, Priority::Interactive, 0, &c)
            .expect("slot");
        s.observe(t + 1600, true, &Observation::default(), &c);
        assert_eq!(
            (s.limit, s.learned),
            (7, false),
            "back to the configured rate"
        );
    }

    #[test]
    fn a_slot_given_up_unsent_is_returned() {
        let c = cfg(RateStyle::Silent, 1);
        let mut s = QuotaState::new(&c);
        let t = 1_000_000_000_000;
        s.try_acquire(t, Priority::Interactive, 0, &c)
            .expect("slot");
        s.release_unsent();
        assert!(s.try_acquire(t + 1, Priority::Interactive, 0, &c).is_ok());
    }

    #[tokio::test]
    async fn an_interactive_wait_never_passes_its_deadline() {
        let q = Quota::new(cfg(RateStyle::Silent, 1));
        let (p, _) = q
            .acquire(Priority::Interactive, None)
            .await
            .expect("first slot");
        p.failed().await;
        let started = Instant::now();
        let err = q
            .acquire(
                Priority::Interactive,
                Some(Instant::now() + Duration::from_millis(100)),
            )
            .await
            .err()
            .expect("no slot within 100 ms");
        assert!(started.elapsed() < Duration::from_millis(100));
        assert!(
            matches!(err, AdapterError::RateLimited { retry_after: Some(d) } if d > Duration::from_millis(500))
        );
    }
}
