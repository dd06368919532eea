//! The service's Prometheus figures (`GET /metrics`), beside the adapters'
//! upstream ones in the same default registry. Names follow the OpenTelemetry
//! conventions in Prometheus form; label sets are bounded (route templates,
//! providers; connection ids only with `metrics_per_connection`).

use std::sync::OnceLock;
use std::time::Duration;

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, TextEncoder,
};
use unicontacts_adapters::metrics::{label_names, register, MetricLabels};

use crate::store::models::SyncRunRow;
use crate::store::Store;

/// Buckets of a sync run's length, in seconds.
const SYNC_BUCKETS: &[f64] = &[
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

struct Metrics {
    http: HistogramVec,
    cache: IntCounterVec,
    partial_reads: IntCounterVec,
    sync_runs: IntCounterVec,
    sync_contacts: IntCounterVec,
    sync_duration: HistogramVec,
    pool: IntGaugeVec,
    deletions_held: IntGaugeVec,
    deliveries: IntCounterVec,
    build: GaugeVec,
}

fn metrics() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(|| {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            register(IntCounterVec::new(Opts::new(name, help), labels).expect("metric"))
        };
        let m = Metrics {
            http: register(
                HistogramVec::new(
                    HistogramOpts::new(
                        "http_server_request_duration_seconds",
                        "Time to answer an HTTP request, by route template",
                    ),
                    &["method", "route", "status"],
                )
                .expect("metric"),
            ),
            cache: counter(
                "unicontacts_cache_requests_total",
                "Live reads by how the cache answered them",
                &["result"],
            ),
            partial_reads: counter(
                "unicontacts_live_reads_partial_total",
                "Live reads answered without a part the provider would not give (`part`: chats)",
                &["provider", "part"],
            ),
            sync_runs: counter(
                "unicontacts_sync_runs_total",
                "Sync runs finished, by how they ended",
                &label_names(&["provider", "trigger", "status"]),
            ),
            sync_contacts: counter(
                "unicontacts_sync_contacts_total",
                "Contacts sync runs wrote or found unchanged",
                &label_names(&["provider", "action"]),
            ),
            sync_duration: register(
                HistogramVec::new(
                    HistogramOpts::new(
                        "unicontacts_sync_run_duration_seconds",
                        "Length of finished sync runs",
                    )
                    .buckets(SYNC_BUCKETS.to_vec()),
                    &label_names(&["provider"]),
                )
                .expect("metric"),
            ),
            pool: register(
                IntGaugeVec::new(
                    Opts::new(
                        "unicontacts_db_pool_connections",
                        "Database connections of this process's pool, by state",
                    ),
                    &["state"],
                )
                .expect("metric"),
            ),
            deletions_held: register(
                IntGaugeVec::new(
                    Opts::new(
                        "unicontacts_sync_deletions_held",
                        "Contacts whose deletion a sync's deletion guard holds for review, \
                         by provider (read from the database: every replica shows the same)",
                    ),
                    &["provider"],
                )
                .expect("metric"),
            ),
            deliveries: counter(
                "unicontacts_webhook_deliveries_total",
                "Webhook delivery attempts, by outcome",
                &["outcome"],
            ),
            build: register(
                GaugeVec::new(
                    Opts::new("unicontacts_build_info", "The running build (always 1)"),
                    &["version"],
                )
                .expect("metric"),
            ),
        };
        m.build
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1.0);
        m
    })
}

/// Registers every family, so a scrape shows them all from the start.
pub fn init(per_connection: bool) {
    unicontacts_adapters::metrics::set_per_connection(per_connection);
    unicontacts_adapters::metrics::init();
    let m = metrics();
    for result in ["hit", "miss", "stale"] {
        m.cache.with_label_values(&[result]);
    }
    m.partial_reads.with_label_values(&["periskope", "chats"]);
    for outcome in ["delivered", "retrying", "failed"] {
        m.deliveries.with_label_values(&[outcome]);
    }
    for provider in unicontacts_adapters::ProviderKind::ALL {
        m.deletions_held.with_label_values(&[provider.as_str()]);
    }
}

/// An answered HTTP request (`route`: its template, `unmatched` for none).
pub fn http_request(method: &str, route: &str, status: u16, took: Duration) {
    metrics()
        .http
        .with_label_values(&[method, route, &status.to_string()])
        .observe(took.as_secs_f64());
}

/// A live read answered from the cache (`hit`), the provider (`miss`) or a
/// stale copy while the provider failed (`stale`).
pub fn cache_request(result: &'static str) {
    metrics().cache.with_label_values(&[result]).inc();
}

/// A live read answered without a part of the contact (`chats`).
pub fn partial_read(provider: &str, part: &str) {
    metrics()
        .partial_reads
        .with_label_values(&[provider, part])
        .inc();
}

/// A finished sync run.
pub fn sync_run(run: &SyncRunRow, provider: &'static str, took: Duration) {
    let m = metrics();
    let labels = MetricLabels {
        provider,
        connection_id: Some(run.connection_id.clone()),
    };
    m.sync_runs
        .with_label_values(&labels.values(&[
            provider,
            run.trigger_kind.as_str(),
            run.status.as_str(),
        ]))
        .inc();
    for (action, n) in [
        ("created", run.created),
        ("updated", run.updated),
        ("unchanged", run.unchanged),
        ("deleted", run.deleted),
    ] {
        m.sync_contacts
            .with_label_values(&labels.values(&[provider, action]))
            .inc_by(n.max(0) as u64);
    }
    m.sync_duration
        .with_label_values(&labels.values(&[provider]))
        .observe(took.as_secs_f64());
}

/// A webhook delivery attempt: `delivered`, `retrying` or `failed` (given up or disabled).
pub fn delivery(outcome: &'static str) {
    metrics().deliveries.with_label_values(&[outcome]).inc();
}

/// The text exposition of every figure, the pool's read now, and the held
/// deletions by provider as just read (`None`: the database could not say; the
/// last figures stay).
pub fn render(store: &Store, held: Option<Vec<(String, i64)>>) -> String {
    let m = metrics();
    if let Some(held) = held {
        for provider in unicontacts_adapters::ProviderKind::ALL {
            let n = held
                .iter()
                .find(|(p, _)| p == provider.as_str())
                .map_or(0, |(_, n)| *n);
            m.deletions_held
                .with_label_values(&[provider.as_str()])
                .set(n);
        }
    }
    let (size, idle) = store.pool_state();
    m.pool.with_label_values(&["idle"]).set(i64::from(idle));
    m.pool
        .with_label_values(&["used"])
        .set(i64::from(size.saturating_sub(idle)));
    let mut out = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&prometheus::gather(), &mut out) {
        tracing::error!(error = %e, "could not encode the metrics");
    }
    String::from_utf8(out).unwrap_or_default()
}
