//! Provider credentials sealed at rest: unreadable in the database, plain rows
//! sealed at start-up, a wrong key refused at start-up in one line, and the key
//! rotated by `unicontacts secrets rotate`.

use std::io::Write;
use std::process::Stdio;

use serde_json::json;
use unicontacts::config::{DatabaseUrl, SecretKey, Settings};
use unicontacts::secrets::{self, Sealer};
use unicontacts::startup::open_store;
use unicontacts::store::connections::{self as queries, Connection};
use unicontacts::store::Store;

use crate::cli::{run, text, unicontacts};
use crate::helpers::{spawn_app, test_settings, Backend, Sims, TestDb, SIM_KEY};

/// Every row's stored credentials, as the database holds them.
async fn stored_credentials(store: &Store) -> Vec<(String, String)> {
    store
        .run(|conn| {
            use diesel::prelude::*;
            use unicontacts::store::schema::connections;
            Ok(connections::table
                .select((connections::id, connections::credentials))
                .load::<(String, String)>(conn)?)
        })
        .await
        .expect("rows")
}

async fn connection_with(store: &Store, id: &str) -> Connection {
    let sealer = store.sealer().expect("sealer");
    let id = id.to_string();
    store
        .run(move |conn| {
            use diesel::prelude::*;
            use unicontacts::store::schema::connections;
            let org: String = connections::table
                .filter(connections::id.eq(&id))
                .select(connections::org_id)
                .first(conn)?;
            queries::find_connection(conn, &sealer, &org, &id)
        })
        .await
        .expect("query")
        .expect("found")
}

/// The database's files (SQLite) or its table's raw bytes (PostgreSQL), as text.
async fn raw_database(db: &TestDb, store: &Store) -> String {
    match &db.url {
        DatabaseUrl::Sqlite(path) => ["", "-wal"]
            .iter()
            .map(|suffix| {
                let mut p = path.clone().into_os_string();
                p.push(suffix);
                String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned()
            })
            .collect(),
        DatabaseUrl::Postgres(_) => format!("{:?}", stored_credentials(store).await),
    }
}

async fn credentials_are_sealed_in_the_database_and_still_work(backend: Backend) {
    let app = spawn_app(backend).await;
    let sims = app.connect_sims(51, 5, json!({})).await;
    assert!(app.load(&sims.periskope).await > 0, "the credentials open");
    let rows = stored_credentials(&app.store).await;
    assert_eq!(rows.len(), 3);
    for (_, stored) in &rows {
        assert!(stored.starts_with("enc:v1:"), "{stored}");
    }
    let raw = raw_database(&app.db, &app.store).await;
    for secret in [SIM_KEY, "918527184400", crate::helpers::SIM_SESSION] {
        assert!(!raw.contains(secret), "`{secret}` readable in the database");
    }
    if let DatabaseUrl::Sqlite(path) = &app.db.url {
        let file = secrets::key_file_of(path);
        assert!(file.exists(), "the key file beside the database");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}

async fn rows_stored_plain_are_sealed_at_start_up(backend: Backend) {
    let app = spawn_app(backend).await;
    let sims = app.connect_sims(52, 5, json!({})).await;
    let id = Sims::id(&sims.wacr);
    let before = connection_with(&app.store, &id).await;
    // As a database from before sealing holds it.
    let plain = serde_json::to_string(&before.credentials).expect("json");
    let (rid, p) = (id.clone(), plain.clone());
    app.store
        .run(move |conn| {
            use diesel::prelude::*;
            use unicontacts::store::schema::connections;
            diesel::update(connections::table.filter(connections::id.eq(&rid)))
                .set(connections::credentials.eq(&p))
                .execute(conn)?;
            Ok(())
        })
        .await
        .expect("plain");
    let reopened = open_store(&test_settings(&app.db)).await.expect("open");
    let rows = stored_credentials(&reopened).await;
    assert!(
        rows.iter().all(|(_, c)| c.starts_with("enc:v1:")),
        "{rows:?}"
    );
    assert!(!format!("{rows:?}").contains(SIM_KEY));
    assert_eq!(
        connection_with(&reopened, &id).await.credentials,
        before.credentials
    );
}

/// A database with one connection, sealed with `key` (or the SQLite key file).
async fn database_with_a_connection(
    backend: &Backend,
    key: Option<&str>,
) -> (TestDb, Settings, String) {
    let db = TestDb::new(backend);
    let mut settings = test_settings(&db);
    if let Some(k) = key {
        settings.secret_key = Some(SecretKey(k.to_string()));
    }
    let store = open_store(&settings).await.expect("open");
    let app_key = unicontacts::service::api_keys::create(
        &store,
        unicontacts::service::api_keys::OrgRef::Name("acme"),
        "t",
        &[unicontacts::service::api_keys::Scope::Admin],
    )
    .await
    .expect("key");
    let now = unicontacts::ids::now();
    let c = Connection {
        id: unicontacts::ids::new_id("con"),
        org_id: app_key.org.id.clone(),
        provider: unicontacts_adapters::ProviderKind::Wacr,
        name: "W".into(),
        base_url: "http://127.0.0.1:9/api/v2".into(),
        credentials: unicontacts::store::connections::Credentials {
            api_key: SIM_KEY.into(),
            ..Default::default()
        },
        settings: Default::default(),
        created_at: now,
        updated_at: now,
    };
    let sealer = store.sealer().expect("sealer");
    let saved = c.clone();
    store
        .run(move |conn| queries::insert_connection(conn, &sealer, &saved))
        .await
        .expect("insert");
    (db, settings, c.id)
}

async fn a_wrong_key_stops_start_up_with_one_line(backend: Backend) {
    let k1 = Sealer::generate_key();
    let (db, _, _) = database_with_a_connection(&backend, Some(&k1)).await;
    let k2 = Sealer::generate_key();
    let out = run(unicontacts(Some(&db))
        .env("UNICONTACTS_SECRET_KEY", &k2)
        .arg("migrate"));
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    let k1_id = Sealer::from_base64(&k1).expect("key").key_id().to_string();
    assert!(
        lines[0].contains(&format!("sealed with key {k1_id}")),
        "{stderr}"
    );
    assert!(
        !stderr.contains(&k1) && !stderr.contains(&k2),
        "never the key itself"
    );
    // A key that is not one.
    let out = run(unicontacts(Some(&db))
        .env("UNICONTACTS_SECRET_KEY", "short")
        .arg("migrate"));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).to_lowercase().contains("secret_key"),
        "{}",
        text(&out.stderr)
    );
}

async fn the_key_rotates_in_one_step(backend: Backend) {
    let k1 = Sealer::generate_key();
    let (db, _, id) = database_with_a_connection(&backend, Some(&k1)).await;
    let k2 = Sealer::generate_key();
    // The new key from standard input, kept out of the process list.
    let mut child = unicontacts(Some(&db))
        .env("UNICONTACTS_SECRET_KEY", &k1)
        .args(["secrets", "rotate", "--new-key", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{k2}\n").as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("rotated the credentials of 1 connections"),
        "{}",
        text(&out.stdout)
    );
    // The old key no longer starts it; the new one does, and opens the row.
    let old = run(unicontacts(Some(&db))
        .env("UNICONTACTS_SECRET_KEY", &k1)
        .arg("migrate"));
    assert!(!old.status.success());
    let new = run(unicontacts(Some(&db))
        .env("UNICONTACTS_SECRET_KEY", &k2)
        .arg("migrate"));
    assert!(new.status.success(), "{}", text(&new.stderr));
    let mut settings = test_settings(&db);
    settings.secret_key = Some(SecretKey(k2.clone()));
    let store = open_store(&settings).await.expect("open");
    assert_eq!(
        connection_with(&store, &id).await.credentials.api_key,
        SIM_KEY
    );
    // The same key again is refused.
    let again = run(unicontacts(Some(&db))
        .env("UNICONTACTS_SECRET_KEY", &k2)
        .args(["secrets", "rotate", "--new-key", &k2]));
    assert!(!again.status.success());
}

/// SQLite without a key setting: the key file is made, rotated, and a rotation
/// stopped between its commit and the file swap is completed by the next start.
#[tokio::test]
async fn the_sqlite_key_file_rotates_and_recovers() {
    let (db, settings, id) = database_with_a_connection(&Backend::Sqlite, None).await;
    let DatabaseUrl::Sqlite(path) = &db.url else {
        unreachable!("sqlite")
    };
    let file = secrets::key_file_of(path);
    let k1 = secrets::read_key_file(&file)
        .expect("read")
        .expect("made at first start");
    let k2 = Sealer::generate_key();
    let out = run(unicontacts(Some(&db)).args(["secrets", "rotate", "--new-key", &k2]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let now = secrets::read_key_file(&file).expect("read").expect("key");
    assert_eq!(now.key_id(), Sealer::from_base64(&k2).expect("k2").key_id());
    assert_ne!(now.key_id(), k1.key_id());
    let store = open_store(&settings).await.expect("open");
    assert_eq!(
        connection_with(&store, &id).await.credentials.api_key,
        SIM_KEY
    );

    // A rotation that committed, then stopped before the swap.
    let k3 = Sealer::generate_key();
    let pending = secrets::pending_file_of(&file);
    secrets::write_key_file(&pending, &k3).expect("pending");
    let (old, new) = (now.clone(), Sealer::from_base64(&k3).expect("k3"));
    store
        .write(move |conn| queries::reseal_all(conn, &old, &new))
        .await
        .expect("reseal");
    drop(store);
    let store = open_store(&settings)
        .await
        .expect("the next start completes it");
    assert!(!pending.exists());
    let now = secrets::read_key_file(&file).expect("read").expect("key");
    assert_eq!(now.key_id(), Sealer::from_base64(&k3).expect("k3").key_id());
    assert_eq!(
        connection_with(&store, &id).await.credentials.api_key,
        SIM_KEY
    );

    // A lost key file is a clear refusal, not a new key.
    std::fs::remove_file(&file).expect("remove");
    let out = run(unicontacts(Some(&db)).arg("migrate"));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("is missing"),
        "{}",
        text(&out.stderr)
    );
    assert!(!file.exists(), "no key made over sealed rows");
}

crate::db_tests!(
    credentials_are_sealed_in_the_database_and_still_work,
    rows_stored_plain_are_sealed_at_start_up,
    a_wrong_key_stops_start_up_with_one_line,
    the_key_rotates_in_one_step,
);
