//! The adapters against the simulators over real HTTP on loopback: get and list,
//! the exact headers and parameters sent, paging to the end, every error class,
//! writes, and the rate-limit rule.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use unicontacts_adapters::gateway::client::GatewayClient;
use unicontacts_adapters::periskope::client::PeriskopeClient;
use unicontacts_adapters::quota::Priority;
use unicontacts_adapters::wacr::client::WacrClient;
use unicontacts_adapters::{
    Adapter, AdapterError, ConnectionConfig, ContactInput, Operation, PageToken, Provider,
    ProviderKind, UpstreamConfig,
};
use unicontacts_simulators::{Faults, RateLimit, World};

const KEY: &str = "sim-secret-key-0123456789";
const PHONE: &str = "918527184400";
const SESSION: &str = "sess_01HZX";

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().expect("addr")
}

fn fast() -> UpstreamConfig {
    UpstreamConfig {
        connect_timeout: Duration::from_secs(1),
        timeout: Duration::from_secs(2),
        max_attempts: 3,
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(40),
        priority: Priority::Interactive,
        deadline: Some(Duration::from_secs(5)),
        rate_limit_per_second: 1000,
        connection_id: None,
    }
}

fn config(
    kind: ProviderKind,
    base_url: String,
    key: &str,
    upstream: UpstreamConfig,
) -> ConnectionConfig {
    ConnectionConfig {
        kind,
        base_url,
        api_key: key.to_string(),
        phone: Some(PHONE.to_string()),
        session: Some(SESSION.to_string()),
        default_country: None,
        upstream,
        quota: None,
        page_size: None,
    }
}

/// Pages through the whole list; returns remote ids in order and the page count.
async fn drain(provider: &dyn Provider) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut token: Option<PageToken> = None;
    let mut pages = 0;
    loop {
        let page = provider.list_contacts(token.as_ref()).await.expect("page");
        pages += 1;
        ids.extend(page.contacts.into_iter().map(|c| c.remote_id));
        match page.next {
            Some(t) => token = Some(t),
            None => return (ids, pages),
        }
        assert!(pages < 10_000, "paging never ends");
    }
}

fn assert_unique(ids: &[String]) {
    let set: HashSet<&String> = ids.iter().collect();
    assert_eq!(set.len(), ids.len(), "no duplicates");
}

#[tokio::test]
async fn periskope_pages_to_the_end_and_sends_bearer_and_x_phone() {
    let world = World::generate(11, 400);
    let sim = unicontacts_simulators::periskope::start(&world, KEY, any_port(), None)
        .await
        .expect("sim");
    let client = PeriskopeClient::new(config(ProviderKind::Periskope, sim.api_base(), KEY, fast()))
        .expect("client")
        .with_page_size(37);
    let (ids, pages) = drain(&client).await;
    let expected: Vec<String> = sim.api().with_store(|s| {
        s.all()
            .iter()
            .map(|c| c["contact_id"].as_str().unwrap_or("").to_string())
            .collect()
    });
    assert_eq!(ids, expected, "every contact once, in order");
    assert_unique(&ids);
    assert_eq!(
        pages,
        expected.len().div_ceil(37) + usize::from(expected.len().is_multiple_of(37))
    );

    let one = &expected[3];
    let got = client.get_contact(one).await.expect("get");
    assert_eq!(&got.remote_id, one);
    assert!(got.has_direct_chat.is_some(), "detail carries chat_ids");
    let digits = one.trim_end_matches("@c.us");
    let got = client
        .get_contact(&format!("+{digits}"))
        .await
        .expect("get by +digits");
    assert_eq!(&got.remote_id, one);

    let requests = sim.requests();
    assert_eq!(requests.len(), pages + 2);
    for r in &requests {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {KEY}").as_str())
        );
        assert_eq!(r.header("x-phone"), Some(PHONE));
    }
    for r in &requests[..pages] {
        assert_eq!(r.path, "/v1/contacts");
        assert!(
            r.query_param("offset").is_some() && r.query_param("limit").as_deref() == Some("37"),
            "{r:?}"
        );
    }
    assert_eq!(
        requests[pages].path,
        format!("/v1/contacts/{digits}"),
        "the path takes the digits"
    );
    assert_eq!(requests[0].query_param("offset").as_deref(), Some("0"));
}

#[tokio::test]
async fn wacr_pages_to_the_end_and_always_asks_for_the_includes() {
    let world = World::generate(12, 400);
    let sim = unicontacts_simulators::wacr::start(&world, KEY, any_port(), None)
        .await
        .expect("sim");
    let client = WacrClient::new(config(ProviderKind::Wacr, sim.api_base(), KEY, fast()))
        .expect("client")
        .with_page_size(9);
    let (ids, pages) = drain(&client).await;
    let expected: Vec<String> = sim.api().with_store(|s| {
        s.all()
            .map(|c| c["id"].as_i64().unwrap_or(0).to_string())
            .collect()
    });
    assert_eq!(ids, expected);
    assert_unique(&ids);
    assert_eq!(pages, expected.len().div_ceil(9));

    let first = client.get_contact(&expected[0]).await.expect("get");
    assert!(
        first.status.as_ref().and_then(|s| s.name.clone()).is_some(),
        "status included"
    );
    assert!(
        first.source.as_ref().and_then(|s| s.name.clone()).is_some(),
        "source included"
    );

    for r in sim.requests() {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {KEY}").as_str())
        );
        assert_eq!(
            r.query_param("include").as_deref(),
            Some("groups,source,status"),
            "{r:?}"
        );
        if r.path == "/api/v2/contacts" {
            assert_eq!(r.query_param("per_page").as_deref(), Some("9"));
            assert!(r.query_param("page").is_some());
        }
    }
}

#[tokio::test]
async fn gateway_pages_by_cursor_through_an_empty_last_page() {
    let world = World::generate(13, 400);
    let sim = unicontacts_simulators::gateway::start(&world, KEY, SESSION, any_port(), None)
        .await
        .expect("sim");
    let n = sim.api().with_store(|s| s.len());
    // A page size dividing the count, so the last full page is followed by an empty one.
    let size = (2..=n / 2)
        .rev()
        .find(|d| n.is_multiple_of(*d))
        .unwrap_or(n) as u32;
    let client = GatewayClient::new(config(ProviderKind::Gateway, sim.api_base(), KEY, fast()))
        .expect("client")
        .with_page_size(size);
    let (ids, pages) = drain(&client).await;
    assert_eq!(ids.len(), n);
    assert_unique(&ids);
    assert_eq!(
        pages,
        n / size as usize + 1,
        "the empty last page is read and ends the list"
    );
    let requests = sim.requests();
    let last = requests.last().expect("requests");
    assert!(last.query_param("cursor").is_some());
    assert_eq!(requests[0].query_param("cursor"), None);
    assert!(requests
        .iter()
        .all(|r| r.query_param("limit") == Some(size.to_string())));

    // The detail: LID and phone together, WhatsApp groups with roles.
    let someone = world
        .gateway_people()
        .find(|p| p.phone.is_some() && !p.groups.is_empty())
        .expect("a member of groups");
    let digits = someone.lid.trim_end_matches("@lid");
    let record = client.get_contact(digits).await.expect("detail");
    assert_eq!(record.wa_lid.as_deref(), Some(someone.lid.as_str()));
    assert_eq!(record.phones[0].e164, someone.e164());
    assert_eq!(record.memberships.len(), someone.groups.len());
    assert!(record
        .memberships
        .iter()
        .all(|m| m.role.is_some() && m.nickname.is_some()));
    assert_eq!(
        sim.requests().last().map(|r| r.path.clone()),
        Some(format!(
            "/api/v1/sessions/{SESSION}/contacts/{}",
            someone.lid
        ))
    );
}

/// The three simulators over `World::generate(seed, size)`, and a client of each
/// with an id of its form that none of them holds.
struct Three {
    p: unicontacts_simulators::periskope::PeriskopeSim,
    w: unicontacts_simulators::wacr::WacrSim,
    g: unicontacts_simulators::gateway::GatewaySim,
    clients: Vec<(Arc<dyn Provider>, &'static str)>,
}

async fn three_sims(seed: u64, size: usize) -> Three {
    let world = World::generate(seed, size);
    let p = unicontacts_simulators::periskope::start(&world, KEY, any_port(), None)
        .await
        .expect("sim");
    let w = unicontacts_simulators::wacr::start(&world, KEY, any_port(), None)
        .await
        .expect("sim");
    let g = unicontacts_simulators::gateway::start(&world, KEY, SESSION, any_port(), None)
        .await
        .expect("sim");
    let clients: Vec<(Arc<dyn Provider>, &'static str)> = vec![
        (
            Arc::new(
                PeriskopeClient::new(config(ProviderKind::Periskope, p.api_base(), KEY, fast()))
                    .expect("c"),
            ),
            "919999999999",
        ),
        (
            Arc::new(
                WacrClient::new(config(ProviderKind::Wacr, w.api_base(), KEY, fast())).expect("c"),
            ),
            "999999",
        ),
        (
            Arc::new(
                GatewayClient::new(config(ProviderKind::Gateway, g.api_base(), KEY, fast()))
                    .expect("c"),
            ),
            "999999999999999@lid",
        ),
    ];
    Three { p, w, g, clients }
}

#[tokio::test]
async fn every_error_class_maps_to_its_adapter_error() {
    let Three { p, w, g, clients } = three_sims(14, 60).await;
    for (client, missing) in &clients {
        let kind = client.kind();
        // 404
        assert_eq!(
            client.get_contact(missing).await,
            Err(AdapterError::NotFound),
            "{kind}"
        );
        // 401
        let cfg = config(
            kind,
            match kind {
                ProviderKind::Periskope => p.api_base(),
                ProviderKind::Wacr => w.api_base(),
                ProviderKind::Gateway => g.api_base(),
            },
            "wrong-key",
            fast(),
        );
        let wrong = unicontacts_adapters::connect(cfg).expect("client");
        assert!(
            matches!(
                wrong.list_contacts(None).await,
                Err(AdapterError::Unauthorized { status: 401 })
            ),
            "{kind}"
        );
    }
    // 422: the provider's validation errors.
    let pc = &clients[0].0;
    let no_name = ContactInput {
        phone: Some("+447700900123".into()),
        ..ContactInput::default()
    };
    assert!(matches!(
        pc.create_contact(&no_name).await,
        Err(AdapterError::InvalidInput(_))
    ));
    let wc = &clients[1].0;
    match wc
        .create_contact(&ContactInput {
            first_name: Some("Ana".into()),
            ..ContactInput::default()
        })
        .await
    {
        Err(AdapterError::Rejected {
            status: 422,
            fields,
            ..
        }) => {
            for f in ["lastname", "phone", "type", "status_id", "source_id"] {
                assert!(fields.get(f).is_some(), "{f}: {fields}");
            }
        }
        other => panic!("{other:?}"),
    }
    // 5xx, retried for reads until the attempts run out.
    p.set_faults(Faults {
        fail_next: 3,
        ..Faults::default()
    });
    match pc.list_contacts(None).await {
        Err(AdapterError::Upstream { status: 500, .. }) => {}
        other => panic!("{other:?}"),
    }
    // One transient 5xx is absorbed by a retry.
    p.set_faults(Faults {
        fail_next: 1,
        error_status: Some(503),
        ..Faults::default()
    });
    let before = pc.stats();
    pc.list_contacts(None).await.expect("retried");
    assert_eq!(pc.stats().retries - before.retries, 1);
    // Malformed body → Decode naming what was wrong.
    w.set_faults(Faults {
        malformed_next: 3,
        ..Faults::default()
    });
    match wc.list_contacts(None).await {
        Err(AdapterError::Decode { detail }) => assert!(detail.contains("not JSON"), "{detail}"),
        other => panic!("{other:?}"),
    }
    // Timeout.
    g.set_faults(Faults {
        timeout_next: 1,
        ..Faults::default()
    });
    let impatient = GatewayClient::new(config(
        ProviderKind::Gateway,
        g.api_base(),
        KEY,
        UpstreamConfig {
            timeout: Duration::from_millis(300),
            max_attempts: 1,
            ..fast()
        },
    ))
    .expect("client");
    assert_eq!(
        impatient.list_contacts(None).await.map(|_| ()),
        Err(AdapterError::Timeout)
    );
    // 429 past the allowed wait → RateLimited with the wait.
    p.set_faults(Faults::default());
    let rate = RateLimit::for_the_next_minute(1);
    p.set_rate_limit(Some(rate));
    let capped = PeriskopeClient::new(config(
        ProviderKind::Periskope,
        p.api_base(),
        KEY,
        UpstreamConfig {
            deadline: Some(Duration::from_millis(200)),
            ..fast()
        },
    ))
    .expect("client");
    let _ = capped.list_contacts(None).await;
    match capped.list_contacts(None).await {
        Err(AdapterError::RateLimited {
            retry_after: Some(d),
        }) => assert!(d <= Duration::from_secs(rate.window_secs), "{d:?}"),
        other => panic!("{other:?}"),
    }
    // A 429 from a provider that sends no headers at all (the Gateway's edge limiter).
    g.set_faults(Faults::default());
    g.set_rate_limit(Some(RateLimit::for_the_next_minute(1)));
    let gc = GatewayClient::new(config(
        ProviderKind::Gateway,
        g.api_base(),
        KEY,
        UpstreamConfig {
            deadline: Some(Duration::from_millis(200)),
            max_attempts: 2,
            ..fast()
        },
    ))
    .expect("client");
    let _ = gc.list_contacts(None).await;
    assert!(matches!(
        gc.list_contacts(None).await,
        Err(AdapterError::RateLimited { .. })
    ));
    assert!(gc.stats().throttled_429 >= 1);
}

#[tokio::test]
async fn writes_go_through_where_the_provider_has_them_and_are_refused_elsewhere() {
    let world = World::generate(15, 40);
    let p = unicontacts_simulators::periskope::start(&world, KEY, any_port(), None)
        .await
        .expect("sim");
    let w = unicontacts_simulators::wacr::start(&world, KEY, any_port(), None)
        .await
        .expect("sim");
    let g = unicontacts_simulators::gateway::start(&world, KEY, SESSION, any_port(), None)
        .await
        .expect("sim");
    let pc = PeriskopeClient::new(config(ProviderKind::Periskope, p.api_base(), KEY, fast()))
        .expect("c");
    let wc = WacrClient::new(config(ProviderKind::Wacr, w.api_base(), KEY, fast())).expect("c");
    let gc =
        GatewayClient::new(config(ProviderKind::Gateway, g.api_base(), KEY, fast())).expect("c");

    let created = pc
        .create_contact(&ContactInput {
            display_name: Some("Tom Baker".into()),
            phone: Some("+44 7700 900123".into()),
            labels: Some(vec!["vip".into(), "lead".into()]),
            ..ContactInput::default()
        })
        .await
        .expect("create");
    assert_eq!(created.remote_id, "447700900123@c.us");
    assert_eq!(created.labels, vec!["vip", "lead"]);
    let renamed = pc
        .update_contact(
            "447700900123",
            &ContactInput {
                display_name: Some("Tom B.".into()),
                ..ContactInput::default()
            },
        )
        .await
        .expect("update");
    assert_eq!(renamed.display_name.as_deref(), Some("Tom B."));
    pc.replace_labels(&["447700900123".to_string()], &["billing".to_string()])
        .await
        .expect("labels");
    assert_eq!(
        pc.get_contact("447700900123").await.expect("get").labels,
        vec!["billing"]
    );
    let last = p
        .requests()
        .into_iter()
        .rev()
        .nth(1)
        .expect("labels request");
    assert_eq!(
        (last.method.as_str(), last.path.as_str()),
        ("PATCH", "/v1/contacts/labels")
    );
    assert_eq!(
        pc.delete_contact("447700900123").await,
        Err(AdapterError::Unsupported {
            operation: "delete"
        })
    );

    let input = |first: &str, phone: &str| ContactInput {
        first_name: Some(first.into()),
        last_name: Some("Test".into()),
        phone: Some(phone.into()),
        kind: Some(unicontacts_adapters::canonical::ContactKind::Lead),
        status_id: Some(1),
        source_id: Some(2),
        ..ContactInput::default()
    };
    let one = wc
        .create_contact(&input("Ana", "+5511912345678"))
        .await
        .expect("create");
    assert_eq!(one.phones[0].e164.as_deref(), Some("+5511912345678"));
    assert_eq!(
        one.source.as_ref().and_then(|s| s.name.as_deref()),
        Some("Instagram")
    );
    let dup = wc.create_contact(&input("Bia", "+55 11 91234-5678")).await;
    assert!(matches!(dup, Err(AdapterError::Rejected { .. })), "{dup:?}");
    let edited = wc
        .update_contact(
            &one.remote_id,
            &ContactInput {
                company: Some("Padaria".into()),
                ..ContactInput::default()
            },
        )
        .await
        .expect("update");
    assert_eq!(edited.company.as_deref(), Some("Padaria"));
    let batch = wc
        .batch_create(&[
            input("Caio", "+5511900000001"),
            input("", "+5511900000002"),
            input("Duda", "+5511900000003"),
        ])
        .await
        .expect("batch");
    assert_eq!((batch.succeeded_count, batch.failed_count), (2, 1));
    assert_eq!(batch.failures[0].0, 1);
    let ids: Vec<String> = batch
        .created
        .iter()
        .map(|c| c.remote_id.clone())
        .chain(["999999".to_string()])
        .collect();
    let deleted = wc.batch_delete(&ids).await.expect("batch delete");
    assert_eq!((deleted.succeeded_count, deleted.failed_count), (2, 1));
    wc.delete_contact(&one.remote_id).await.expect("delete");
    assert_eq!(
        wc.get_contact(&one.remote_id).await,
        Err(AdapterError::NotFound)
    );

    for result in [
        gc.create_contact(&ContactInput::default())
            .await
            .map(|_| ()),
        gc.update_contact("1@lid", &ContactInput::default())
            .await
            .map(|_| ()),
        gc.delete_contact("1@lid").await,
    ] {
        assert!(
            matches!(result, Err(AdapterError::Unsupported { .. })),
            "{result:?}"
        );
    }
}

#[tokio::test]
async fn ids_in_the_wrong_form_are_refused_before_any_request() {
    let world = World::generate(16, 20);
    let p = unicontacts_simulators::periskope::start(&world, KEY, any_port(), None)
        .await
        .expect("sim");
    let g = unicontacts_simulators::gateway::start(&world, KEY, SESSION, any_port(), None)
        .await
        .expect("sim");
    let pc = PeriskopeClient::new(config(ProviderKind::Periskope, p.api_base(), KEY, fast()))
        .expect("c");
    let gc =
        GatewayClient::new(config(ProviderKind::Gateway, g.api_base(), KEY, fast())).expect("c");
    assert!(matches!(
        pc.get_contact("205227043110953@lid").await,
        Err(AdapterError::InvalidInput(_))
    ));
    assert!(matches!(
        gc.get_contact("919537851844@c.us").await,
        Err(AdapterError::InvalidInput(_))
    ));
    assert!(p.requests().is_empty() && g.requests().is_empty());
}

/// With the simulator at L requests per window, 10·L requests from 8 concurrent
/// callers finish with no 429 received, within 1.2× the floor the quota allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_windows_of_work_from_eight_callers_get_no_429_and_stay_near_the_floor() {
    const L: u32 = 10;
    let world = World::generate(17, 50);
    let sim = unicontacts_simulators::periskope::start(
        &world,
        KEY,
        any_port(),
        Some(RateLimit {
            limit: L,
            window_secs: 1,
        }),
    )
    .await
    .expect("sim");
    let client = Arc::new(
        PeriskopeClient::new(config(
            ProviderKind::Periskope,
            sim.api_base(),
            KEY,
            UpstreamConfig {
                rate_limit_per_second: L,
                deadline: Some(Duration::from_secs(10)),
                ..fast()
            },
        ))
        .expect("client")
        .with_page_size(5),
    );
    let total = 10 * L as usize;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for caller in 0..8 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            for i in (caller..total).step_by(8) {
                let _ = i;
                client.list_contacts(None).await.expect("call");
                done += 1;
            }
            done
        }));
    }
    let mut done = 0;
    for t in tasks {
        done += t.await.expect("join");
    }
    let elapsed = started.elapsed();
    let floor = Duration::from_secs((total as u64 / u64::from(L)) - 1);
    eprintln!(
        "{total} calls at {L}/s: elapsed {:.2}s, floor {:.0}s, ratio {:.3}, 429s {}, limiter wait {} ms",
        elapsed.as_secs_f64(),
        floor.as_secs_f64(),
        elapsed.as_secs_f64() / floor.as_secs_f64(),
        sim.served_429(),
        client.stats().limiter_wait_ms
    );
    assert_eq!(done, total);
    assert_eq!(sim.served_429(), 0, "no 429 was answered");
    assert_eq!(client.stats().throttled_429, 0);
    assert!(
        elapsed.as_secs_f64() <= 1.2 * floor.as_secs_f64(),
        "elapsed {elapsed:?} over 1.2 x floor {floor:?}"
    );
    // Never more than L in one window, by the simulator's own record.
    let mut per_window = std::collections::BTreeMap::new();
    for r in sim.requests() {
        *per_window.entry(r.at_ms / 1000).or_insert(0u32) += 1;
    }
    assert!(per_window.values().all(|n| *n <= L), "{per_window:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_lowered_mid_run_is_followed_within_one_window() {
    let world = World::generate(18, 50);
    let sim = unicontacts_simulators::periskope::start(
        &world,
        KEY,
        any_port(),
        Some(RateLimit {
            limit: 12,
            window_secs: 1,
        }),
    )
    .await
    .expect("sim");
    let client = Arc::new(
        PeriskopeClient::new(config(
            ProviderKind::Periskope,
            sim.api_base(),
            KEY,
            UpstreamConfig {
                rate_limit_per_second: 12,
                deadline: Some(Duration::from_secs(10)),
                ..fast()
            },
        ))
        .expect("client")
        .with_page_size(5),
    );
    let run = |n: usize| {
        let client = client.clone();
        async move {
            let mut tasks = Vec::new();
            for c in 0..4 {
                let client = client.clone();
                tasks.push(tokio::spawn(async move {
                    for _ in (c..n).step_by(4) {
                        client.list_contacts(None).await.expect("call");
                    }
                }));
            }
            for t in tasks {
                t.await.expect("join");
            }
        }
    };
    run(36).await;
    sim.set_rate_limit(Some(RateLimit {
        limit: 4,
        window_secs: 1,
    }));
    let changed_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    sim.clear_requests();
    run(24).await;
    let mut per_window = std::collections::BTreeMap::new();
    for r in sim.requests() {
        *per_window.entry(r.at_ms / 1000).or_insert(0u32) += 1;
    }
    // From the first whole window after the change on, the new limit holds.
    for (window, n) in per_window.range(changed_at + 1..) {
        assert!(*n <= 4, "window {window}: {n} requests: {per_window:?}");
    }
    // Each of the 4 callers can have one call out before the client hears of the
    // new limit (the window may already hold more calls than the new limit allows):
    // at most one 429 per caller, none after.
    assert!(
        client.stats().throttled_429 <= 4,
        "at most the calls already in flight at the change: {:?}",
        client.stats()
    );
}

/// Calls `op` on the client as it is (no capability check), with inputs the
/// provider would take.
async fn call_raw(client: &dyn Provider, op: Operation, id: &str) -> Result<(), AdapterError> {
    let input = ContactInput {
        display_name: Some("Capability Probe".into()),
        first_name: Some("Capability".into()),
        last_name: Some("Probe".into()),
        phone: Some("+44 7700 900999".into()),
        ..ContactInput::default()
    };
    match op {
        Operation::Get => client.get_contact(id).await.map(|_| ()),
        Operation::List => client.list_contacts(None).await.map(|_| ()),
        Operation::Create => client.create_contact(&input).await.map(|_| ()),
        Operation::Update => client.update_contact(id, &input).await.map(|_| ()),
        Operation::Delete => client.delete_contact(id).await,
        Operation::BatchCreate => client.batch_create(&[input]).await.map(|_| ()),
        Operation::BatchDelete => client.batch_delete(&[id.to_string()]).await.map(|_| ()),
    }
}

#[tokio::test]
async fn each_client_implements_exactly_its_providers_capabilities_and_the_adapter_gates_the_rest()
{
    let three = three_sims(21, 30).await;
    let sent = |kind: ProviderKind| match kind {
        ProviderKind::Periskope => three.p.requests().len(),
        ProviderKind::Wacr => three.w.requests().len(),
        ProviderKind::Gateway => three.g.requests().len(),
    };
    for (client, id) in &three.clients {
        let kind = client.kind();
        let caps = kind.capabilities();
        let adapter = Adapter::new(client.clone());
        for op in Operation::ALL {
            let raw = call_raw(client.as_ref(), op, id).await;
            let unsupported = matches!(raw, Err(AdapterError::Unsupported { .. }));
            assert_eq!(
                unsupported,
                !caps.supports(op),
                "{kind} {op}: the client and CAPABILITIES disagree ({raw:?})"
            );
            if !caps.supports(op) {
                let before = sent(kind);
                let gated = match op {
                    Operation::Create => adapter
                        .create_contact(&ContactInput::default())
                        .await
                        .map(|_| ()),
                    Operation::Update => adapter
                        .update_contact(id, &ContactInput::default())
                        .await
                        .map(|_| ()),
                    Operation::Delete => adapter.delete_contact(id).await,
                    Operation::BatchCreate => adapter.batch_create(&[]).await.map(|_| ()),
                    Operation::BatchDelete => adapter.batch_delete(&[]).await.map(|_| ()),
                    Operation::Get | Operation::List => continue,
                };
                assert_eq!(
                    gated,
                    Err(AdapterError::Unsupported {
                        operation: op.as_str()
                    }),
                    "{kind} {op}"
                );
                assert_eq!(sent(kind), before, "{kind} {op}: nothing may be sent");
            }
        }
    }
}
