//! The `unicontacts` binary itself: help, settings, `keys create`, `migrate`, and
//! `serve` as a child process (JSON logs, no secrets in them, clean SIGTERM).

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};
use unicontacts::service::api_keys::Scope;
use unicontacts::store::models::{RunStatus, SyncRunRow, Trigger};

use crate::helpers::{send, Backend, TestDb};

const BIN: &str = env!("CARGO_BIN_EXE_unicontacts");

/// The binary with a clean environment: only what the test gives it.
pub fn unicontacts(db: Option<&TestDb>) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear();
    let dir = std::env::temp_dir();
    cmd.current_dir(dir);
    if let Some(db) = db {
        let url = match &db.url {
            unicontacts::config::DatabaseUrl::Sqlite(p) => p.display().to_string(),
            unicontacts::config::DatabaseUrl::Postgres(u) => u.clone(),
        };
        cmd.env("UNICONTACTS_DATABASE_URL", url);
        if let Some(key) = &db.secret_key {
            cmd.env("UNICONTACTS_SECRET_KEY", key);
        }
    }
    cmd
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run unicontacts")
}

/// The child's stdout, line by line, read on a thread of its own.
fn stdout_lines(child: &mut std::process::Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["migrate", "--help"],
        vec!["relink", "--help"],
        vec!["keys", "--help"],
        vec!["keys", "create", "--help"],
        vec!["keys", "list", "--help"],
        vec!["keys", "revoke", "--help"],
        vec!["connections", "list", "--help"],
        vec!["sync-runs", "held", "--help"],
        vec!["sync-runs", "apply", "--help"],
        vec!["sync-runs", "discard", "--help"],
        vec!["completions", "--help"],
        vec!["healthcheck", "--help"],
        vec!["secrets", "rotate", "--help"],
        vec!["secrets", "generate-key", "--help"],
    ] {
        let out = run(unicontacts(None).args(&args));
        assert!(out.status.success(), "{args:?}");
        assert!(text(&out.stdout).contains("Usage:"), "{args:?}");
    }
    let out = run(unicontacts(None).args(["keys", "create", "--help"]));
    let help = text(&out.stdout);
    for flag in ["--org", "--scopes", "--name"] {
        assert!(help.contains(flag), "{help}");
    }
}

#[test]
fn a_bad_setting_stops_start_up_with_one_line_naming_it() {
    for (name, value) in [
        ("UNICONTACTS_BIND", "nowhere"),
        ("UNICONTACTS_DATABASE_URL", "mysql://localhost/db"),
        ("UNICONTACTS_LOG_FORMAT", "xml"),
        ("UNICONTACTS_WORKERS", "0"),
        ("UNICONTACTS_CONFIG", "/nonexistent/unicontacts.toml"),
    ] {
        let out = run(unicontacts(None).env(name, value).arg("serve"));
        assert!(!out.status.success(), "{name}={value} must stop start-up");
        let stderr = text(&out.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{name}: {stderr}");
        assert!(lines[0].contains(name), "{name}: {stderr}");
    }
    // The file named on the command line: the error names the flag, not the variable.
    let out = run(unicontacts(None).args(["--config", "/nonexistent/unicontacts.toml", "serve"]));
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("invalid setting --config: cannot read /nonexistent/unicontacts.toml"),
        "{stderr}"
    );
    let out = run(unicontacts(None)
        .env(
            "UNICONTACTS_DATABASE_URL",
            "postgres://u:hunter2@127.0.0.1:1/x",
        )
        .env("UNICONTACTS_DATABASE_POOL_SIZE", "x"));
    assert!(!text(&out.stderr).contains("hunter2"));
}

fn key_from(out: &Output) -> String {
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let last = stdout.lines().last().expect("a last line").to_string();
    assert!(
        last.starts_with("uck_") && !last.contains(' '),
        "the key alone: {last:?}"
    );
    last
}

async fn keys_create_prints_the_key_alone_on_the_last_line_and_it_works(backend: Backend) {
    let db = TestDb::new(&backend);
    let out = run(unicontacts(Some(&db)).args([
        "keys",
        "create",
        "--org",
        "acme",
        "--scopes",
        "admin,contacts:read",
        "--name",
        "ops",
    ]));
    let key = key_from(&out);
    // The org is reused, not duplicated, by a second key.
    let second = key_from(&run(
        unicontacts(Some(&db)).args(["keys", "create", "--org", "acme", "--scopes", "admin"])
    ));
    assert_ne!(key, second);

    let settings = crate::helpers::test_settings(&db);
    let app = unicontacts::startup::Application::build(settings)
        .await
        .expect("app");
    let url = format!("http://127.0.0.1:{}", app.port());
    let _stop = crate::helpers::StopOnDrop::of(&app);
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::new();
    let res = send(
        client
            .get(format!("{url}/v1/admin/api-keys"))
            .bearer_auth(&key),
    )
    .await;
    assert_eq!(res.status(), 200);
    let list: Value = res.json().await.expect("json");
    let names: Vec<&str> = list["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|k| k["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        vec!["ops", "cli"],
        "both keys belong to the one org `acme`"
    );

    let out = run(unicontacts(Some(&db)).args([
        "keys",
        "create",
        "--org",
        "acme",
        "--scopes",
        "admin,root",
    ]));
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("root"));
    assert!(!text(&out.stdout).contains("uck_"));
}

/// The id in the second line of `keys create` (`key: key_… prefix …`).
fn key_id_from(out: &Output) -> String {
    text(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("key: "))
        .and_then(|l| l.split(' ').next())
        .expect("key line")
        .to_string()
}

async fn keys_are_listed_and_revoked_from_the_command_line(backend: Backend) {
    let db = TestDb::new(&backend);
    let out = run(unicontacts(Some(&db)).args(["keys", "list"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "no API keys");
    let acme = run(unicontacts(Some(&db)).args([
        "keys",
        "create",
        "--org",
        "acme",
        "--scopes",
        "admin",
        "--expires-at",
        "2099-01-01T00:00:00Z",
    ]));
    let acme_key = key_from(&acme);
    let acme_id = key_id_from(&acme);
    let other = run(unicontacts(Some(&db)).args([
        "keys",
        "create",
        "--org",
        "globex",
        "--scopes",
        "contacts:read",
    ]));
    key_from(&other);
    let bad = run(unicontacts(Some(&db)).args([
        "keys",
        "create",
        "--org",
        "acme",
        "--scopes",
        "admin",
        "--expires-at",
        "yesterday",
    ]));
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("--expires-at must be an RFC 3339 time"),
        "{}",
        text(&bad.stderr)
    );

    let out = run(unicontacts(Some(&db)).args(["keys", "list"]));
    let listed = text(&out.stdout);
    assert!(listed.starts_with("ID "), "{listed}");
    assert_eq!(listed.lines().count(), 3, "{listed}");
    assert!(
        listed.contains(&acme_id) && listed.contains("2099-01-01T00:00:00"),
        "{listed}"
    );
    assert!(!listed.contains(&acme_key), "never the key itself");
    let out = run(unicontacts(Some(&db)).args(["keys", "list", "--org", "globex"]));
    let listed = text(&out.stdout);
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(!listed.contains(&acme_id));

    // The CLI may revoke an org's last admin key (the API may not), and says so.
    let out = run(unicontacts(Some(&db)).args(["keys", "revoke", &acme_id]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.contains(&format!("revoked {acme_id}")), "{said}");
    assert!(
        said.contains("keys create --org acme --scopes admin"),
        "{said}"
    );
    let out = run(unicontacts(Some(&db)).args(["keys", "list"]));
    assert!(!text(&out.stdout).contains(&acme_id));
    let out = run(unicontacts(Some(&db)).args(["keys", "list", "--all"]));
    assert!(text(&out.stdout).contains(&acme_id));
    let out =
        run(unicontacts(Some(&db)).args(["keys", "revoke", "key_00000000000000000000000000"]));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no API key key_0000"),
        "{}",
        text(&out.stderr)
    );
}

async fn connections_list_and_an_empty_sync_say_what_there_is(backend: Backend) {
    let db = TestDb::new(&backend);
    let out = run(unicontacts(Some(&db)).arg("sync"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "no connections to sync");
    let out = run(unicontacts(Some(&db)).args(["sync", "--connection", "con_nope"]));
    assert!(!out.status.success());
    let out = run(unicontacts(Some(&db)).args(["connections", "list"]));
    assert_eq!(text(&out.stdout).trim(), "no connections");

    let (_sim, store, connection) = wacr_connection(&db, 61, 30).await;
    let synced = sync_once(&store, &connection, chrono::Duration::seconds(60)).await;
    assert_eq!(synced.status, RunStatus::Succeeded);
    let out = run(unicontacts(Some(&db)).args(["connections", "list"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = text(&out.stdout);
    let line = listed
        .lines()
        .find(|l| l.starts_with(&connection.id))
        .unwrap_or_else(|| panic!("{listed}"));
    for word in ["wacr", "crm", "healthy", "on", "succeeded"] {
        assert!(line.contains(word), "{word}: {line}");
    }
    drop(store);
}

/// `sync-runs held|apply|discard`: the held deletions of every org, from the
/// command line, as the API ends them.
async fn held_deletions_are_listed_applied_and_discarded_from_the_command_line(backend: Backend) {
    let db = TestDb::new(&backend);
    let out = run(unicontacts(Some(&db)).args(["sync-runs", "held"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "no deletions held");
    let (sim, store, connection) = wacr_connection(&db, 62, 40).await;
    let first = sync_once(&store, &connection, chrono::Duration::seconds(60)).await;
    let n = first.created;
    assert!(n > 5, "{first:?}");
    let hold = |keep: usize| {
        sim.api()
            .with_store(|s| s.listing = unicontacts_simulators::Listing::Truncated { keep })
    };
    hold(0);
    let held = sync_once(&store, &connection, chrono::Duration::seconds(60)).await;
    assert_eq!(held.status, RunStatus::Held, "{held:?}");
    let out = run(unicontacts(Some(&db)).args(["sync-runs", "held"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = text(&out.stdout);
    let line = listed
        .lines()
        .find(|l| l.starts_with(&held.id))
        .unwrap_or_else(|| panic!("{listed}"));
    for word in [
        connection.id.as_str(),
        &n.to_string(),
        "deletions held for review",
    ] {
        assert!(line.contains(word), "{word}: {line}");
    }
    // Discarded: nothing deleted; applying it afterwards names the discard.
    let out = run(unicontacts(Some(&db)).args(["sync-runs", "discard", &held.id]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("{n} contact(s) kept")),
        "{}",
        text(&out.stdout)
    );
    let out = run(unicontacts(Some(&db)).args(["sync-runs", "apply", &held.id]));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("discarded"),
        "{}",
        text(&out.stderr)
    );
    // Held again by the next run, and applied.
    let again = sync_once(&store, &connection, chrono::Duration::seconds(60)).await;
    assert_eq!(again.status, RunStatus::Held, "{again:?}");
    let out = run(unicontacts(Some(&db)).args(["sync-runs", "apply", &again.id]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("{n} contact(s) marked deleted")),
        "{}",
        text(&out.stdout)
    );
    let stored = stored_contacts(&store, &connection.id).await;
    assert_eq!(stored.len() as i64, n);
    assert!(stored.iter().all(|(_, deleted)| *deleted), "{stored:?}");
    let out =
        run(unicontacts(Some(&db)).args(["sync-runs", "apply", "run_00000000000000000000000000"]));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("sync run not found"),
        "{}",
        text(&out.stderr)
    );
    drop(store);
}

/// `healthcheck` says whether a server answers `/readyz`: 0 for a running one,
/// 1 (and why) for an address nobody serves.
async fn healthcheck_exits_zero_only_for_a_ready_server(backend: Backend) {
    let db = TestDb::new(&backend);
    let server = crate::processes::Replica::start(&db, "", &[]);
    let base = server.url("");
    let out = run(unicontacts(Some(&db)).args(["healthcheck", "--url", &base]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("ready"));
    drop(server);
    let out = run(unicontacts(Some(&db)).args(["healthcheck", "--url", &base]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not ready"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        // A settings file that does not parse must not stop them.
        let out = run(unicontacts(None)
            .args(["completions", shell])
            .env("UNICONTACTS_CONFIG", "/nonexistent/unicontacts.toml"));
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        for word in ["unicontacts", "keys", "revoke", "connections"] {
            assert!(script.contains(word), "{shell}: {word}");
        }
    }
    let out = run(unicontacts(None).args(["completions", "tcsh"]));
    assert!(!out.status.success());
}

async fn migrate_creates_the_schema(backend: Backend) {
    let db = TestDb::new(&backend);
    let out = run(unicontacts(Some(&db)).arg("migrate"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let store =
        unicontacts::store::Store::connect(&db.url, 1, Duration::from_secs(5)).expect("connect");
    let schema = store
        .run(unicontacts::store::describe_schema)
        .await
        .expect("schema");
    assert!(schema.contains_key("connections"), "{schema:?}");
    let said = text(&out.stdout);
    assert!(said.contains("applied 2026-11-21-000001"), "{said}");
    assert!(said.contains("up to date"), "{said}");
    // Running it again changes nothing and still succeeds.
    let again = run(unicontacts(Some(&db)).arg("migrate"));
    assert!(
        again.status.success(),
        "{}: {}",
        again.status,
        text(&again.stderr)
    );
    assert_eq!(
        text(&again.stdout).trim(),
        format!(
            "migrations are up to date ({}); nothing to apply",
            db.url.backend_name()
        )
    );
}

/// A short command ends while the pool may still be opening its next connection.
/// On PostgreSQL that is a TLS handshake in another thread, and OpenSSL's default
/// exit handler freed its tables under it: SIGSEGV in about 1 `migrate` in 15.
/// Forty runs catch that with a 94% chance; each run takes tens of milliseconds.
async fn short_commands_exit_cleanly_while_the_pool_connects(backend: Backend) {
    let db = TestDb::new(&backend);
    for round in 0..40 {
        let out = run(unicontacts(Some(&db)).arg("migrate"));
        assert!(
            out.status.success(),
            "round {round}: {} {}",
            out.status,
            text(&out.stderr)
        );
    }
}

async fn serve_logs_json_keeps_secrets_out_and_stops_cleanly_on_sigterm(backend: Backend) {
    let db = TestDb::new(&backend);
    let key = key_from(&run(
        unicontacts(Some(&db)).args(["keys", "create", "--org", "acme", "--scopes", "admin"])
    ));

    let mut child = unicontacts(Some(&db))
        .env("UNICONTACTS_BIND", "127.0.0.1:0")
        .env("UNICONTACTS_LOG_FORMAT", "json")
        .env("UNICONTACTS_WORKERS", "1")
        .env("UNICONTACTS_LOG_LEVEL", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let (tx, rx) = mpsc::channel::<String>();
    for stream in [
        Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().expect("stderr")),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    drop(tx);
    let mut logs = Vec::new();
    let port = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the server starts");
        logs.push(line.clone());
        if let Ok(v) = serde_json::from_str::<Value>(&line) {
            if let Some(port) = v["fields"]["port"].as_u64() {
                break port;
            }
        }
    };
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let secret = "pk_live_VERYSECRETVALUE_1234567890";
    let res = send(client.post(format!("{url}/v1/admin/connections")).bearer_auth(&key).json(&json!({
        "provider": "periskope", "name": "P", "credentials": {"api_key": secret, "phone": "919537851844"}
    })))
    .await;
    assert_eq!(res.status(), 201);
    let res = send(client.post(format!("{url}/v1/admin/connections")).bearer_auth(&key).json(&json!({
        "provider": "periskope", "name": "P", "credentials": {"api_key": secret, "phone": "919537851844"}
    })))
    .await;
    assert_eq!(res.status(), 409);
    let res = send(
        client
            .get(format!("{url}/v1/admin/connections?limit=oops"))
            .bearer_auth(&key),
    )
    .await;
    assert_eq!(res.status(), 422);

    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill")
        .success());
    let status = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || child.wait()),
    )
    .await
    .expect("the server stops after SIGTERM")
    .expect("join")
    .expect("wait");
    assert!(status.success(), "clean exit after SIGTERM: {status:?}");
    logs.extend(rx.iter());

    let all = logs.join("\n");
    assert!(!all.contains("VERYSECRETVALUE"), "secrets in logs:\n{all}");
    assert!(!all.contains(&key[4..]), "API key in logs");
    let json_lines = logs
        .iter()
        .filter(|l| serde_json::from_str::<Value>(l).is_ok())
        .count();
    assert_eq!(json_lines, logs.len(), "every log line is JSON:\n{all}");
    assert!(all.contains("request done"), "access log:\n{all}");
    assert!(all.contains("shut down cleanly"), "{all}");
}

async fn serve_demo_loads_three_providers_and_prints_a_working_key(backend: Backend) {
    let db = TestDb::new(&backend);
    let mut child = unicontacts(Some(&db))
        .args(["serve", "--demo"])
        .env("UNICONTACTS_BIND", "127.0.0.1:0")
        .env("UNICONTACTS_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn demo");
    let rx = stdout_lines(&mut child);
    // With JSON logs the banner goes to stderr: stdout stays JSON lines only.
    let stderr = child.stderr.take().expect("stderr");
    let (tx, banner) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut port = None;
    while port.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(90))
            .expect("the demo starts");
        let v: Value = serde_json::from_str(&line)
            .unwrap_or_else(|_| panic!("a line that is not JSON on stdout: {line}"));
        port = v["fields"]["port"].as_u64();
    }
    let (mut key, mut curls, mut simulators) = (None, Vec::new(), None);
    while key.is_none() || curls.len() < 4 || simulators.is_none() {
        let line = banner
            .recv_timeout(Duration::from_secs(10))
            .expect("the banner is on stderr");
        if line.starts_with("uck_") {
            key = Some(line.clone());
        }
        if line.trim_start().starts_with("curl ") {
            curls.push(line.clone());
        }
        if line.starts_with("simulators (API key ") {
            simulators = Some(line.clone());
        }
    }
    let key = key.expect("the key is printed");
    assert_eq!(curls.len(), 4, "four ready-to-paste curl lines");
    assert!(
        simulators
            .expect("simulators")
            .contains(unicontacts::demo::SIM_KEY),
        "the simulators' key is shown"
    );
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{}", port.expect("port"));
    let all: Value = send(
        client
            .get(format!("{url}/v1/contacts?limit=500"))
            .bearer_auth(&key),
    )
    .await
    .json()
    .await
    .expect("json");
    let providers: std::collections::HashSet<&str> = all["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|c| c["provider"].as_str())
        .collect();
    assert_eq!(
        providers.len(),
        3,
        "contacts of all three simulators are loaded"
    );
    // The printed phone query finds one person at three providers.
    let phone_line = curls
        .iter()
        .find(|l| l.contains("phone="))
        .expect("phone curl");
    let phone_url = phone_line.split('\'').nth(3).expect("url in quotes");
    let found: Value = send(client.get(phone_url).bearer_auth(&key))
        .await
        .json()
        .await
        .expect("json");
    // One person, with a contact at each of the three providers.
    assert_eq!(found["data"].as_array().expect("data").len(), 1, "{found}");
    assert_eq!(
        found["data"][0]["contacts"]
            .as_array()
            .expect("contacts")
            .len(),
        3,
        "{found}"
    );
    // The printed create makes a contact at WA.cr, found by its phone at once.
    let create = curls
        .iter()
        .find(|l| l.contains(" -d "))
        .expect("create curl");
    let parts: Vec<&str> = create.split('\'').collect();
    let (create_url, body) = (parts[7], parts[9]);
    let res = send(
        client
            .post(create_url)
            .bearer_auth(&key)
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", "demo-1")
            .body(body.to_string()),
    )
    .await;
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    let created: Value = send(
        client
            .get(format!("{url}/v1/contacts?phone=%2B919811122334"))
            .bearer_auth(&key),
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(created["data"][0]["provider"], "wacr", "{created}");
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
}

/// A WA.cr simulator of about `people` people and a connection to it (any org,
/// no API needed) in the test's database.
async fn wacr_connection(
    db: &TestDb,
    seed: u64,
    people: usize,
) -> (
    unicontacts_simulators::wacr::WacrSim,
    unicontacts::store::Store,
    unicontacts::store::connections::Connection,
) {
    use unicontacts::service::connections::{
        self, CreateConnectionRequest, CredentialsInput, SettingsInput,
    };
    let world = unicontacts_simulators::World::generate(seed, people);
    let sim = unicontacts_simulators::wacr::start(
        &world,
        "sim-key-0123456789",
        "127.0.0.1:0".parse().expect("addr"),
        None,
    )
    .await
    .expect("sim");
    let settings = crate::helpers::test_settings(db);
    let store = unicontacts::startup::open_store(&settings)
        .await
        .expect("store");
    let state = unicontacts::state::State::new(settings, store.clone());
    let org = unicontacts::service::api_keys::create(
        &store,
        unicontacts::service::api_keys::OrgRef::Name("acme"),
        "setup",
        &[Scope::Admin],
    )
    .await
    .expect("org");
    let connection = connections::create(
        &state,
        &org.org.id,
        CreateConnectionRequest {
            provider: unicontacts_adapters::ProviderKind::Wacr,
            name: "crm".into(),
            base_url: Some(sim.api_base()),
            credentials: CredentialsInput {
                api_key: Some("sim-key-0123456789".into()),
                ..CredentialsInput::default()
            },
            settings: SettingsInput {
                rate_limit_per_second: Some(1000),
                ..SettingsInput::default()
            },
        },
        true,
    )
    .await
    .expect("connection");
    (sim, store, connection)
}

/// One sync in this process (leases of `ttl`), waiting for a lease another holds to expire.
async fn sync_once(
    store: &unicontacts::store::Store,
    c: &unicontacts::store::connections::Connection,
    ttl: chrono::Duration,
) -> SyncRunRow {
    let runner = unicontacts::sync::Runner::new(
        store.clone(),
        unicontacts::providers::Providers::new(
            Duration::from_secs(5),
            0.2,
            unicontacts_adapters::quota::QuotaRegistry::default(),
        ),
        unicontacts::tasks::BackgroundTasks::on_current_runtime("sync runs"),
        ttl.to_std().expect("a positive ttl"),
    );
    runner.run_now(c, Trigger::Cli).await.expect("sync")
}

/// Waits (bounded) until a running run of the connection has written a page.
async fn wait_for_a_written_page(store: &unicontacts::store::Store, connection_id: &str) {
    for _ in 0..1500 {
        let id = connection_id.to_string();
        let pages: i64 = store
            .run(move |conn| {
                use diesel::prelude::*;
                use unicontacts::store::schema::sync_runs;
                Ok(sync_runs::table
                    .filter(sync_runs::connection_id.eq(id))
                    .filter(sync_runs::status.eq("running"))
                    .select(sync_runs::pages)
                    .first::<i64>(conn)
                    .optional()?
                    .unwrap_or(0))
            })
            .await
            .expect("poll");
        if pages >= 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no run of {connection_id} wrote a page");
}

/// Sends `signal` to the child and waits (bounded) for it to exit.
async fn signal_and_wait(mut child: std::process::Child, signal: &str) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args([signal, &pid])
        .status()
        .expect("kill")
        .success());
    tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || child.wait()),
    )
    .await
    .expect("the child exits")
    .expect("join")
    .expect("wait")
}

/// The connection's (remote id, deleted) pairs in the store.
async fn stored_contacts(
    store: &unicontacts::store::Store,
    connection_id: &str,
) -> Vec<(String, bool)> {
    let id = connection_id.to_string();
    store
        .run(move |conn| {
            use diesel::prelude::*;
            use unicontacts::store::schema::contacts;
            Ok(contacts::table
                .filter(contacts::connection_id.eq(id))
                .select((contacts::remote_id, contacts::remote_was_deleted))
                .load(conn)?)
        })
        .await
        .expect("stored")
}

/// The connection's runs, oldest first.
async fn runs_of(store: &unicontacts::store::Store, connection_id: &str) -> Vec<SyncRunRow> {
    let id = connection_id.to_string();
    store
        .run(move |conn| {
            use diesel::prelude::*;
            use unicontacts::store::schema::sync_runs;
            use SyncRunRow;
            Ok(sync_runs::table
                .filter(sync_runs::connection_id.eq(id))
                .order(sync_runs::id)
                .select(SyncRunRow::as_select())
                .load(conn)?)
        })
        .await
        .expect("runs")
}

/// A `unicontacts sync` killed with SIGKILL mid-run loses nothing: after its lease
/// expires, the next run completes and the store equals the provider.
async fn a_sync_killed_mid_run_loses_nothing(backend: Backend) {
    use unicontacts_simulators::Faults;

    let db = TestDb::new(&backend);
    let (sim, store, connection) = wacr_connection(&db, 51, 900).await;
    let ttl = chrono::Duration::seconds(2);
    // A complete first sync, then upstream deletions that a crash must not confuse.
    assert_eq!(
        sync_once(&store, &connection, ttl).await.status,
        RunStatus::Succeeded
    );
    sim.api().with_store(|s| {
        let ids: Vec<i64> = s
            .all()
            .skip(10)
            .take(7)
            .filter_map(|c| c["id"].as_i64())
            .collect();
        for id in ids {
            s.remove(id);
        }
        if let Some(c) = s.get_mut(3) {
            c["firstname"] = json!("Changed");
        }
    });
    sim.set_faults(Faults {
        latency_ms: 300,
        ..Faults::default()
    });

    let child = unicontacts(Some(&db))
        .args(["sync", "--connection", &connection.id])
        .env("UNICONTACTS_SYNC_LEASE_SECONDS", "2")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sync");
    // Kill it once it has written at least one page.
    wait_for_a_written_page(&store, &connection.id).await;
    signal_and_wait(child, "-KILL").await;

    sim.set_faults(Faults::default());
    let run = sync_once(&store, &connection, ttl).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);

    // The store equals the provider: every upstream contact live, the removed ones deleted.
    let upstream: std::collections::HashSet<String> = sim
        .api()
        .with_store(|s| s.all().map(|c| c["id"].to_string()).collect());
    let stored = stored_contacts(&store, &connection.id).await;
    let live: std::collections::HashSet<String> = stored
        .iter()
        .filter(|(_, d)| !d)
        .map(|(r, _)| r.clone())
        .collect();
    assert_eq!(live, upstream, "no missing and no wrongly deleted contact");
    assert_eq!(
        stored.iter().filter(|(_, d)| *d).count(),
        7,
        "the removed ones are marked deleted"
    );
    assert_eq!(stored.len(), upstream.len() + 7, "no duplicates");
    let dead: Vec<Option<String>> = runs_of(&store, &connection.id)
        .await
        .into_iter()
        .filter(|r| r.trigger_kind == Trigger::Cli && r.error.is_some())
        .map(|r| r.error)
        .collect();
    assert!(
        json!(dead).to_string().contains("abandoned"),
        "the killed run is recorded as abandoned: {dead:?}"
    );
}

/// Checks a run stopped by its process's shutdown: recorded as failed with the
/// reason, its counts those of the pages it wrote, its lease given back (a new
/// run starts at once although the lease would last five minutes), and a next run
/// completes the store.
async fn assert_interrupted_cleanly(
    sim: &unicontacts_simulators::wacr::WacrSim,
    store: &unicontacts::store::Store,
    connection: &unicontacts::store::connections::Connection,
) {
    let runs = runs_of(store, &connection.id).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    let stopped = &runs[0];
    assert_eq!(stopped.status, RunStatus::Failed);
    assert_eq!(
        stopped.error.as_deref(),
        Some(unicontacts::sync::INTERRUPTED)
    );
    assert!(stopped.finished_at.is_some());
    let upstream = sim.api().with_store(|s| s.len());
    let written = stored_contacts(store, &connection.id).await.len();
    assert!(
        written >= 100 && written < upstream,
        "stopped after a page: {written} of {upstream}"
    );
    assert_eq!(
        stopped.created, written as i64,
        "its counts are what it wrote"
    );
    let ttl = chrono::Duration::seconds(300);
    let next = tokio::time::timeout(Duration::from_secs(60), sync_once(store, connection, ttl))
        .await
        .expect("the lease was given back");
    assert_eq!(next.status, RunStatus::Succeeded, "{:?}", next.error);
    assert_eq!(next.created, (upstream - written) as i64);
    assert_eq!(stored_contacts(store, &connection.id).await.len(), upstream);
}

/// Runs `unicontacts sync` against a slow provider, sends `signal` once a page
/// is written, and checks the run was recorded and its lease released; how long
/// the command took to stop.
async fn stop_a_sync_with(backend: Backend, seed: u64, signal: &str) -> Duration {
    let db = TestDb::new(&backend);
    let (sim, store, connection) = wacr_connection(&db, seed, 900).await;
    sim.set_faults(unicontacts_simulators::Faults {
        latency_ms: 300,
        ..Default::default()
    });
    let child = unicontacts(Some(&db))
        .args(["sync", "--connection", &connection.id])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sync");
    wait_for_a_written_page(&store, &connection.id).await;
    let asked = std::time::Instant::now();
    let status = signal_and_wait(child, signal).await;
    let took = asked.elapsed();
    assert_eq!(status.code(), Some(1), "{status:?}");
    sim.set_faults(unicontacts_simulators::Faults::default());
    assert_interrupted_cleanly(&sim, &store, &connection).await;
    took
}

/// SIGINT (or SIGTERM) stops `unicontacts sync` after the page it is writing: the
/// run is recorded and its lease released, and the command exits non-zero.
async fn an_interrupted_sync_records_its_run_and_gives_back_the_lease(backend: Backend) {
    stop_a_sync_with(backend, 52, "-INT").await;
}

/// A closed terminal (SIGHUP) stops a sync as Ctrl-C does, within 2 s even
/// mid-page, and the run is recorded.
async fn a_hung_up_sync_records_its_run_within_two_seconds(backend: Backend) {
    let took = stop_a_sync_with(backend, 54, "-HUP").await;
    assert!(
        took < Duration::from_secs(2),
        "stopped {took:?} after SIGHUP"
    );
}

/// The lines a terminal shows for `raw`: carriage returns, line erases and
/// cursor moves up applied, colours dropped.
fn rendered(raw: &str) -> Vec<String> {
    let mut lines: Vec<Vec<char>> = vec![Vec::new()];
    let (mut row, mut col) = (0usize, 0usize);
    let mut chars = raw.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '\n' => {
                row += 1;
                col = 0;
                if lines.len() <= row {
                    lines.push(Vec::new());
                }
            }
            '\r' => col = 0,
            '\x1b' if chars.peek() == Some(&'[') => {
                chars.next();
                let mut params = String::new();
                let mut last = ' ';
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        last = c;
                        break;
                    }
                    params.push(c);
                }
                let n: usize = params.trim_start_matches('?').parse().unwrap_or(0);
                match last {
                    'K' if n == 2 => lines[row].clear(),
                    'K' => lines[row].truncate(col),
                    'A' => row = row.saturating_sub(n.max(1)),
                    'G' => col = n.saturating_sub(1),
                    'J' => lines.truncate(row + 1),
                    _ => {}
                }
            }
            c if c.is_control() => {}
            c => {
                let line = &mut lines[row];
                while line.len() < col {
                    line.push(' ');
                }
                if col < line.len() {
                    line[col] = c;
                } else {
                    line.push(c);
                }
                col += 1;
            }
        }
    }
    lines.into_iter().map(|l| l.into_iter().collect()).collect()
}

#[test]
fn the_renderer_applies_what_a_terminal_does() {
    let raw = "a bar\r\x1b[2Ka log line\nthe bar again\r\x1b[2Kdone\n";
    assert_eq!(rendered(raw), vec!["a log line", "done", ""]);
    assert_eq!(
        rendered("one\ntwo\x1b[1A\r\x1b[2Kuno\n"),
        vec!["uno", "two"]
    );
}

/// `sync` on a terminal (a pseudo-terminal from `script`): its log lines are
/// printed above the progress bar, never on the bar's line.
async fn sync_on_a_terminal_prints_its_logs_above_the_bar(backend: Backend) {
    let db = TestDb::new(&backend);
    let (sim, _store, connection) = wacr_connection(&db, 55, 450).await;
    sim.set_faults(unicontacts_simulators::Faults {
        latency_ms: 400,
        ..Default::default()
    });
    let url = match &db.url {
        unicontacts::config::DatabaseUrl::Sqlite(p) => p.display().to_string(),
        unicontacts::config::DatabaseUrl::Postgres(u) => u.clone(),
    };
    let mut cmd = Command::new("script");
    cmd.env_clear()
        .current_dir(std::env::temp_dir())
        .env("TERM", "xterm")
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("UNICONTACTS_DATABASE_URL", url)
        // A log line for every page written, while the bar turns.
        .env("UNICONTACTS_LOG_LEVEL", "info,unicontacts::sync=debug")
        .args([
            "-qefc",
            &format!("{BIN} sync --connection {}", connection.id),
            "/dev/null",
        ]);
    if let Some(key) = &db.secret_key {
        cmd.env("UNICONTACTS_SECRET_KEY", key);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("script"))
        .await
        .expect("join");
    let raw = text(&out.stdout);
    assert!(out.status.success(), "{}\n{raw}", out.status);
    let is_bar = |l: &str| l.contains('·') && l.contains(" requests");
    let lines = rendered(&raw);
    assert!(
        lines.iter().any(|l| is_bar(l)) || raw.contains("· "),
        "the bar was drawn:\n{raw:?}"
    );
    let logs: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("page written"))
        .collect();
    assert!(
        logs.len() >= 2,
        "log lines while it ran:\n{lines:#?}\n{raw:?}"
    );
    for line in &lines {
        let bar = is_bar(line);
        let log = line.contains("page written") || line.contains("DEBUG") || line.contains("INFO");
        assert!(!(bar && log), "a log line on the bar's line: {line:?}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.trim_start().starts_with("succeeded:")),
        "{lines:#?}"
    );
}

/// `serve` stopped with SIGTERM while a sync runs: the server exits cleanly, and
/// the run is recorded and its lease released.
async fn a_server_stopping_mid_sync_records_the_run_and_gives_back_the_lease(backend: Backend) {
    let db = TestDb::new(&backend);
    let (sim, store, connection) = wacr_connection(&db, 53, 900).await;
    sim.set_faults(unicontacts_simulators::Faults {
        latency_ms: 300,
        ..Default::default()
    });
    let key = unicontacts::service::api_keys::create(
        &store,
        unicontacts::service::api_keys::OrgRef::Id(&connection.org_id),
        "ops",
        &[Scope::Admin],
    )
    .await
    .expect("key")
    .key;
    let mut child = unicontacts(Some(&db))
        .arg("serve")
        .env("UNICONTACTS_BIND", "127.0.0.1:0")
        .env("UNICONTACTS_LOG_FORMAT", "json")
        .env("UNICONTACTS_SCHEDULER_TICK_MS", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let rx = stdout_lines(&mut child);
    let port = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the server starts");
        if let Some(port) = serde_json::from_str::<Value>(&line)
            .ok()
            .and_then(|v| v["fields"]["port"].as_u64())
        {
            break port;
        }
    };
    let res = send(
        reqwest::Client::new()
            .post(format!(
                "http://127.0.0.1:{port}/v1/admin/connections/{}/sync",
                connection.id
            ))
            .bearer_auth(&key)
            .json(&json!({})),
    )
    .await;
    assert_eq!(res.status(), 202);
    wait_for_a_written_page(&store, &connection.id).await;
    let status = signal_and_wait(child, "-TERM").await;
    assert!(status.success(), "clean exit: {status:?}");
    let logs: Vec<String> = rx.iter().collect();
    assert!(
        logs.iter().any(|l| l.contains("stopping sync runs")),
        "{logs:?}"
    );
    sim.set_faults(unicontacts_simulators::Faults::default());
    assert_interrupted_cleanly(&sim, &store, &connection).await;
}

async fn sync_exits_non_zero_when_a_run_ends_partial(backend: Backend) {
    let app = crate::helpers::spawn_app(backend).await;
    let sims = app.connect_sims(68, 30, serde_json::json!({})).await;
    let id = crate::helpers::Sims::id(&sims.gateway);
    // Off the runtime: the simulator answering the child runs on it.
    let sync = |app: &crate::helpers::TestApp| {
        let mut cmd = unicontacts(Some(&app.db));
        cmd.args(["sync", "--connection", &id]);
        tokio::task::spawn_blocking(move || run(&mut cmd))
    };
    let out = sync(&app).await.expect("sync");
    assert!(out.status.success(), "{}", text(&out.stderr));
    // A new Gateway contact whose detail answer cannot be read.
    sims.set.gateway.api().with_store(|s| {
        let mut d = s.all().next().expect("a contact").clone();
        d["identity"]["lid"] = serde_json::json!("990000000000077@lid");
        d["groups"] = serde_json::json!("not a list");
        s.insert(d);
    });
    let out = sync(&app).await.expect("sync");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("partial") && stdout.contains("990000000000077@lid"),
        "{stdout}"
    );
}

crate::db_tests!(
    sync_exits_non_zero_when_a_run_ends_partial,
    a_sync_killed_mid_run_loses_nothing,
    an_interrupted_sync_records_its_run_and_gives_back_the_lease,
    a_server_stopping_mid_sync_records_the_run_and_gives_back_the_lease,
    serve_demo_loads_three_providers_and_prints_a_working_key,
    keys_create_prints_the_key_alone_on_the_last_line_and_it_works,
    migrate_creates_the_schema,
    keys_are_listed_and_revoked_from_the_command_line,
    healthcheck_exits_zero_only_for_a_ready_server,
    a_hung_up_sync_records_its_run_within_two_seconds,
    sync_on_a_terminal_prints_its_logs_above_the_bar,
    connections_list_and_an_empty_sync_say_what_there_is,
    held_deletions_are_listed_applied_and_discarded_from_the_command_line,
    short_commands_exit_cleanly_while_the_pool_connects,
    serve_logs_json_keeps_secrets_out_and_stops_cleanly_on_sigterm,
);

#[tokio::test]
async fn sim_runs_the_three_simulators_until_stopped() {
    let mut child = unicontacts(None)
        .args([
            "sim",
            "--periskope-port",
            "0",
            "--wacr-port",
            "0",
            "--gateway-port",
            "0",
            "--size",
            "30",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sim");
    let rx = stdout_lines(&mut child);
    let mut bases = std::collections::HashMap::new();
    while bases.len() < 3 {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the simulators start");
        let words: Vec<&str> = line.split_whitespace().collect();
        if let [name @ ("periskope" | "wacr" | "gateway"), url, ..] = words.as_slice() {
            bases.insert(name.to_string(), url.to_string());
        }
    }
    let client = reqwest::Client::new();
    let key = "sim-key-0123456789";
    let res = send(
        client
            .get(format!("{}/contacts?offset=0&limit=5", bases["periskope"]))
            .bearer_auth(key)
            .header("x-phone", "918527184400"),
    )
    .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    assert!(!body["contacts"].as_array().expect("contacts").is_empty());
    let res = send(
        client
            .get(format!("{}/contacts/1?include=groups", bases["wacr"]))
            .bearer_auth("wrong"),
    )
    .await;
    assert_eq!(res.status(), 401);
    let res = send(
        client
            .get(format!(
                "{}/api/v1/sessions/sess_demo/contacts",
                bases["gateway"]
            ))
            .bearer_auth(key),
    )
    .await;
    assert_eq!(res.status(), 200);
    let _ = child.kill();
    let _ = child.wait();
}
