//! The disk under SQLite fills up, under four clients reading and writing, and
//! room comes back. The database lives on a small tmpfs the test mounts (the
//! machine's kind runs tests as root), filled with a file until the kernel
//! says no space is left.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use unicontacts::service::api_keys::Scope;

use crate::helpers::{spawn_app_on, Sims, TestDb};
use crate::load::{self, Load};

/// A tmpfs of `size` mounted on a directory of its own; unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().ok()?;
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then_some(SmallDisk { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazily: a file still open (the app's) does not keep it mounted.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Writes zeros to `path` until the filesystem has no room left.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).expect("filler");
    let chunk = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(libc_enospc()) => break,
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
    let _ = f.flush();
    written
}

/// `ENOSPC` (28 on Linux).
fn libc_enospc() -> i32 {
    28
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_under_sqlite_is_a_503_until_room_comes_back() {
    if !crate::enabled("a full disk under SQLite") {
        return;
    }
    // The server's errors (their causes) in this test's output, shown when it fails.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("error")
        .with_test_writer()
        .try_init();
    let disk = SmallDisk::mount("24m");
    if !crate::required("a tmpfs it can mount (root)", disk.is_some()) {
        return;
    }
    let disk = disk.expect("checked");
    let db_path: PathBuf = disk.path().join("unicontacts.db");
    let app = spawn_app_on(TestDb::sqlite_at(db_path), |s| {
        s.rate_limit_per_second = 100_000;
        s.rate_limit_burst = 100_000;
    })
    .await;
    let sims = app
        .connect_sims(
            621,
            60,
            json!({"default_status_id": 1, "default_source_id": 1, "default_kind": "lead"}),
        )
        .await;
    let wacr = Sims::id(&sims.wacr);
    assert_eq!(app.sync_now(&sims.wacr).await["status"], "succeeded");
    let (_, key) = app
        .create_key("test-org", &[Scope::ContactsRead, Scope::ContactsWrite])
        .await;
    let load = Load::start(&app.address, &key, &wacr, 4);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let filler = disk.path().join("filler");
    let full_at = Instant::now();
    let filled = tokio::task::spawn_blocking({
        let filler = filler.clone();
        move || fill(&filler)
    })
    .await
    .expect("fill");
    eprintln!("filled {} MiB", filled >> 20);
    // Full for a while: writes meet it (SQLite's writes need new pages).
    tokio::time::sleep(Duration::from_secs(4)).await;
    std::fs::remove_file(&filler).expect("room again");
    let room_at = Instant::now();
    // A write succeeds again within 5 s.
    let http = reqwest::Client::new();
    let mut n = 0;
    let recovered = loop {
        n += 1;
        let res = http
            .post(format!("{}/v1/connections/{wacr}/contacts", app.address))
            .bearer_auth(&key)
            .json(&json!({"first_name": "After", "last_name": n.to_string(), "phone": format!("+91 97{n:08}")}))
            .send()
            .await
            .expect("create");
        if res.status() == 201 {
            break room_at.elapsed();
        }
        assert!(
            room_at.elapsed() < Duration::from_secs(5),
            "writes still refused 5 s after room came back: {}",
            res.status()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("writing again {recovered:?} after room came back");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let outcomes = load.stop().await;
    let counts = load::no_server_errors(&outcomes);
    let refused = counts
        .iter()
        .filter(|((what, status), _)| what == "create" && *status == 503)
        .map(|(_, n)| *n)
        .sum::<usize>();
    assert!(refused > 0, "the full disk was met: {counts:?}");
    let read_while_full = outcomes
        .iter()
        .filter(|o| o.what != "create" && o.at > full_at && o.at < room_at && o.status == 200)
        .count();
    assert!(
        read_while_full > 0,
        "reads go on while the disk is full: {counts:?}"
    );
    load::every_created_contact_is_stored(&app.address, &key, &outcomes).await;
    let run = app.sync_now(&sims.wacr).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let at_provider: std::collections::HashSet<String> = sims.set.wacr.api().with_store(|s| {
        s.all()
            .filter_map(|c| c["id"].as_i64().map(|id| id.to_string()))
            .collect()
    });
    assert_eq!(
        load::stored_remote_ids(&app.address, &key, &wacr).await,
        at_provider
    );
    load::no_event_twice(&app.address, &key).await;
    drop(app);
}
