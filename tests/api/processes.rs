//! `unicontacts serve` as child processes (replicas) and a Redis of a test's
//! own: what the replica, metrics, CLI and chaos tests run beside the app.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{send, TestDb};

const BIN: &str = env!("CARGO_BIN_EXE_unicontacts");

/// One `unicontacts serve` child; killed when dropped.
pub struct Replica {
    child: Option<Child>,
    base: String,
    pub pid: u32,
}

impl Replica {
    /// `redis`: the shared Redis, or "" for none.
    pub fn start(db: &TestDb, redis: &str, env: &[(&str, &str)]) -> Replica {
        let url = match &db.url {
            unicontacts::config::DatabaseUrl::Postgres(u) => u.clone(),
            unicontacts::config::DatabaseUrl::Sqlite(p) => p.display().to_string(),
        };
        let mut cmd = Command::new(BIN);
        cmd.env_clear()
            .current_dir(std::env::temp_dir())
            .arg("serve")
            .env("UNICONTACTS_DATABASE_URL", url)
            .env("UNICONTACTS_REPLICAS", "3")
            .env("UNICONTACTS_BIND", "127.0.0.1:0")
            .env("UNICONTACTS_LOG_FORMAT", "json")
            .env("UNICONTACTS_WORKERS", "2")
            .env("UNICONTACTS_SCHEDULER_TICK_MS", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if !redis.is_empty() {
            cmd.env("UNICONTACTS_REDIS_URL", redis);
        }
        if let Some(key) = &db.secret_key {
            cmd.env("UNICONTACTS_SECRET_KEY", key);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let port = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("the replica starts");
            if let Some(port) = serde_json::from_str::<Value>(&line)
                .ok()
                .and_then(|v| v["fields"]["port"].as_u64())
            {
                break port;
            }
        };
        // Keep draining its log so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in rx {});
        Replica {
            pid: child.id(),
            child: Some(child),
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts a sync of the connection through `r`; returns the run's id.
pub async fn start_sync(r: &Replica, key: &str, connection: &str) -> String {
    let res = send(
        reqwest::Client::new()
            .post(r.url(&format!("/v1/admin/connections/{connection}/sync")))
            .bearer_auth(key)
            .json(&json!({})),
    )
    .await;
    assert_eq!(res.status(), 202);
    res.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_string()
}

/// `GET` of `path` on `r` with `key`.
pub async fn get(r: &Replica, path: &str, key: &str) -> reqwest::Response {
    send(reqwest::Client::new().get(r.url(path)).bearer_auth(key)).await
}

/// Polls the run on `r` until it ends (bounded).
pub async fn wait_for_run(r: &Replica, key: &str, run_id: &str) -> Value {
    for _ in 0..1200 {
        let res = get(r, &format!("/v1/admin/sync-runs/{run_id}"), key).await;
        if res.status() == 200 {
            let run: Value = res.json().await.expect("json");
            if run["status"] != "running" {
                return run;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("run {run_id} did not end");
}

/// A Redis server of the test's own on a free port (the machine's Redis binary,
/// nothing kept on disk), stopped when dropped; `restart` stops it and starts a
/// fresh one on the same port, as an operator restarting Redis would.
pub struct OwnRedis {
    child: Option<Child>,
    port: u16,
    pub url: String,
}

impl OwnRedis {
    pub async fn start() -> OwnRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let mut own = OwnRedis {
            child: None,
            port,
            url: format!("redis://127.0.0.1:{port}"),
        };
        own.spawn().await;
        own
    }

    async fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (installed with the machine's Redis)");
        self.child = Some(child);
        for _ in 0..250 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    /// Stops the server (its data goes with it).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port, empty (the chaos suite's).
    #[allow(dead_code)]
    pub async fn restart(&mut self) {
        self.stop();
        self.spawn().await;
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
