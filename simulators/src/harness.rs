//! The harness every simulator runs in: a real HTTP server on loopback that records
//! every request, enforces a fixed rate-limit window (answering with the
//! provider's headers and its 429), and injects faults on demand (latency, error
//! rate, timeouts, malformed bodies). Each provider's `sim.rs` supplies the API.
//!
//! Control over HTTP too, for `unicontacts sim`: `GET /__sim/requests`,
//! `PUT /__sim/faults`, `PUT /__sim/rate-limit` (JSON bodies as the Rust types).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A request as the simulator saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// The raw query string.
    pub query: String,
    /// Header names lowercase.
    pub headers: Vec<(String, String)>,
    /// When it arrived, epoch milliseconds.
    pub at_ms: u64,
    /// The body as sent (empty when none).
    #[serde(default)]
    pub body: String,
    /// The trace id the simulator answered it with, for a provider that sends one.
    #[serde(default)]
    pub trace_id: Option<String>,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`Null` when it is none or not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    pub fn query_pairs(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .into_owned()
            .collect()
    }

    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query_pairs()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// Faults to inject; rates are probabilities per request, `*_next` the next N requests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    pub latency_ms: u64,
    pub error_rate: f64,
    /// Status of injected errors (default 500).
    pub error_status: Option<u16>,
    pub timeout_rate: f64,
    pub malformed_rate: f64,
    pub fail_next: u32,
    pub timeout_next: u32,
    /// The next N requests are done, but their replies are held past any
    /// client's deadline (a write the provider made whose answer was lost).
    pub lose_reply_next: u32,
    pub malformed_next: u32,
    /// Let this many requests through, then fail every one (a run dying on page N).
    pub fail_after: Option<u32>,
}

/// What a simulator's contact listing serves, for tests of a provider that lost
/// contacts or pages them wrongly. Every answer is a well-formed 200: nothing a
/// client could refuse on its face.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum Listing {
    /// Every contact, as the provider documents.
    #[default]
    Complete,
    /// No contact at all, the totals saying 0 (an account reset, a wrong `x-phone`).
    Empty,
    /// Only the first `keep` contacts, the totals agreeing: a listing that
    /// looks complete and is not.
    Truncated { keep: usize },
    /// Periskope: `count` is the page's length rather than the total (the
    /// provider's own example, `count: 10, from: 1, to: 10`, reads either way).
    CountIsPage,
    /// WA.cr: the pages after the first come back with empty `data` while
    /// `meta` still counts every page.
    EmptyAfterFirstPage,
}

impl Listing {
    /// How many of `total` contacts the listing shows.
    pub fn shown(self, total: usize) -> usize {
        match self {
            Listing::Empty => 0,
            Listing::Truncated { keep } => keep.min(total),
            Listing::Complete | Listing::CountIsPage | Listing::EmptyAfterFirstPage => total,
        }
    }
}

/// `limit` requests per fixed window of `window_secs`, windows aligned to epoch time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    pub limit: u32,
    pub window_secs: u64,
}

impl RateLimit {
    /// `limit` requests in a window of an hour or so whose current one still has
    /// at least a minute to run, so every call of a short test falls in it. (With a
    /// 60 s window, a test that calls twice near the minute's end saw its second
    /// call land in the next window, or wait the 1 s left and succeed.)
    pub fn for_the_next_minute(limit: u32) -> RateLimit {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let window_secs = (3600..)
            .find(|w| w - now % w >= 60)
            .expect("some window length has a minute left");
        RateLimit { limit, window_secs }
    }
}

/// Which rate-limit headers a provider sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateHeaders {
    /// Periskope: `X-RateLimit-Limit/Remaining/Reset` on every reply, `Retry-After` on 429.
    Full,
    /// Laravel's throttle: `Limit/Remaining` on every reply, `Reset` and `Retry-After` on 429.
    Laravel,
    /// The Gateway: none.
    None,
}

/// A request handed to a provider's API.
#[derive(Debug, Clone)]
pub struct SimRequest {
    pub method: String,
    pub path: String,
    pub query: HashMap<String, String>,
    pub headers: HashMap<String, String>,
    pub body: Bytes,
}

impl SimRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn bearer(&self) -> Option<&str> {
        let v = self.header("authorization")?;
        let (scheme, token) = v.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then_some(token.trim())
    }

    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

#[derive(Debug, Clone)]
pub struct SimResponse {
    pub status: u16,
    pub body: Option<Value>,
    /// A body already written out (served instead of `body`).
    pub raw: Option<Bytes>,
    pub headers: Vec<(String, String)>,
}

impl SimResponse {
    pub fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            body: Some(body),
            raw: None,
            headers: Vec::new(),
        }
    }

    /// A JSON body written out already (a big page, written outside a lock).
    pub fn raw_json(status: u16, body: Bytes) -> Self {
        Self {
            status,
            body: None,
            raw: Some(body),
            headers: Vec::new(),
        }
    }

    pub fn empty(status: u16) -> Self {
        Self {
            status,
            body: None,
            raw: None,
            headers: Vec::new(),
        }
    }
}

/// A provider's API as the harness drives it.
pub trait SimApi: Send + Sync + 'static {
    /// The path prefix of the provider's base URL (`/v1` for Periskope).
    fn prefix(&self) -> &'static str {
        ""
    }
    fn rate_headers(&self) -> RateHeaders;
    /// The header the provider names its record of each request by, if it sends one.
    fn trace_header(&self) -> Option<&'static str> {
        None
    }
    /// `Err` with the provider's 401 body when the credentials are wrong.
    fn authorize(&self, req: &SimRequest) -> Result<(), SimResponse>;
    fn handle(&self, req: &SimRequest) -> SimResponse;
    /// An error in the provider's own shape.
    fn error(&self, status: u16, code: &str, message: &str) -> SimResponse;
}

#[derive(Debug, Default)]
struct Window {
    /// Epoch ms.
    start: u64,
    count: u32,
}

struct Control {
    faults: Mutex<Faults>,
    rate: Mutex<Option<RateLimit>>,
    window: Mutex<Window>,
    log: Mutex<Vec<RecordedRequest>>,
    rng: Mutex<StdRng>,
    served_429: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running simulator. Dropping it stops the server.
pub struct SimServer<A: SimApi> {
    addr: SocketAddr,
    api: Arc<A>,
    control: Arc<Control>,
    shutdown: tokio::sync::watch::Sender<bool>,
}

impl<A: SimApi> Drop for SimServer<A> {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

impl<A: SimApi> SimServer<A> {
    /// Serves `api` on `addr` (port 0 for any free port).
    pub async fn start(
        api: A,
        addr: SocketAddr,
        rate: Option<RateLimit>,
        seed: u64,
    ) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let api = Arc::new(api);
        let control = Arc::new(Control {
            faults: Mutex::new(Faults::default()),
            rate: Mutex::new(rate),
            window: Mutex::new(Window::default()),
            log: Mutex::new(Vec::new()),
            rng: Mutex::new(StdRng::seed_from_u64(seed ^ 0x5eed)),
            served_429: AtomicU64::new(0),
        });
        let (shutdown, mut stop) = tokio::sync::watch::channel(false);
        let (task_api, task_control) = (api.clone(), control.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let (api, control, stop) = (task_api.clone(), task_control.clone(), stop.clone());
                        tokio::spawn(async move {
                            let service = service_fn(move |req| {
                                let (api, control, stop) = (api.clone(), control.clone(), stop.clone());
                                async move { Ok::<_, Infallible>(serve(api.as_ref(), &control, stop, req).await) }
                            });
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                    _ = stop.changed() => break,
                }
            }
        });
        Ok(Self {
            addr,
            api,
            control,
            shutdown,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The base URL a connection to this simulator uses (with the provider's path prefix).
    pub fn api_base(&self) -> String {
        format!("http://{}{}", self.addr, self.api.prefix())
    }

    pub fn api(&self) -> &A {
        &self.api
    }

    /// Every request so far (control calls excluded), oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.control.log).clone()
    }

    pub fn clear_requests(&self) {
        lock(&self.control.log).clear();
    }

    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.control.faults) = faults;
    }

    pub fn set_rate_limit(&self, rate: Option<RateLimit>) {
        *lock(&self.control.rate) = rate;
    }

    /// How many 429s the simulator has answered.
    pub fn served_429(&self) -> u64 {
        self.control.served_429.load(Ordering::Relaxed)
    }
}

fn epoch_secs_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    Error(u16),
    Timeout,
    LoseReply,
    Malformed,
}

fn pick_fault(control: &Control) -> (Fault, u64) {
    let mut f = lock(&control.faults);
    let latency = f.latency_ms;
    let status = f.error_status.unwrap_or(500);
    if let Some(left) = f.fail_after.as_mut() {
        if *left == 0 {
            return (Fault::Error(status), latency);
        }
        *left -= 1;
    }
    if f.fail_next > 0 {
        f.fail_next -= 1;
        return (Fault::Error(status), latency);
    }
    if f.timeout_next > 0 {
        f.timeout_next -= 1;
        return (Fault::Timeout, latency);
    }
    if f.lose_reply_next > 0 {
        f.lose_reply_next -= 1;
        return (Fault::LoseReply, latency);
    }
    if f.malformed_next > 0 {
        f.malformed_next -= 1;
        return (Fault::Malformed, latency);
    }
    let mut rng = lock(&control.rng);
    let fault = if f.error_rate > 0.0 && rng.gen_bool(f.error_rate.min(1.0)) {
        Fault::Error(status)
    } else if f.timeout_rate > 0.0 && rng.gen_bool(f.timeout_rate.min(1.0)) {
        Fault::Timeout
    } else if f.malformed_rate > 0.0 && rng.gen_bool(f.malformed_rate.min(1.0)) {
        Fault::Malformed
    } else {
        Fault::None
    };
    (fault, latency)
}

/// Admits the request against the window; returns the headers to send and whether it is over.
fn admit(control: &Control, style: RateHeaders) -> (Vec<(String, String)>, Option<u64>) {
    let Some(rate) = *lock(&control.rate) else {
        return (Vec::new(), None);
    };
    let now = epoch_secs_f64();
    let now_ms = (now * 1000.0) as u64;
    let window_ms = rate.window_secs.max(1) * 1000;
    let mut w = lock(&control.window);
    let start = match style {
        // Laravel's throttle: a window begins with the first hit after the last
        // one ended, and lasts the decay time (its cache entry's TTL).
        RateHeaders::Laravel if w.start != 0 && now_ms < w.start + window_ms => w.start,
        RateHeaders::Laravel => now_ms,
        // Fixed windows aligned to epoch time.
        _ => (now_ms / window_ms) * window_ms,
    };
    if w.start != start {
        *w = Window { start, count: 0 };
    }
    // Epoch seconds, rounded up: the first whole second the window is over.
    let reset = (start + window_ms).div_ceil(1000);
    let over = w.count >= rate.limit;
    if !over {
        w.count += 1;
    }
    let remaining = rate.limit.saturating_sub(w.count);
    let retry_after = (reset as f64 - now).ceil().max(1.0) as u64;
    let mut headers = Vec::new();
    match style {
        RateHeaders::Full => {
            headers.push(("x-ratelimit-limit".into(), rate.limit.to_string()));
            headers.push(("x-ratelimit-remaining".into(), remaining.to_string()));
            headers.push(("x-ratelimit-reset".into(), reset.to_string()));
        }
        RateHeaders::Laravel => {
            headers.push(("x-ratelimit-limit".into(), rate.limit.to_string()));
            headers.push(("x-ratelimit-remaining".into(), remaining.to_string()));
            if over {
                headers.push(("x-ratelimit-reset".into(), reset.to_string()));
            }
        }
        RateHeaders::None => {}
    }
    if over && style != RateHeaders::None {
        headers.push(("retry-after".into(), retry_after.to_string()));
    }
    (headers, over.then_some(retry_after))
}

async fn serve<A: SimApi>(
    api: &A,
    control: &Control,
    mut stop: tokio::sync::watch::Receiver<bool>,
    req: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                v.to_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let method = parts.method.as_str().to_string();

    if let Some(control_path) = path.strip_prefix("/__sim/") {
        return control_call(control, &method, control_path, &body);
    }
    let trace = api.trace_header().map(|name| {
        // Not from the seeded generator: the faults it draws stay as they were.
        let id: u128 = rand::random();
        (name, format!("{id:032x}"))
    });
    lock(&control.log).push(RecordedRequest {
        method: method.clone(),
        path: path.clone(),
        query: raw_query.clone(),
        headers: headers.clone(),
        at_ms: (epoch_secs_f64() * 1000.0) as u64,
        body: String::from_utf8_lossy(&body).into_owned(),
        trace_id: trace.as_ref().map(|(_, id)| id.clone()),
    });
    let request = SimRequest {
        method,
        path,
        query: url::form_urlencoded::parse(raw_query.as_bytes())
            .into_owned()
            .collect(),
        headers: headers.into_iter().collect(),
        body,
    };

    let (fault, latency) = pick_fault(control);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let (rate_headers, over) = admit(control, api.rate_headers());
    let mut response = if let Some(retry_after) = over {
        control.served_429.fetch_add(1, Ordering::Relaxed);
        api.error(
            429,
            "rate_limited",
            &format!("Too many requests, retry in {retry_after}s"),
        )
    } else if let Err(unauthorized) = api.authorize(&request) {
        unauthorized
    } else {
        match fault {
            Fault::Timeout | Fault::LoseReply => {
                let done = (fault == Fault::LoseReply).then(|| api.handle(&request));
                // Hold the reply far past any client deadline (until the sim stops).
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(300)) => {}
                    _ = stop.changed() => {}
                }
                done.unwrap_or_else(|| SimResponse::empty(504))
            }
            Fault::Error(status) => api.error(status, "internal", "injected fault"),
            Fault::Malformed => {
                let mut r = api.handle(&request);
                r.body = None;
                r.raw = None;
                r.headers.push(("x-sim-malformed".into(), "1".into()));
                r
            }
            Fault::None => api.handle(&request),
        }
    };
    response.headers.extend(rate_headers);
    if let Some((name, id)) = trace {
        response.headers.push((name.to_string(), id));
    }
    render(response)
}

fn render(r: SimResponse) -> hyper::Response<Full<Bytes>> {
    let malformed = r.headers.iter().any(|(k, _)| k == "x-sim-malformed");
    let json = r.body.is_some() || r.raw.is_some();
    let body = match (r.raw, &r.body, malformed) {
        (_, _, true) => Bytes::from_static(b"{\"data\": [{\"id\": 1, \"firstname\": \"Trunc"),
        (Some(raw), _, false) => raw,
        (None, Some(v), false) => Bytes::from(v.to_string()),
        (None, None, false) => Bytes::new(),
    };
    let mut builder = hyper::Response::builder().status(r.status);
    if json || malformed {
        builder = builder.header("content-type", "application/json; charset=utf-8");
    }
    for (k, v) in &r.headers {
        if k != "x-sim-malformed" {
            builder = builder.header(k.as_str(), v.as_str());
        }
    }
    builder
        .body(Full::new(body))
        .unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::new())))
}

fn control_call(
    control: &Control,
    method: &str,
    path: &str,
    body: &Bytes,
) -> hyper::Response<Full<Bytes>> {
    let ok = |v: Value| render(SimResponse::json(200, v));
    match (method, path) {
        ("GET", "requests") => {
            ok(serde_json::to_value(&*lock(&control.log)).unwrap_or(Value::Null))
        }
        ("DELETE", "requests") => {
            lock(&control.log).clear();
            render(SimResponse::empty(204))
        }
        ("PUT", "faults") => match serde_json::from_slice::<Faults>(body) {
            Ok(f) => {
                *lock(&control.faults) = f.clone();
                ok(serde_json::to_value(f).unwrap_or(Value::Null))
            }
            Err(e) => render(SimResponse::json(
                400,
                serde_json::json!({"error": e.to_string()}),
            )),
        },
        ("PUT", "rate-limit") => match serde_json::from_slice::<Option<RateLimit>>(body) {
            Ok(r) => {
                *lock(&control.rate) = r;
                ok(serde_json::to_value(r).unwrap_or(Value::Null))
            }
            Err(e) => render(SimResponse::json(
                400,
                serde_json::json!({"error": e.to_string()}),
            )),
        },
        _ => render(SimResponse::json(
            404,
            serde_json::json!({"error": "unknown control call"}),
        )),
    }
}
