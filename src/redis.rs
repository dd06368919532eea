//! The Redis every replica shares (`redis_url`): one lazily connected, self
//! reconnecting connection per process. Upstream quotas, inbound limits per API
//! key and cache notices go through it; each falls back to its in-process form
//! while Redis cannot be reached.

use std::time::Duration;

pub use redis::aio::ConnectionManager;

/// A connection to `url` that connects on first use and reconnects by itself.
/// Commands fail fast (half a second) while Redis is away, so callers fall back
/// instead of waiting.
pub fn connect(url: &str) -> Result<ConnectionManager, redis::RedisError> {
    let client = redis::Client::open(url)?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(500)))
        .set_response_timeout(Some(Duration::from_millis(500)))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_secs(1));
    ConnectionManager::new_lazy_with_config(client, config)
}
