//! The inbound limiter per API key: GCRA at `rate_limit_per_second` with a burst
//! of `rate_limit_burst`. In one process a governor keyed limiter, built once and
//! shared by every worker, pruned on a timer; with Redis, the same rule in one Lua
//! script per request over shared state, so a key's quota is one across replicas
//! (and while Redis cannot be reached, the in-process limiter again, logged once).
//! Its state becomes `X-RateLimit-Limit` (the burst), `X-RateLimit-Remaining` and
//! `X-RateLimit-Reset` (epoch seconds when the burst is whole again), the
//! convention Periskope uses.

use std::num::NonZeroU32;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

type Keyed =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// What the limiter said about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateInfo {
    pub limit: u32,
    pub remaining: u32,
    /// Epoch seconds.
    pub reset: u64,
    /// Set when the request is over quota: seconds to wait.
    pub retry_after: Option<u64>,
}

pub struct InboundLimiter {
    limiter: Keyed,
    burst: u32,
    period: Duration,
    clock: DefaultClock,
    shared: Option<Shared>,
}

/// GCRA over a key's theoretical arrival time (epoch ms), taking up to `want`
/// requests' worth at once: one script per take, so concurrent takes of every
/// replica are counted exactly once. ARGV: now (ms), emission interval (ms),
/// burst, want. Returns how many were granted (0: over the quota), remaining,
/// ms until the burst is whole, ms until the next request is allowed.
const GCRA_SCRIPT: &str = r"
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local want = tonumber(ARGV[4])
local tolerance = interval * (burst - 1)
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local allow_at = tat - tolerance
if now < allow_at then
  return {0, 0, math.ceil(tat - now), math.ceil(allow_at - now)}
end
local available = math.floor((now + tolerance - tat) / interval) + 1
local granted = math.min(want, available)
local new_tat = tat + granted * interval
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(new_tat - now) + 1000)
local remaining = math.floor((now + tolerance - new_tat) / interval) + 1
if remaining < 0 then remaining = 0 end
return {granted, remaining, math.ceil(new_tat - now), 0}
";

/// How long requests taken ahead from Redis may be used by this replica; what
/// is left then is forgotten (so a replica never sits on another's share).
const TAKEN_FOR: std::time::Duration = std::time::Duration::from_millis(250);

/// Requests of a key this replica took from Redis ahead of use.
#[derive(Debug, Clone, Copy)]
struct Taken {
    left: u32,
    until: std::time::Instant,
    /// What Redis said was left when they were taken.
    remaining: u32,
    reset: u64,
}

struct Shared {
    redis: crate::redis::ConnectionManager,
    script: redis::Script,
    /// Set while Redis cannot be reached: when to try it again.
    down: std::sync::Mutex<Option<std::time::Instant>>,
    /// How many requests' worth one take asks for: a twentieth of the burst (at
    /// most 100), so a replica holds at most that much of a key's quota ahead,
    /// and a key with a small quota is counted one request at a time.
    batch: u32,
    taken: std::sync::Mutex<std::collections::HashMap<String, Taken>>,
}

fn epoch_secs_after(d: Duration) -> u64 {
    (SystemTime::now() + d)
        .duration_since(UNIX_EPOCH)
        .map(|t| t.as_secs_f64().ceil() as u64)
        .unwrap_or(0)
}

impl InboundLimiter {
    pub fn new(per_second: u32, burst: u32) -> Self {
        let rate = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst_nz = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_second(rate).allow_burst(burst_nz);
        Self {
            limiter: RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>(),
            burst: burst_nz.get(),
            period: Duration::from_secs(1) / rate.get(),
            clock: DefaultClock::default(),
            shared: None,
        }
    }

    /// The limiter with its state in Redis, shared by every replica.
    pub fn shared(per_second: u32, burst: u32, redis: crate::redis::ConnectionManager) -> Self {
        Self {
            shared: Some(Shared {
                redis,
                script: redis::Script::new(GCRA_SCRIPT),
                down: std::sync::Mutex::new(None),
                batch: (burst / 20).clamp(1, 100),
                taken: std::sync::Mutex::new(std::collections::HashMap::new()),
            }),
            ..Self::new(per_second, burst)
        }
    }

    /// Counts a request of the key: how much of its quota is left, or how long to wait.
    pub async fn check(&self, key_id: &str) -> RateInfo {
        let Some(shared) = &self.shared else {
            return self.check_here(key_id);
        };
        let retry_later = {
            let down = shared.down.lock().unwrap_or_else(|p| p.into_inner());
            down.is_some_and(|until| std::time::Instant::now() < until)
        };
        if retry_later {
            return self.check_here(key_id);
        }
        {
            let mut taken = shared.taken.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(t) = taken.get_mut(key_id) {
                if t.left > 0 && std::time::Instant::now() < t.until {
                    t.left -= 1;
                    return RateInfo {
                        limit: self.burst,
                        remaining: t.remaining + t.left,
                        reset: t.reset,
                        retry_after: None,
                    };
                }
            }
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let result: redis::RedisResult<(i64, i64, i64, i64)> = shared
            .script
            .key(format!("unicontacts:inbound:{key_id}"))
            .arg(now)
            .arg(self.period.as_micros() as f64 / 1000.0)
            .arg(self.burst)
            .arg(shared.batch)
            .invoke_async(&mut shared.redis.clone())
            .await;
        let mut down = shared.down.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok((granted, remaining, reset_ms, retry_ms)) => {
                if down.take().is_some() {
                    tracing::warn!("Redis is reachable again; inbound limits are shared again");
                }
                drop(down);
                let after = |ms: i64| epoch_secs_after(Duration::from_millis(ms.max(0) as u64));
                let info = RateInfo {
                    limit: self.burst,
                    remaining: remaining.clamp(0, i64::from(self.burst)) as u32,
                    reset: after(reset_ms),
                    retry_after: (granted == 0)
                        .then(|| (retry_ms.max(1) as u64).div_ceil(1000).max(1)),
                };
                if granted > 1 {
                    // Concurrent takes of one key add up: none is thrown away (a
                    // request took each from the key's quota in Redis).
                    let fresh = Taken {
                        left: (granted - 1) as u32,
                        until: std::time::Instant::now() + TAKEN_FOR,
                        remaining: info.remaining,
                        reset: info.reset,
                    };
                    let mut taken = shared.taken.lock().unwrap_or_else(|p| p.into_inner());
                    match taken.get_mut(key_id) {
                        Some(t) if t.until > std::time::Instant::now() => {
                            *t = Taken {
                                left: t.left + fresh.left,
                                ..fresh
                            };
                        }
                        _ => {
                            taken.insert(key_id.to_string(), fresh);
                        }
                    }
                }
                RateInfo {
                    remaining: info.remaining + granted.max(1) as u32 - 1,
                    ..info
                }
            }
            Err(e) => {
                if down.is_none() {
                    tracing::warn!(error = %e, "Redis is unreachable; inbound limits fall back to this process");
                }
                *down = Some(std::time::Instant::now() + Duration::from_secs(1));
                drop(down);
                self.check_here(key_id)
            }
        }
    }

    fn check_here(&self, key_id: &str) -> RateInfo {
        match self.limiter.check_key(&key_id.to_string()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                RateInfo {
                    limit: self.burst,
                    remaining,
                    reset: epoch_secs_after(self.period * (self.burst - remaining)),
                    retry_after: None,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                RateInfo {
                    limit: self.burst,
                    remaining: 0,
                    reset: epoch_secs_after(self.period * self.burst),
                    retry_after: Some(wait.as_secs_f64().ceil().max(1.0) as u64),
                }
            }
        }
    }

    /// Forgets keys whose state is back to full, so the maps do not grow forever.
    pub fn prune(&self) {
        self.limiter.retain_recent();
        if let Some(shared) = &self.shared {
            let now = std::time::Instant::now();
            shared
                .taken
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|_, t| t.until > now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_refused_past_its_burst_and_others_are_not_affected() {
        let limiter = InboundLimiter::new(1, 3);
        let infos: Vec<RateInfo> = (0..4).map(|_| limiter.check_here("a")).collect();
        assert_eq!(
            infos.iter().map(|i| i.remaining).collect::<Vec<_>>(),
            vec![2, 1, 0, 0]
        );
        assert!(infos[..3].iter().all(|i| i.retry_after.is_none()));
        assert_eq!(infos[3].retry_after, Some(1));
        assert_eq!(limiter.check_here("b").remaining, 2);
    }
}
