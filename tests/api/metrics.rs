//! `GET /metrics`: scraped from a `unicontacts serve` process of its own (the
//! figures are the process's), after a sync, live reads and a 429.

use std::collections::HashMap;

use serde_json::{json, Value};
use unicontacts_simulators::{Faults, RateLimit};

use crate::helpers::{assert_error, spawn_app, Backend, Sims};
use crate::processes::{start_sync, wait_for_run, Replica};

const TOKEN: &str = "metrics-token-0123456789";

/// Series (name and labels as printed) to value, and the families declared.
fn parse(text: &str) -> (HashMap<String, f64>, Vec<String>) {
    let mut series = HashMap::new();
    let mut families = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            families.push(rest.split(' ').next().unwrap_or("").to_string());
        } else if !line.starts_with('#') && !line.is_empty() {
            let (name, value) = line.rsplit_once(' ').expect("series value");
            series.insert(name.to_string(), value.parse().expect("number"));
        }
    }
    (series, families)
}

async fn scrape(client: &reqwest::Client, r: &Replica) -> String {
    let res = client
        .get(r.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("scrape");
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .expect("type")
        .starts_with("text/plain; version=0.0.4"));
    res.text().await.expect("text")
}

/// Starts a sync of the connection through the replica and waits for its end.
async fn run_sync(r: &Replica, key: &str, connection: &str) -> Value {
    let id = start_sync(r, key, connection).await;
    wait_for_run(r, key, &id).await
}

async fn figures_after_traffic(backend: Backend) {
    let app = spawn_app(backend).await;
    let sims = app.connect_sims(41, 40, json!({})).await;
    let periskope = Sims::id(&sims.periskope);
    let r = Replica::start(&app.db, "", &[("UNICONTACTS_METRICS_TOKEN", TOKEN)]);
    let client = reqwest::Client::new();

    // The token is required, and checked.
    let res = client.get(r.url("/metrics")).send().await.expect("scrape");
    let body = assert_error(res, 401, "unauthorized").await;
    assert!(body["error"]["message"]
        .as_str()
        .expect("message")
        .contains("metrics_token"));
    let res = client
        .get(r.url("/metrics"))
        .bearer_auth("metrics-token-wrong-wrong")
        .send()
        .await
        .expect("scrape");
    assert_error(res, 401, "unauthorized").await;

    // Every family is there before any traffic.
    let (_, families) = parse(&scrape(&client, &r).await);
    for family in [
        "http_server_request_duration_seconds",
        "unicontacts_upstream_throttled_total",
        "unicontacts_cache_requests_total",
        "unicontacts_db_pool_connections",
        "unicontacts_webhook_deliveries_total",
        "unicontacts_build_info",
    ] {
        assert!(
            families.iter().any(|f| f == family),
            "{family}: {families:?}"
        );
    }

    // Periskope's rate-limit headers, as it sends them on every reply; the
    // window has a minute or more to run, longer than a live read waits.
    sims.set
        .periskope
        .set_rate_limit(Some(RateLimit::for_the_next_minute(100_000)));
    let run = run_sync(&r, &app.admin_key, &periskope).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let created = run["counts"]["created"].as_i64().expect("created");
    assert!(created > 0);

    // A miss, a hit, then a fresh read the provider answers 429 until the
    // window's end: the stored copy, stale.
    let remote_id = sims.set.periskope.api().with_store(|s| {
        s.all()[0]["contact_id"]
            .as_str()
            .expect("id")
            .trim_end_matches("@c.us")
            .to_string()
    });
    let path = format!("/v1/connections/{periskope}/contacts/{remote_id}");
    let reader = app.reader_key().await;
    for (query, cache) in [("", "MISS"), ("", "HIT"), ("?fresh=true", "STALE")] {
        if !query.is_empty() {
            sims.set.periskope.set_faults(Faults {
                fail_next: 1,
                error_status: Some(429),
                ..Faults::default()
            });
        }
        let res = client
            .get(r.url(&format!("{path}{query}")))
            .bearer_auth(&reader)
            .send()
            .await
            .expect("read");
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["x-cache"], cache);
    }
    let res = client
        .get(r.url("/v1/contacts/ctc_00000000000000000000000000"))
        .bearer_auth(&reader)
        .send()
        .await
        .expect("read");
    assert_eq!(res.status(), 404);

    let text = scrape(&client, &r).await;
    let (series, families) = parse(&text);
    let value = |s: &str| {
        series
            .get(s)
            .copied()
            .unwrap_or_else(|| panic!("{s} missing:\n{text}"))
    };
    for family in [
        "http_server_request_duration_seconds",
        "unicontacts_upstream_requests_total",
        "unicontacts_upstream_request_duration_seconds",
        "unicontacts_upstream_throttled_total",
        "unicontacts_upstream_quota_wait_seconds_total",
        "unicontacts_upstream_quota_remaining",
        "unicontacts_cache_requests_total",
        "unicontacts_sync_runs_total",
        "unicontacts_sync_contacts_total",
        "unicontacts_sync_run_duration_seconds",
        "unicontacts_db_pool_connections",
        "unicontacts_webhook_deliveries_total",
        "unicontacts_build_info",
    ] {
        assert!(
            families.iter().any(|f| f == family),
            "{family} missing:\n{text}"
        );
    }
    assert_eq!(
        value(r#"unicontacts_upstream_throttled_total{provider="periskope"}"#),
        1.0
    );
    assert_eq!(
        value(r#"unicontacts_upstream_throttled_total{provider="wacr"}"#),
        0.0
    );
    assert_eq!(
        value(
            r#"unicontacts_upstream_requests_total{operation="get_contact",outcome="throttled",provider="periskope"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            r#"unicontacts_upstream_requests_total{operation="get_contact",outcome="success",provider="periskope"}"#
        ),
        1.0
    );
    let remaining = value(r#"unicontacts_upstream_quota_remaining{provider="periskope"}"#);
    assert!(remaining > 0.0 && remaining < 100_000.0, "{remaining}");
    assert_eq!(
        value(r#"unicontacts_cache_requests_total{result="hit"}"#),
        1.0
    );
    assert_eq!(
        value(r#"unicontacts_cache_requests_total{result="miss"}"#),
        1.0
    );
    assert_eq!(
        value(r#"unicontacts_cache_requests_total{result="stale"}"#),
        1.0
    );
    assert_eq!(
        value(
            r#"unicontacts_sync_runs_total{provider="periskope",status="succeeded",trigger="api"}"#
        ),
        1.0
    );
    assert_eq!(
        value(r#"unicontacts_sync_contacts_total{action="created",provider="periskope"}"#),
        created as f64
    );
    assert_eq!(
        value(r#"unicontacts_sync_run_duration_seconds_count{provider="periskope"}"#),
        1.0
    );
    assert_eq!(
        value(
            r#"http_server_request_duration_seconds_count{method="GET",route="/v1/connections/{connection_id}/contacts/{remote_id}",status="200"}"#
        ),
        3.0
    );
    assert_eq!(
        value(
            r#"http_server_request_duration_seconds_count{method="GET",route="/v1/contacts/{id}",status="404"}"#
        ),
        1.0
    );
    assert_eq!(
        value(&format!(
            r#"unicontacts_build_info{{version="{}"}}"#,
            env!("CARGO_PKG_VERSION")
        )),
        1.0
    );
    let idle = value(r#"unicontacts_db_pool_connections{state="idle"}"#);
    let used = value(r#"unicontacts_db_pool_connections{state="used"}"#);
    assert!(idle + used >= 1.0, "{idle} {used}");
    // Bounded labels: no connection, contact or run id, no raw path.
    for raw in [
        periskope.as_str(),
        remote_id.as_str(),
        run["id"].as_str().expect("id"),
        "ctc_0000",
    ] {
        assert!(!text.contains(raw), "{raw} in the figures");
    }
    drop(r);

    // Per connection when asked.
    let r = Replica::start(
        &app.db,
        "",
        &[
            ("UNICONTACTS_METRICS_TOKEN", TOKEN),
            ("UNICONTACTS_METRICS_PER_CONNECTION", "true"),
        ],
    );
    let run = run_sync(&r, &app.admin_key, &periskope).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let text = scrape(&client, &r).await;
    let (series, _) = parse(&text);
    let with_id = format!(
        r#"unicontacts_sync_runs_total{{connection_id="{periskope}",provider="periskope",status="succeeded",trigger="api"}}"#
    );
    assert_eq!(series.get(&with_id).copied(), Some(1.0), "{text}");
    assert!(
        series
            .keys()
            .any(|k| k.starts_with("unicontacts_upstream_requests_total{")
                && k.contains(&format!(r#"connection_id="{periskope}""#))),
        "{text}"
    );
}

crate::db_tests!(figures_after_traffic);
