//! Figures of upstream traffic, reported to the process's default Prometheus
//! registry (the server renders it at `/metrics`). Label sets are bounded:
//! provider, operation, outcome, priority; a connection's id only when the
//! operator asks for it ([`set_per_connection`]).

use std::sync::OnceLock;

use prometheus::{CounterVec, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, Opts};

static PER_CONNECTION: OnceLock<bool> = OnceLock::new();

/// Whether upstream and sync figures carry a `connection_id` label. Set once at
/// start-up, before the first figure; later calls change nothing.
pub fn set_per_connection(on: bool) {
    let _ = PER_CONNECTION.set(on);
}

/// Registers the upstream families and, unless figures are per connection, the
/// 429 count and quota wait of every provider at 0 (so a scrape shows the
/// families before the first).
pub fn init() {
    let m = upstream();
    if !per_connection() {
        for p in crate::provider_kind::ProviderKind::ALL {
            m.throttled.with_label_values(&[p.as_str()]);
            for priority in [
                crate::quota::Priority::Interactive,
                crate::quota::Priority::Background,
            ] {
                m.quota_wait
                    .with_label_values(&[p.as_str(), priority.as_str()]);
            }
        }
    }
}

/// Whether figures carry a `connection_id` label.
pub fn per_connection() -> bool {
    *PER_CONNECTION.get_or_init(|| false)
}

/// `names`, with `connection_id` when figures are per connection.
pub fn label_names(names: &[&'static str]) -> Vec<&'static str> {
    let mut out = names.to_vec();
    if per_connection() {
        out.push("connection_id");
    }
    out
}

/// Registers `metric` with the default registry; a second registration of the
/// same name (two servers in one test process) keeps the first.
pub fn register<M: prometheus::core::Collector + Clone + 'static>(metric: M) -> M {
    let _ = prometheus::register(Box::new(metric.clone()));
    metric
}

/// Latency buckets of calls to a provider, in seconds.
const UPSTREAM_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

pub(crate) struct UpstreamMetrics {
    pub requests: IntCounterVec,
    pub duration: HistogramVec,
    pub throttled: IntCounterVec,
    pub quota_wait: CounterVec,
    pub quota_remaining: GaugeVec,
}

pub(crate) fn upstream() -> &'static UpstreamMetrics {
    static M: OnceLock<UpstreamMetrics> = OnceLock::new();
    M.get_or_init(|| UpstreamMetrics {
        requests: register(
            IntCounterVec::new(
                Opts::new(
                    "unicontacts_upstream_requests_total",
                    "HTTP requests sent to providers (every attempt), by outcome",
                ),
                &label_names(&["provider", "operation", "outcome"]),
            )
            .expect("metric"),
        ),
        duration: register(
            HistogramVec::new(
                HistogramOpts::new(
                    "unicontacts_upstream_request_duration_seconds",
                    "Time from sending a request to a provider to its answer's last byte",
                )
                .buckets(UPSTREAM_BUCKETS.to_vec()),
                &label_names(&["provider", "operation"]),
            )
            .expect("metric"),
        ),
        throttled: register(
            IntCounterVec::new(
                Opts::new(
                    "unicontacts_upstream_throttled_total",
                    "429 answers received from providers",
                ),
                &label_names(&["provider"]),
            )
            .expect("metric"),
        ),
        quota_wait: register(
            CounterVec::new(
                Opts::new(
                    "unicontacts_upstream_quota_wait_seconds_total",
                    "Time callers waited for the shared upstream quota before sending",
                ),
                &label_names(&["provider", "priority"]),
            )
            .expect("metric"),
        ),
        quota_remaining: register(
            GaugeVec::new(
                Opts::new(
                    "unicontacts_upstream_quota_remaining",
                    "Requests the provider last said were left in its window",
                ),
                &label_names(&["provider"]),
            )
            .expect("metric"),
        ),
    })
}

/// The labels one client reports under.
#[derive(Debug, Clone)]
pub struct MetricLabels {
    pub provider: &'static str,
    pub connection_id: Option<String>,
}

impl MetricLabels {
    /// `first`, then the connection's id when figures are per connection.
    pub fn values<'a>(&'a self, first: &[&'a str]) -> Vec<&'a str> {
        let mut out = first.to_vec();
        if per_connection() {
            out.push(self.connection_id.as_deref().unwrap_or(""));
        }
        out
    }
}
