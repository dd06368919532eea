//! The README works as printed: every command of its `sh` blocks runs in a fresh
//! directory, against the binary this suite built (a `cargo` on the `PATH` runs it
//! for `cargo run [-q] --release [-- ARGS]`), and answers what the README says.
//!
//! What the test changes, and only this: the port (`8080` → a free one, also given
//! to the server as `UNICONTACTS_BIND`), the receiver's address of the webhooks
//! block, the PostgreSQL URL of the last block (a database of the test's), and the
//! placeholders a reader fills in from what an earlier command printed (`uck_…`,
//! `con_…`, the generated secret key). `cargo test` and `cargo bench` are this suite
//! and the benchmarks: they are checked to be there, not run from here.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::{Child, Command};

use crate::helpers::{Backend, TestDb};
use crate::webhooks::{verifies, Receiver};

const BIN: &str = env!("CARGO_BIN_EXE_unicontacts");
const README: &str = include_str!("../../README.md");

/// Stands in for cargo: `cargo run [-q] --release [-- ARGS]` runs the built binary.
const CARGO_SHIM: &str = r#"#!/bin/sh
[ "$1" = run ] || { echo "README test: only 'cargo run' runs here, not: cargo $*" >&2; exit 97; }
shift
while [ $# -gt 0 ]; do
  case "$1" in
    -q|--release) shift ;;
    --) shift; break ;;
    *) echo "README test: unexpected cargo flag $1" >&2; exit 98 ;;
  esac
done
exec "$UNICONTACTS_README_BIN" "$@"
"#;

/// The `sh` blocks of the README, each as its commands: continuation lines and
/// quoted strings over several lines joined, comment lines left out.
fn sh_blocks() -> Vec<Vec<String>> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<String>> = None;
    let mut pending = String::new();
    for line in README.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(Vec::new()),
            (None, _) => {}
            (Some(_), "```") => {
                assert!(pending.is_empty(), "an unfinished command: {pending}");
                blocks.push(current.take().expect("block"));
            }
            (Some(commands), text) => {
                if pending.is_empty()
                    && (text.trim().is_empty() || text.trim_start().starts_with('#'))
                {
                    continue;
                }
                pending.push_str(text);
                pending.push('\n');
                let open_quote = pending.matches('\'').count() % 2 == 1;
                if !text.ends_with('\\') && !open_quote {
                    commands.push(std::mem::take(&mut pending).trim_end().to_string());
                }
            }
        }
    }
    blocks
}

/// The command without its trailing `# comment` (outside quotes).
fn without_comment(command: &str) -> &str {
    let mut quoted = None;
    for (i, c) in command.char_indices() {
        match (quoted, c) {
            (None, '\'' | '"') => quoted = Some(c),
            (Some(q), c) if c == q => quoted = None,
            (None, '#') if i > 0 && command[..i].ends_with(' ') => return command[..i].trim_end(),
            _ => {}
        }
    }
    command.trim_end()
}

/// A fresh directory, a free port, and the servers started in it.
struct Shell {
    dir: tempfile::TempDir,
    port: u16,
    env: Vec<(String, String)>,
    servers: Vec<Child>,
}

impl Shell {
    fn new() -> Shell {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).expect("bin dir");
        let cargo = bin.join("cargo");
        std::fs::write(&cargo, CARGO_SHIM).expect("cargo shim");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&cargo, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let home = dir.path().display().to_string();
        let env = vec![
            ("PATH".into(), path),
            ("HOME".into(), home),
            ("UNICONTACTS_README_BIN".into(), BIN.into()),
            ("UNICONTACTS_BIND".into(), format!("127.0.0.1:{port}")),
            // api.periskope.app is never reached from a test: as on a machine offline.
            ("HTTPS_PROXY".into(), "http://127.0.0.1:9".into()),
            ("https_proxy".into(), "http://127.0.0.1:9".into()),
        ];
        Shell {
            dir,
            port,
            env,
            servers: Vec::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn command(&self, script: &str) -> Command {
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(script)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(self.dir.path())
            .process_group(0)
            .kill_on_drop(true);
        cmd
    }

    /// The README's text as it runs here: the port is this shell's.
    fn localised(&self, command: &str) -> String {
        without_comment(command).replace("localhost:8080", &format!("localhost:{}", self.port))
    }

    /// Runs a command to its end: exit 0, its standard output.
    async fn run(&self, command: &str) -> String {
        // `"…"` is the reader's own provider key: sent as printed (the provider is
        // out of reach here); any other `…` is to be filled in from an earlier answer.
        assert!(
            !command.replace("\"…\"", "").contains('…'),
            "a placeholder the test does not fill in: {command}"
        );
        let child = self
            .command(command)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("bash");
        let out = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("still running after 90 s: {command}"))
            .expect("wait");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{command}\nexited {:?}\nstdout: {stdout}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// Starts a server command (its trailing `&` taken off) and waits for `/readyz`.
    /// Its output goes to `server.log` in the directory.
    async fn serve(&mut self, command: &str) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .expect("log");
        let script = command.trim_end().trim_end_matches('&').trim_end();
        let mut child = self
            .command(script)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("bash");
        let client = reqwest::Client::new();
        for _ in 0..600 {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{command} stopped with {status:?}:\n{}", self.log());
            }
            if let Ok(res) = client.get(self.url("/readyz")).send().await {
                if res.status().is_success() {
                    self.servers.push(child);
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("{command} was not ready in 120 s:\n{}", self.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Stops the servers with SIGTERM, as a terminal's Ctrl-C would: each exits 0.
    async fn stop(&mut self) {
        for mut child in std::mem::take(&mut self.servers) {
            let group = format!("-{}", child.id().expect("pid"));
            let _ = std::process::Command::new("kill")
                .args(["-TERM", "--", &group])
                .status();
            let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
                .await
                .expect("the server stops after SIGTERM")
                .expect("wait");
            assert!(status.success(), "{status:?}\n{}", self.log());
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// `cargo test` / `cargo bench` lines: this suite and the benchmarks.
fn is_suite_or_bench(command: &str) -> bool {
    let c = without_comment(command);
    let words: Vec<&str> = c.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "cargo");
    match at {
        Some(i) => {
            words[..i].iter().all(|w| w.contains('='))
                && matches!(words.get(i + 1), Some(&"test") | Some(&"bench"))
        }
        None => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_readme_command_works_as_printed_in_a_fresh_directory() {
    let blocks = sh_blocks();
    assert_eq!(
        blocks.len(),
        6,
        "a new sh block in the README: teach this test to run it"
    );
    let (two_commands, suite, first_steps, webhooks, benches, postgres) = (
        &blocks[0], &blocks[1], &blocks[2], &blocks[3], &blocks[4], &blocks[5],
    );

    // The two commands: the demo serves (checked below with the webhooks block),
    // and `cargo test` is this suite.
    assert_eq!(two_commands.len(), 2);
    assert!(two_commands[0].starts_with("cargo run --release -- serve --demo"));
    assert!(is_suite_or_bench(&two_commands[1]), "{}", two_commands[1]);
    assert!(suite.iter().all(|c| is_suite_or_bench(c)), "{suite:?}");
    assert!(benches.iter().all(|c| is_suite_or_bench(c)), "{benches:?}");
    for c in benches {
        let name = c.split_whitespace().nth(3).expect("bench name");
        assert!(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("benches/{name}.rs"))
                .exists(),
            "{c}"
        );
    }

    first_steps_run_as_printed(first_steps).await;
    the_demo_and_its_webhooks_run_as_printed(&two_commands[0], webhooks).await;
    postgres_block_runs_as_printed(postgres).await;
}

/// First steps: a key, the server, a Periskope connection (checked with Periskope,
/// which a test cannot reach: saved unverified), a contact at it.
async fn first_steps_run_as_printed(commands: &[String]) {
    let mut sh = Shell::new();
    let mut key: Option<String> = None;
    let mut connection: Option<String> = None;
    let mut answers = Vec::new();
    for command in commands {
        let mut c = sh.localised(command);
        if let Some(k) = &key {
            c = c.replace("uck_…", k);
        }
        if let Some(id) = &connection {
            c = c.replace("con_…", id);
        }
        if let Some(assignment) = c.strip_prefix("export ") {
            let (name, value) = assignment.split_once('=').expect("NAME=value");
            assert!(!value.contains('…'), "{command}");
            sh.env.push((name.to_string(), value.to_string()));
        } else if c.ends_with('&') || c == "cargo run --release" {
            sh.serve(&c).await;
        } else if c.starts_with("cargo run") {
            let out = sh.run(&c).await;
            let last = out.lines().last().unwrap_or_default().to_string();
            assert!(
                last.starts_with("uck_"),
                "the key alone on the last line: {out}"
            );
            key = Some(last);
        } else if c.starts_with("until ") {
            sh.run(&c).await;
        } else {
            // A curl: "-s" prints the answer, never a server error.
            let out = sh.run(&c).await;
            let answer = json(&out);
            if let Some(id) = answer["id"].as_str().filter(|id| id.starts_with("con_")) {
                connection = Some(id.to_string());
            }
            answers.push(answer);
        }
    }
    assert!(
        sh.path().join("unicontacts.db").exists(),
        "./unicontacts.db"
    );
    assert_eq!(answers.len(), 2, "{answers:?}");
    // The connection: saved, its credentials not yet checked (Periskope out of reach).
    let saved = &answers[0];
    assert_eq!(saved["provider"], "periskope", "{saved}");
    assert_eq!(saved["credentials"]["phone"], "919874532456", "{saved}");
    assert_eq!(saved["credentials_verified_at"], Value::Null, "{saved}");
    assert_eq!(saved["health"], "degraded", "{saved}");
    assert!(
        saved["last_error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("unreachable")),
        "{saved}"
    );
    // The contact: the provider out of reach is said so, nothing is invented.
    let created = &answers[1];
    assert_eq!(
        created["error"]["code"], "upstream_unavailable",
        "{created}"
    );
    sh.stop().await;
}

/// The demo serves with a key on its banner; the webhooks block registers a receiver
/// and syncs a connection of `GET /v1/admin/connections`: the receiver gets the
/// run's event, signed.
async fn the_demo_and_its_webhooks_run_as_printed(demo: &str, commands: &[String]) {
    let mut sh = Shell::new();
    sh.serve(&sh.localised(demo)).await;
    let key = sh
        .log()
        .lines()
        .find(|l| l.starts_with("uck_"))
        .expect("the demo prints its admin key")
        .trim()
        .to_string();
    sh.env.push(("KEY".into(), key.clone()));
    let connections: Value = reqwest::Client::new()
        .get(sh.url("/v1/admin/connections"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("connections")
        .json()
        .await
        .expect("json");
    let connection = connections["data"][0]["id"]
        .as_str()
        .expect("a demo connection")
        .to_string();
    let receiver = Receiver::start(204).await;
    let receiver_at = receiver.url("").replace("http://", "");
    let mut secret = None;
    let mut run = None;
    for command in commands {
        let c = sh
            .localised(command)
            .replace("127.0.0.1:9000", &receiver_at)
            .replace("con_…", &connection);
        let answer = json(&sh.run(&c).await);
        if let Some(s) = answer["secret"].as_str() {
            secret = Some(s.to_string());
        }
        if let Some(id) = answer["id"].as_str().filter(|id| id.starts_with("run_")) {
            run = Some(id.to_string());
        }
    }
    let secret = secret.expect("the webhook's secret is in the create answer");
    let run = run.expect("the sync answers with its run");
    let hits = receiver
        .until(Duration::from_secs(60), |hits| {
            hits.iter().any(|h| {
                let body = h.json();
                body["type"] == "sync_run.finished" && body["data"]["run_id"] == run.as_str()
            })
        })
        .await;
    assert!(hits.iter().all(|h| h.path == "/hook"), "the printed path");
    assert!(
        hits.iter().all(|h| verifies(&secret, h)),
        "every delivery signed"
    );
    sh.stop().await;
}

/// The PostgreSQL block: a generated key, then the server on PostgreSQL with it.
async fn postgres_block_runs_as_printed(commands: &[String]) {
    assert_eq!(commands.len(), 2, "{commands:?}");
    let Some(backend) = Backend::postgres() else {
        eprintln!("no PostgreSQL for the README's PostgreSQL block: its key step only");
        let sh = Shell::new();
        let key = sh.run(&sh.localised(&commands[0])).await;
        assert_eq!(key.trim().len(), 44, "a base64 32-byte key: {key}");
        return;
    };
    let db = TestDb::new(&backend);
    let unicontacts::config::DatabaseUrl::Postgres(url) = &db.url else {
        unreachable!("a PostgreSQL test database")
    };
    let mut sh = Shell::new();
    let key = sh.run(&sh.localised(&commands[0])).await;
    let key = key.trim().to_string();
    let c = sh
        .localised(&commands[1])
        .replace("postgres://unicontacts:secret@db.internal/unicontacts", url)
        .replace(
            "UNICONTACTS_SECRET_KEY=…",
            &format!("UNICONTACTS_SECRET_KEY={key}"),
        );
    sh.serve(&c).await;
    let ready: Value = reqwest::get(sh.url("/readyz"))
        .await
        .expect("readyz")
        .json()
        .await
        .expect("json");
    assert_eq!(ready["status"], "ready", "{ready}");
    sh.stop().await;
    assert!(
        !sh.path().join("unicontacts.db").exists(),
        "served from PostgreSQL, no SQLite file made"
    );
}
