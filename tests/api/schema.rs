use std::collections::BTreeMap;

use unicontacts::store::describe_schema;

use crate::helpers::{test_settings, Backend, TestDb};

async fn schema_of(backend: &Backend) -> (TestDb, BTreeMap<String, Vec<String>>) {
    let db = TestDb::new(backend);
    let store = unicontacts::startup::open_store(&test_settings(&db))
        .await
        .expect("migrate");
    let schema = store.run(describe_schema).await.expect("describe");
    (db, schema)
}

#[tokio::test]
async fn both_backends_migrate_to_the_same_tables_and_columns() {
    let (_sqlite_db, sqlite) = schema_of(&Backend::Sqlite).await;
    for table in ["orgs", "api_keys", "connections"] {
        assert!(sqlite.contains_key(table), "{table} in {sqlite:?}");
    }
    let Some(pg) = Backend::postgres() else {
        return;
    };
    let (_pg_db, postgres) = schema_of(&pg).await;
    assert_eq!(sqlite, postgres);
}

#[tokio::test]
async fn migrating_twice_is_a_no_op() {
    for backend in [Some(Backend::Sqlite), Backend::postgres()]
        .into_iter()
        .flatten()
    {
        let db = TestDb::new(&backend);
        let settings = test_settings(&db);
        let store = unicontacts::startup::open_store(&settings)
            .await
            .expect("first");
        let again = store.run(|_| Ok(())).await;
        assert!(again.is_ok());
        let applied = tokio::task::spawn_blocking(move || store.migrate())
            .await
            .expect("join")
            .expect("second migrate");
        assert!(applied.is_empty(), "{applied:?}");
    }
}
