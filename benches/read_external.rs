//! The read path measured the way a user measures it: the release binary runs as a
//! process of its own (`serve --demo`: SQLite, the three simulators, default
//! settings but the per-key limit raised so it never binds; auth, the limiter,
//! request ids and access logging at `info` stay on), and `wrk` drives it from
//! another process. In the same invocation, with the same `wrk` settings:
//!
//! - a bare actix handler in a process of its own, answering the bytes and headers
//!   of the cached live read (the ceiling);
//! - nginx with `proxy_cache` in front of the Periskope simulator, when `nginx` is
//!   installed (what an operator would put in front of a provider instead);
//! - the cached live read, a store read by id, and a list page of 50 contacts;
//! - with `UC_BENCH_REDIS_URL` (or `UNICONTACTS_TEST_REDIS_URL`) set, the cached
//!   live read of a second `serve --demo` whose per-key limiter (and notices) live
//!   in that Redis.
//!
//! Prints each figure and the ratios, for `UC_BENCH_RUNS` runs (default 3).
//! Needs `wrk` (installed with `apt-get install wrk` when missing and the machine
//! allows it); nginx is optional (`apt-get install nginx`).
//!
//! Run: `cargo bench --bench read_external` (results in BENCHMARKS.md).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_unicontacts");
const THREADS: &str = "2";
const CONNECTIONS: &str = "64";
const SIM_KEY: &str = "demo-provider-key-0123456789";
const SIM_PHONE: &str = "918527184400";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A process stopped (SIGTERM) when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

fn wait_for(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if Command::new("curl")
            .args(["-sf", "-o", "/dev/null", url])
            .status()
            .is_ok_and(|s| s.success())
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{url} did not answer in 120 s");
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .arg("-s")
        .args(args)
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Figure {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    non_2xx: u64,
}

fn millis(text: &str) -> f64 {
    let text = text.trim();
    let (number, factor) = if let Some(n) = text.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (text, 1.0)
    };
    number.parse::<f64>().unwrap_or(f64::NAN) * factor
}

/// `wrk -t2 -c64 -d6s --latency` against `url` with `headers`.
fn wrk(url: &str, headers: &[String], seconds: u64) -> Figure {
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t",
        THREADS,
        "-c",
        CONNECTIONS,
        "-d",
        &format!("{seconds}s"),
        "--latency",
    ]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg(url).output().expect("wrk (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut f = Figure {
        rps: 0.0,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
        non_2xx: 0,
    };
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", n] => f.rps = n.parse().unwrap_or(0.0),
            ["50%", v] => f.p50_ms = millis(v),
            ["99%", v] => f.p99_ms = millis(v),
            ["Non-2xx", "or", "3xx", "responses:", n] => f.non_2xx = n.parse().unwrap_or(0),
            _ => {}
        }
    }
    assert!(f.rps > 0.0, "wrk printed no rate for {url}:\n{text}");
    f
}

/// The bare handler: this bench's own executable, run again as a server.
fn bare_server(port: u16, body: &Path) -> Proc {
    let exe = std::env::current_exe().expect("exe");
    let child = Command::new(exe)
        .env("UC_BARE_SERVE", format!("{port}:{}", body.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("bare server");
    Proc(child)
}

fn serve_bare(spec: &str) {
    let (port, body) = spec.split_once(':').expect("port:file");
    let port: u16 = port.parse().expect("port");
    let body = std::fs::read(body).expect("body");
    actix_web::rt::System::new().block_on(async move {
        use actix_web::{web, App, HttpResponse, HttpServer};
        let body = web::Bytes::from(body);
        HttpServer::new(move || {
            let body = body.clone();
            App::new().route(
                "/v1/connections/{c}/contacts/{r}",
                web::get().to(move || {
                    let body = body.clone();
                    async move {
                        HttpResponse::Ok()
                            .content_type("application/json")
                            .insert_header(("etag", "\"0123456789abcdef0123456789abcdef\""))
                            .insert_header(("x-cache", "HIT"))
                            .insert_header(("cache-control", "private, max-age=60"))
                            .insert_header(("x-request-id", "01m94s001b5wptrz7wmynjq7hy"))
                            .insert_header(("x-ratelimit-limit", "1000000"))
                            .insert_header(("x-ratelimit-remaining", "999999"))
                            .insert_header(("x-ratelimit-reset", "1765000000"))
                            .body(body)
                    }
                }),
            )
        })
        .workers(2)
        .bind(("127.0.0.1", port))
        .expect("bind")
        .run()
        .await
        .expect("run");
    });
}

/// nginx with `proxy_cache` in front of the Periskope simulator, if installed.
fn nginx(dir: &Path, port: u16, upstream: &str) -> Option<Proc> {
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    let conf = format!(
        r#"worker_processes 2;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {dir}/nginx-access.log;
    proxy_cache_path {dir}/cache levels=1:2 keys_zone=contacts:10m max_size=100m;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream periskope {{ server {upstream}; keepalive 16; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://periskope;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "Bearer {SIM_KEY}";
            proxy_set_header x-phone "{SIM_PHONE}";
            proxy_cache contacts;
            proxy_cache_valid 200 60s;
            proxy_ignore_headers Cache-Control Expires Set-Cookie;
            add_header X-Cache $upstream_cache_status;
        }}
    }}
}}
"#,
        dir = dir.display()
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).expect("nginx.conf");
    let child = Command::new(nginx)
        .args(["-p", &dir.display().to_string(), "-c"])
        .arg(&path)
        .args(["-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    Some(Proc(child))
}

fn main() {
    if let Ok(spec) = std::env::var("UC_BARE_SERVE") {
        serve_bare(&spec);
        return;
    }
    if Command::new("wrk").arg("--version").output().is_err() {
        // The distribution's package, where this machine can install it.
        eprintln!("read_external: installing wrk (apt-get install wrk)");
        let _ = Command::new("apt-get")
            .args(["install", "-y", "-q", "wrk"])
            .stdout(Stdio::null())
            .status();
    }
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("read_external: needs wrk (apt-get install wrk)");
        std::process::exit(2);
    }
    let runs: usize = std::env::var("UC_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let seconds: u64 = std::env::var("UC_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let dir = tempfile::tempdir().expect("tempdir");

    // The service, as an operator runs it.
    let demo = Demo::start(&dir.path().join("sqlite"), None);
    let (auth, periskope_sim, digits, id) = (
        demo.auth.clone(),
        demo.periskope_sim.clone(),
        demo.digits.clone(),
        demo.id.clone(),
    );
    let (live, store, list) = (demo.live.clone(), demo.store.clone(), demo.list.clone());
    // The same with the per-key limiter (and notices) in Redis, when one is given.
    let redis_url = std::env::var("UC_BENCH_REDIS_URL")
        .or_else(|_| std::env::var("UNICONTACTS_TEST_REDIS_URL"))
        .ok();
    let with_redis = redis_url
        .as_deref()
        .map(|url| Demo::start(&dir.path().join("redis"), Some(url)));
    // Warm the cache; keep the live answer's bytes for the bare handler.
    let body = curl(&["-H", &auth, &live]);
    assert!(
        body.contains(&id),
        "the live read answers the contact: {body}"
    );
    let body_path = dir.path().join("body.json");
    std::fs::File::create(&body_path)
        .and_then(|mut f| f.write_all(body.as_bytes()))
        .expect("body");

    let bare_port = free_port();
    let _bare = bare_server(bare_port, &body_path);
    let bare = format!("http://127.0.0.1:{bare_port}/v1/connections/c/contacts/r");
    wait_for(&bare);

    let nginx_port = free_port();
    let nginx_dir = dir.path().join("nginx");
    std::fs::create_dir_all(&nginx_dir).expect("nginx dir");
    let _nginx = nginx(&nginx_dir, nginx_port, &periskope_sim);
    let nginx_url = format!("http://127.0.0.1:{nginx_port}/v1/contacts/{digits}");
    let with_nginx = _nginx.is_some() && {
        wait_for(&nginx_url);
        true
    };

    println!(
        "read_external: wrk -t{THREADS} -c{CONNECTIONS} -d{seconds}s, release build, SQLite, \
         per-key limiter and auth on, access log at info; {} bytes per live read{}",
        body.len(),
        if with_redis.is_some() {
            "; and a second server with the limiter in Redis"
        } else {
            ""
        }
    );
    let none: Vec<String> = Vec::new();
    let authed = vec![auth.clone()];
    for run in 1..=runs {
        let b = wrk(&bare, &none, seconds);
        let n = with_nginx.then(|| wrk(&nginx_url, &none, seconds));
        let l = wrk(&live, &authed, seconds);
        let r = with_redis.as_ref().map(|d| {
            // Warm its cache first.
            curl(&["-H", &d.auth, &d.live]);
            wrk(&d.live, std::slice::from_ref(&d.auth), seconds)
        });
        let s = wrk(&store, &authed, seconds);
        let p = wrk(&list, &authed, seconds);
        println!("run {run}:");
        let row = |name: &str, f: &Figure| {
            println!(
                "  {name:<34} {:>9.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  {:>5.3} × bare{}",
                f.rps,
                f.p50_ms,
                f.p99_ms,
                f.rps / b.rps,
                if f.non_2xx > 0 {
                    format!("  ({} non-2xx)", f.non_2xx)
                } else {
                    String::new()
                }
            )
        };
        row("bare actix handler", &b);
        if let Some(n) = &n {
            row("nginx proxy_cache (Periskope sim)", n);
        }
        row("cached live read (X-Cache: HIT)", &l);
        if let Some(r) = &r {
            row("cached live read, limiter in Redis", r);
        }
        row("store read GET /v1/contacts/{id}", &s);
        row("list page GET /v1/contacts?limit=50", &p);
        if let Some(n) = &n {
            println!("  cached live read / nginx: {:.3}", l.rps / n.rps);
        }
    }
    drop(demo);
}

/// A `serve --demo` process in `dir` (its SQLite file, its log), and what the
/// bench reads from it: a Periskope contact's live, stored and list URLs.
struct Demo {
    _server: Proc,
    auth: String,
    periskope_sim: String,
    digits: String,
    id: String,
    live: String,
    store: String,
    list: String,
}

impl Demo {
    fn start(dir: &Path, redis_url: Option<&str>) -> Demo {
        std::fs::create_dir_all(dir).expect("dir");
        let port = free_port();
        let log = std::fs::File::create(dir.join("server.log")).expect("log");
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--demo"])
            .current_dir(dir)
            .env("UNICONTACTS_BIND", format!("127.0.0.1:{port}"))
            .env("UNICONTACTS_RATE_LIMIT_PER_SECOND", "1000000")
            .env("UNICONTACTS_RATE_LIMIT_BURST", "1000000")
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        if let Some(url) = redis_url {
            command.env("UNICONTACTS_REDIS_URL", url);
        }
        let server = Proc(command.spawn().expect("unicontacts"));
        let base = format!("http://127.0.0.1:{port}");
        wait_for(&format!("{base}/readyz"));
        let banner = BufReader::new(std::fs::File::open(dir.join("server.log")).expect("log"));
        let lines: Vec<String> = banner.lines().map_while(Result::ok).collect();
        let key = lines
            .iter()
            .find(|l| l.starts_with("uck_"))
            .expect("the demo's key")
            .trim()
            .to_string();
        let periskope_sim = lines
            .iter()
            .find_map(|l| {
                l.split("Periskope http://")
                    .nth(1)
                    .and_then(|r| r.split('/').next())
                    .map(str::to_string)
            })
            .expect("the Periskope simulator's address");
        let auth = format!("Authorization: Bearer {key}");
        // What to read: a Periskope contact (the live read and nginx ask for the
        // same one), its stored copy, a list page.
        let page: serde_json::Value = serde_json::from_str(&curl(&[
            "-H",
            &auth,
            &format!("{base}/v1/contacts?provider=periskope&limit=1"),
        ]))
        .expect("a page");
        let contact = &page["data"][0];
        let id = contact["id"].as_str().expect("id").to_string();
        let connection = contact["connection_id"].as_str().expect("connection");
        let remote = contact["remote_id"].as_str().expect("remote id");
        let digits = remote.trim_end_matches("@c.us").to_string();
        Demo {
            _server: server,
            live: format!("{base}/v1/connections/{connection}/contacts/{digits}"),
            store: format!("{base}/v1/contacts/{id}"),
            list: format!("{base}/v1/contacts?limit=50"),
            auth,
            periskope_sim,
            digits,
            id,
        }
    }
}
