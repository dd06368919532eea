//! The inbound limiter: a governor keyed limiter per API key, built once and shared
//! by every worker, pruned on a timer. Its state becomes `X-RateLimit-Limit`
//! (the burst), `X-RateLimit-Remaining` and `X-RateLimit-Reset` (epoch seconds when
//! the burst is whole again), the convention Periskope uses.

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
        }
    }

    pub fn check(&self, key_id: &str) -> RateInfo {
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

    /// Forgets keys whose state is back to full, so the map does not grow forever.
    pub fn prune(&self) {
        self.limiter.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_refused_past_its_burst_and_others_are_not_affected() {
        let limiter = InboundLimiter::new(1, 3);
        let infos: Vec<RateInfo> = (0..4).map(|_| limiter.check("a")).collect();
        assert_eq!(
            infos.iter().map(|i| i.remaining).collect::<Vec<_>>(),
            vec![2, 1, 0, 0]
        );
        assert!(infos[..3].iter().all(|i| i.retry_after.is_none()));
        assert_eq!(infos[3].retry_after, Some(1));
        assert_eq!(limiter.check("b").remaining, 2);
    }
}
