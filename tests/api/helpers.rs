//! `spawn_app()` and friends: every test gets its own database (a temp SQLite file,
//! or a fresh PostgreSQL database dropped afterwards), its own app on a random
//! port, and an admin key of its own org.

use std::net::TcpListener;

use diesel::connection::SimpleConnection;
use reqwest::{Client, RequestBuilder, Response};
use serde_json::Value;
use unicontacts::config::{DatabaseUrl, Settings};
use unicontacts::service::api_keys::Scope;
use unicontacts::service::api_keys::{self, OrgRef};
use unicontacts::startup::{open_store, Application};
use unicontacts::store::models::{RunStatus, Trigger};
use unicontacts::store::Store;

pub const POSTGRES_ENV: &str = "UNICONTACTS_TEST_POSTGRES_URL";

#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    /// The admin URL of a PostgreSQL server; each test creates its own database there.
    Postgres(String),
}

impl Backend {
    /// PostgreSQL when `UNICONTACTS_TEST_POSTGRES_URL` is set. On CI its absence is a failure,
    /// so the PostgreSQL half of the suite can never be skipped silently there.
    pub fn postgres() -> Option<Backend> {
        match std::env::var(POSTGRES_ENV) {
            Ok(url) if !url.is_empty() => Some(Backend::Postgres(url)),
            _ if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("{POSTGRES_ENV} must be set on CI")
            }
            _ => {
                eprintln!("{POSTGRES_ENV} not set: PostgreSQL half skipped");
                None
            }
        }
    }
}

/// Held by the tests that run several `unicontacts serve` processes and
/// measure them (quota use, timings): on two cores, two such tests at once
/// starve each other's processes, and so do the many in-process tests around
/// them: such a test holds this lock for writing (alone), every database test
/// for reading.
static PROCESSES: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

pub async fn processes_alone() -> tokio::sync::RwLockWriteGuard<'static, ()> {
    PROCESSES.write().await
}

pub async fn alongside_others() -> tokio::sync::RwLockReadGuard<'static, ()> {
    PROCESSES.read().await
}

/// Runs each named `async fn(Backend)` as two tests: `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! db_tests {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let _shared = $crate::helpers::alongside_others().await;
                    super::$name($crate::helpers::Backend::Sqlite).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    if let Some(backend) = $crate::helpers::Backend::postgres() {
                        let _shared = $crate::helpers::alongside_others().await;
                        super::$name(backend).await;
                    }
                }
            )+
        }
    };
}

/// A database of one test.
pub struct TestDb {
    pub url: DatabaseUrl,
    /// The key credentials are sealed with on PostgreSQL (SQLite uses its key file).
    pub secret_key: Option<String>,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

impl TestDb {
    /// A SQLite database at `path` (in a directory the caller owns; the chaos
    /// suite's small filesystem).
    #[allow(dead_code)]
    pub fn sqlite_at(path: std::path::PathBuf) -> TestDb {
        TestDb {
            url: DatabaseUrl::Sqlite(path),
            secret_key: None,
            _dir: None,
            postgres: None,
        }
    }

    pub fn new(backend: &Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let path = dir.path().join("test.db");
                TestDb {
                    url: DatabaseUrl::Sqlite(path),
                    secret_key: None,
                    _dir: Some(dir),
                    postgres: None,
                }
            }
            Backend::Postgres(admin_url) => {
                let name = format!("uc_test_{}", ulid::Ulid::new().to_string().to_lowercase());
                let mut admin = unicontacts::store::establish_postgres(admin_url)
                    .expect("connect to PostgreSQL");
                admin
                    .batch_execute(&format!("CREATE DATABASE \"{name}\""))
                    .expect("create test database");
                let mut url = url::Url::parse(admin_url).expect("PostgreSQL URL");
                url.set_path(&name);
                TestDb {
                    url: DatabaseUrl::Postgres(url.to_string()),
                    secret_key: Some(unicontacts::secrets::Sealer::generate_key()),
                    _dir: None,
                    postgres: Some((admin_url.clone(), name)),
                }
            }
        }
    }

    /// Takes the database away from under the app: the SQLite file is deleted, the
    /// PostgreSQL database dropped with its connections.
    pub fn cut(&self) {
        match (&self.url, &self.postgres) {
            (DatabaseUrl::Sqlite(path), _) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    let _ = std::fs::remove_file(p);
                }
            }
            (_, Some((admin_url, name))) => drop_database(admin_url, name),
            _ => {}
        }
    }
}

fn drop_database(admin_url: &str, name: &str) {
    if let Ok(mut admin) = unicontacts::store::establish_postgres(admin_url) {
        let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = &self.postgres {
            drop_database(admin_url, name);
        }
    }
}

pub struct TestApp {
    pub state: actix_web::web::Data<unicontacts::state::State>,
    pub address: String,
    pub client: Client,
    pub store: Store,
    /// An `admin` key of the test's own org.
    pub admin_key: String,
    pub org_id: String,
    /// Its background work and that of the apps beside it, stopped when the test
    /// ends (a server's notice listener is a thread of its own, which would
    /// otherwise outlive the test and keep knocking at its dropped database).
    /// Before `db`: fields drop in order, and the work stops before its database goes.
    stops: std::sync::Mutex<Vec<StopOnDrop>>,
    pub db: TestDb,
}

/// Stops an app's background work (notice listener, scheduler, delivery, runs)
/// when dropped.
pub struct StopOnDrop(pub unicontacts::tasks::CancellationToken);

impl StopOnDrop {
    pub fn of(app: &Application) -> Self {
        Self(app.state().runner.tasks().stop_token())
    }
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

pub fn test_settings(db: &TestDb) -> Settings {
    Settings {
        database_url: db.url.clone(),
        secret_key: db.secret_key.clone().map(unicontacts::config::SecretKey),
        bind: "127.0.0.1:0".parse().expect("addr"),
        workers: 1,
        database_pool_size: 4,
        database_timeout_seconds: 1,
        shutdown_timeout_seconds: 1,
        // Syncs start only when a test asks, unless it turns the scheduler on.
        scheduler_tick_ms: 0,
        ..Settings::default()
    }
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// `spawn_app` with settings changed by `tweak` first.
pub async fn spawn_app_with(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_on(TestDb::new(&backend), tweak).await
}

/// An app on this database, with settings changed by `tweak` first.
pub async fn spawn_app_on(db: TestDb, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = test_settings(&db);
    tweak(&mut settings);
    let store = open_store(&settings).await.expect("open store");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let app = Application::from_parts(settings, store.clone(), listener).expect("build app");
    let address = format!("http://127.0.0.1:{}", app.port());
    let state = app.state();
    let stop = StopOnDrop::of(&app);
    tokio::spawn(app.run_until_stopped());
    let mut test_app = TestApp {
        state,
        address,
        client: Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        store,
        admin_key: String::new(),
        org_id: String::new(),
        stops: std::sync::Mutex::new(vec![stop]),
        db,
    };
    let (org_id, key) = test_app.create_key("test-org", &[Scope::Admin]).await;
    test_app.admin_key = key;
    test_app.org_id = org_id;
    test_app
}

impl TestApp {
    /// A second app on this test's database, as another process would run it (its
    /// own pool, caches and scheduler), with settings changed by `tweak`; it runs
    /// until the test ends. Returns its address.
    pub async fn spawn_beside(&self, tweak: impl FnOnce(&mut Settings)) -> String {
        let mut settings = test_settings(&self.db);
        tweak(&mut settings);
        let store = open_store(&settings).await.expect("open store");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let app = Application::from_parts(settings, store, listener).expect("build app");
        let address = format!("http://127.0.0.1:{}", app.port());
        self.stops.lock().expect("stops").push(StopOnDrop::of(&app));
        tokio::spawn(app.run_until_stopped());
        address
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// A key with `scopes` for the org named `org` (created if new): `(org_id, key)`.
    pub async fn create_key(&self, org: &str, scopes: &[Scope]) -> (String, String) {
        let created = api_keys::create(&self.store, OrgRef::Name(org), "test", scopes)
            .await
            .expect("create key");
        (created.org.id, created.key)
    }

    pub fn get(&self, path: &str, key: &str) -> RequestBuilder {
        self.client.get(self.url(path)).bearer_auth(key)
    }

    pub fn post(&self, path: &str, key: &str, body: &Value) -> RequestBuilder {
        self.client.post(self.url(path)).bearer_auth(key).json(body)
    }

    pub fn patch(&self, path: &str, key: &str, body: &Value) -> RequestBuilder {
        self.client
            .patch(self.url(path))
            .bearer_auth(key)
            .json(body)
    }

    pub fn delete(&self, path: &str, key: &str) -> RequestBuilder {
        self.client.delete(self.url(path)).bearer_auth(key)
    }

    /// Creates a connection as the test's admin and returns its JSON.
    pub async fn create_connection(&self, body: Value) -> Value {
        let res = send(self.post("/v1/admin/connections", &self.admin_key, &body)).await;
        let status = res.status();
        let answer: Value = res.json().await.expect("json");
        assert_eq!(
            status, 201,
            "create connection {}: {answer}",
            body["provider"]
        );
        answer
    }
}

/// The providers of a person's contacts (a person as `/v1/people` answers it).
pub fn providers_of(person: &Value) -> std::collections::BTreeSet<String> {
    person["contacts"]
        .as_array()
        .expect("contacts")
        .iter()
        .map(|c| c["provider"].as_str().expect("provider").to_string())
        .collect()
}

/// Whole-org relinking finds nothing to change: the incremental linking done by
/// every page, deletion and live read left exactly the people it would compute.
pub async fn assert_relink_changes_nothing(app: &TestApp, when: &str) {
    let org = app.org_id.clone();
    let rules = unicontacts::change::link::LinkRules {
        max_per_identifier: app.store.max_per_identifier(),
    };
    let counts = app
        .store
        .write(move |conn| unicontacts::change::link::link_org(conn, &org, rules))
        .await
        .expect("relink");
    assert_eq!(
        (
            counts.contacts_moved,
            counts.people_created,
            counts.people_removed
        ),
        (0, 0, 0),
        "{when}: a whole-org relink changed something: {counts:?}"
    );
}

pub async fn send(req: RequestBuilder) -> Response {
    req.send().await.expect("request sent")
}

/// `GET {base}{path}` with `key` at another app's address (one beside the test's
/// own): asserts a 200 and answers the JSON.
pub async fn json_at(base: &str, path: &str, key: &str) -> Value {
    let res = send(
        reqwest::Client::new()
            .get(format!("{base}{path}"))
            .bearer_auth(key),
    )
    .await;
    assert_eq!(res.status(), 200, "{path}");
    res.json().await.expect("json")
}

/// Asserts the status and the error envelope's code; returns the envelope.
pub async fn assert_error(res: Response, status: u16, code: &str) -> Value {
    let request_id = res
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let replayed = res.headers().contains_key("idempotent-replayed");
    assert_eq!(res.status().as_u16(), status, "status");
    assert!(
        res.headers().contains_key("x-request-id"),
        "error responses carry x-request-id"
    );
    let body: Value = res.json().await.expect("error body is JSON");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    assert!(body["error"]["details"].is_object(), "{body}");
    // The body names the request as its header does (an idempotent replay
    // answers the first request's body, under its own header).
    if !replayed {
        assert_eq!(
            body["error"]["request_id"].as_str(),
            request_id.as_deref(),
            "{body}"
        );
    }
    body
}

pub fn periskope_connection(name: &str, api_key: &str) -> Value {
    serde_json::json!({
        "provider": "periskope",
        "name": name,
        "credentials": {"api_key": api_key, "phone": "+91 98745 32456"},
        "settings": {"default_country": "IN"}
    })
}

pub const SIM_KEY: &str = "sim-provider-key-0123456789";
pub const SIM_SESSION: &str = "sess_test";

/// The three simulators of one test and the connections pointing at them.
pub struct Sims {
    pub set: unicontacts_simulators::SimSet,
    pub periskope: Value,
    pub wacr: Value,
    pub gateway: Value,
}

impl Sims {
    pub fn id(connection: &Value) -> String {
        connection["id"]
            .as_str()
            .expect("connection id")
            .to_string()
    }
}

impl TestApp {
    /// Starts the simulators over `World::generate(seed, size)` and connects them,
    /// with `settings` merged into each connection's settings.
    pub async fn connect_sims(&self, seed: u64, size: usize, settings: Value) -> Sims {
        let set = unicontacts_simulators::start_all(
            seed,
            size,
            SIM_KEY,
            SIM_SESSION,
            unicontacts_simulators::SimAddrs::default(),
            None,
        )
        .await
        .expect("simulators");
        let mut base_settings = serde_json::json!({"rate_limit_per_second": 1000});
        if let (Some(b), Some(extra)) = (base_settings.as_object_mut(), settings.as_object()) {
            for (k, v) in extra {
                b.insert(k.clone(), v.clone());
            }
        }
        let periskope = self
            .create_connection(serde_json::json!({
                "provider": "periskope", "name": "P", "base_url": set.periskope.api_base(),
                "credentials": {"api_key": SIM_KEY, "phone": "918527184400"}, "settings": base_settings
            }))
            .await;
        let wacr = self
            .create_connection(serde_json::json!({
                "provider": "wacr", "name": "W", "base_url": set.wacr.api_base(),
                "credentials": {"api_key": SIM_KEY}, "settings": base_settings
            }))
            .await;
        let gateway = self
            .create_connection(serde_json::json!({
                "provider": "gateway", "name": "G", "base_url": set.gateway.api_base(),
                "credentials": {"api_key": SIM_KEY, "session": SIM_SESSION}, "settings": base_settings
            }))
            .await;
        Sims {
            set,
            periskope,
            wacr,
            gateway,
        }
    }

    /// The stored connection.
    pub async fn connection(&self, id: &str) -> unicontacts::store::connections::Connection {
        let sealer = self.store.sealer();
        let (org, id) = (self.org_id.clone(), id.to_string());
        self.store
            .run(move |conn| {
                let sealer = sealer?;
                unicontacts::store::connections::find_connection(conn, &sealer, &org, &id)
            })
            .await
            .expect("query")
            .expect("connection exists")
    }

    /// Loads every contact of the three simulators into the store.
    pub async fn load_all(&self, sims: &Sims) -> u64 {
        let mut total = 0;
        for c in [&sims.periskope, &sims.wacr, &sims.gateway] {
            total += self.load(c).await;
        }
        total
    }

    /// Loads every contact of one connection into the store (a sync run, waited for).
    pub async fn load(&self, connection: &Value) -> u64 {
        let connection = self.connection(&Sims::id(connection)).await;
        let run = unicontacts::service::sync_runs::run_now(&self.state, &connection, Trigger::Api)
            .await
            .expect("sync");
        assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
        (run.created + run.updated + run.unchanged) as u64
    }

    /// Every stored contact of the connection, page after page.
    pub async fn stored_contacts(&self, connection: &Value) -> Vec<Value> {
        let reader = self.reader_key().await;
        let mut out = Vec::new();
        let mut cursor = String::new();
        loop {
            let page: Value = send(self.get(
                &format!(
                    "/v1/contacts?connection_id={}&limit=100{cursor}",
                    Sims::id(connection)
                ),
                &reader,
            ))
            .await
            .json()
            .await
            .expect("json");
            out.extend(page["data"].as_array().expect("data").iter().cloned());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => return out,
            }
        }
    }

    /// A key of the test's org with only `contacts:read`.
    pub async fn reader_key(&self) -> String {
        self.create_key("test-org", &[Scope::ContactsRead]).await.1
    }
}

impl TestApp {
    /// Triggers a sync of the connection and waits for the run to end.
    pub async fn sync_now(&self, connection: &Value) -> Value {
        let app = self;
        let res = send(app.post(
            &format!("/v1/admin/connections/{}/sync", Sims::id(connection)),
            &app.admin_key,
            &serde_json::json!({}),
        ))
        .await;
        assert_eq!(res.status(), 202);
        let run: Value = res.json().await.expect("json");
        assert_eq!(run["status"], "running");
        app.wait_for(run["id"].as_str().expect("run id")).await
    }

    /// Polls the run until it is no longer running (bounded).
    pub async fn wait_for(&self, run_id: &str) -> Value {
        let app = self;
        for _ in 0..1500 {
            let run: Value =
                send(app.get(&format!("/v1/admin/sync-runs/{run_id}"), &app.admin_key))
                    .await
                    .json()
                    .await
                    .expect("json");
            if run["status"] != "running" {
                return run;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("run {run_id} did not finish");
    }
}

/// Takes the connection's lease as another process would (`holder`, `ttl`) and
/// records its run as running, without running it.
pub async fn take_lease(
    store: &Store,
    connection: &unicontacts::store::connections::Connection,
    trigger: Trigger,
    holder: &str,
    ttl: chrono::Duration,
) -> unicontacts::store::models::SyncRunRow {
    let (org, id, holder) = (
        connection.org_id.clone(),
        connection.id.clone(),
        holder.to_string(),
    );
    store
        .write(move |conn| {
            unicontacts::store::sync_runs::start_run(conn, &org, &id, trigger, &holder, ttl, None)
                .map_err(|e| match e {
                    unicontacts::store::sync_runs::LeaseError::Store(s) => s,
                    other => unicontacts::store::StoreError::Conflict(other.to_string()),
                })
        })
        .await
        .expect("lease")
}
