//! The commands of the `unicontacts` binary, as library functions: `main.rs` only
//! parses the command line and calls one of these.

use std::io::IsTerminal;

use crate::config::Settings;
use crate::error::{ApiError, ErrorCode};
use crate::service::api_keys::{self, OrgRef, Scope};
use crate::service::sync_runs::{self, RunStatus, SyncRunView, Trigger};
use crate::startup::{open_store, open_store_migrated, Application};
use crate::state::State;
use crate::sync::BeginError;
use crate::tasks::CancellationToken;

/// Why a command failed: what it says, and the error that caused it with that
/// error's own causes (the chain `main` prints, `what: cause: its cause`).
#[derive(Debug)]
pub struct CliError {
    message: Option<String>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl CliError {
    /// The error itself, its causes kept.
    pub fn of(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            message: None,
            source: Some(Box::new(e)),
        }
    }

    /// `message`, caused by `e`.
    pub fn caused(
        message: impl Into<String>,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: Some(message.into()),
            source: Some(Box::new(e)),
        }
    }

    /// The message and each cause in turn, `: `-joined; a cause whose words the
    /// text already holds (an error that prints its source) is not repeated.
    pub fn chain(&self) -> String {
        let mut out = self.message.clone().unwrap_or_default();
        let mut next: Option<&(dyn std::error::Error + 'static)> = match &self.source {
            Some(e) => Some(e.as_ref()),
            None => None,
        };
        while let Some(e) = next {
            let text = e.to_string();
            if !text.is_empty() && !out.contains(&text) {
                if !out.is_empty() {
                    out.push_str(": ");
                }
                out.push_str(&text);
            }
            next = e.source();
        }
        out
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.message, &self.source) {
            (Some(m), _) => f.write_str(m),
            (None, Some(e)) => write!(f, "{e}"),
            (None, None) => Ok(()),
        }
    }
}

impl std::error::Error for CliError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match (&self.message, &self.source) {
            // Without a message of its own, the error is its source: its cause is next.
            (None, Some(e)) => e.source(),
            (_, Some(e)) => Some(e.as_ref()),
            _ => None,
        }
    }
}

impl From<String> for CliError {
    fn from(message: String) -> Self {
        Self {
            message: Some(message),
            source: None,
        }
    }
}

impl From<&str> for CliError {
    fn from(message: &str) -> Self {
        message.to_string().into()
    }
}

/// `.context("what was being done")` on a result whose error becomes the cause.
pub trait Context<T> {
    fn context(self, what: &str) -> Result<T, CliError>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> Context<T> for Result<T, E> {
    fn context(self, what: &str) -> Result<T, CliError> {
        self.map_err(|e| CliError::caused(what, e))
    }
}

/// A service error in a command's words: a validation failure names each field
/// as the command's flag (`--org must be 1 to 100 characters`).
fn describe(e: ApiError) -> CliError {
    if e.code == ErrorCode::ValidationFailed {
        if let Some(fields) = e.details.get("fields").and_then(|f| f.as_object()) {
            let lines: Vec<String> = fields
                .iter()
                .flat_map(|(field, messages)| {
                    messages.as_array().into_iter().flatten().map(move |m| {
                        let flag = field.replace('_', "-");
                        format!("--{flag} {}", m.as_str().unwrap_or_default())
                    })
                })
                .collect();
            if !lines.is_empty() {
                return lines.join("; ").into();
            }
        }
    }
    CliError::of(e)
}

/// `serve [--demo]`: the HTTP API until SIGINT/SIGTERM.
pub async fn serve(settings: Settings, demo: bool) -> Result<(), CliError> {
    let backend = settings.database_url.backend_name();
    #[cfg(feature = "demo")]
    let sims = if demo {
        Some(
            unicontacts_simulators::start_all(
                42,
                200,
                crate::demo::SIM_KEY,
                crate::demo::SIM_SESSION,
                unicontacts_simulators::SimAddrs::default(),
                None,
            )
            .await
            .context("cannot start the demo simulators")?,
        )
    } else {
        None
    };
    #[cfg(not(feature = "demo"))]
    let _ = demo;
    let mut settings = settings;
    if demo {
        // The demo's receivers are on this machine (see the README's webhook example).
        settings.webhook_allow_http = true;
        settings.webhook_allow_private_targets = true;
    }
    let app = Application::build(settings.clone())
        .await
        .map_err(CliError::of)?;
    #[cfg(feature = "demo")]
    if let Some(sims) = &sims {
        let info = crate::demo::setup(&app.state(), sims).await?;
        print_demo(
            &info,
            sims,
            app.port(),
            settings.log_format == crate::config::LogFormat::Json,
        );
    }
    tracing::info!(
        port = app.port(),
        bind = %settings.bind,
        backend,
        "unicontacts listening; docs at /docs"
    );
    app.run_until_stopped().await.map_err(CliError::of)?;
    tracing::info!("shut down cleanly");
    Ok(())
}

/// `migrate`: applies pending migrations, prints each, and exits.
pub async fn migrate(settings: Settings) -> Result<(), CliError> {
    let (_, applied) = open_store_migrated(&settings).await.map_err(CliError::of)?;
    let backend = settings.database_url.backend_name();
    for version in &applied {
        println!("applied {version}");
    }
    match applied.len() {
        0 => println!("migrations are up to date ({backend}); nothing to apply"),
        n => println!("applied {n} migration(s); up to date ({backend})"),
    }
    Ok(())
}

/// `keys create`: a key for the org (created if new), printed once, alone on the last line.
pub async fn create_key(
    settings: Settings,
    org: &str,
    scopes: &[Scope],
    name: &str,
    expires_at: Option<&str>,
) -> Result<(), CliError> {
    let store = open_store(&settings).await.map_err(CliError::of)?;
    let created = api_keys::create_expiring(&store, OrgRef::Name(org), name, scopes, expires_at)
        .await
        .map_err(describe)?;
    println!("org: {} ({})", created.org.name, created.org.id);
    println!(
        "key: {} prefix {} scopes {}",
        created.row.id, created.row.prefix, created.row.scopes
    );
    println!("the key below is shown once; store it now");
    println!("{}", created.key);
    Ok(())
}

/// Prints rows as columns padded to their widest cell, the first row a header.
fn print_table(rows: &[Vec<String>]) {
    let widths: Vec<usize> = (0..rows.first().map_or(0, Vec::len))
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
}

fn or_dash(t: Option<chrono::NaiveDateTime>) -> String {
    t.map(crate::ids::rfc3339).unwrap_or_else(|| "-".into())
}

/// `keys list [--org NAME] [--all]`: the keys of one org or of every org
/// (revoked ones with `--all`); never the keys themselves.
pub async fn list_keys(settings: Settings, org: Option<&str>, all: bool) -> Result<(), CliError> {
    let store = open_store(&settings).await.map_err(CliError::of)?;
    let org = org.map(str::to_string);
    let keys = store
        .run(move |conn| crate::store::api_keys::list_every_key(conn, org.as_deref(), all))
        .await
        .map_err(CliError::of)?;
    if keys.is_empty() {
        println!("no API keys");
        return Ok(());
    }
    let mut rows = vec![[
        "ID",
        "ORG",
        "NAME",
        "PREFIX",
        "SCOPES",
        "CREATED",
        "LAST USED",
        "EXPIRES",
        "REVOKED",
    ]
    .map(String::from)
    .to_vec()];
    for (k, org) in keys {
        rows.push(vec![
            k.id.clone(),
            org,
            k.name.clone(),
            k.prefix.clone(),
            k.scopes.clone(),
            crate::ids::rfc3339(k.created_at),
            or_dash(k.last_used_at),
            or_dash(k.expires_at),
            or_dash(k.revoked_at),
        ]);
    }
    print_table(&rows);
    Ok(())
}

/// `keys revoke ID`: revokes the key, whatever its org (the operator's way out;
/// the API keeps an org's last admin key). Running servers forget it at once.
pub async fn revoke_key(settings: Settings, id: &str) -> Result<(), CliError> {
    let store = open_store(&settings).await.map_err(CliError::of)?;
    let lookup = id.to_string();
    let found = store
        .run(move |conn| crate::store::api_keys::find_key(conn, &lookup))
        .await
        .map_err(CliError::of)?;
    let Some((key, org)) = found else {
        return Err(format!("no API key {id}").into());
    };
    let state = State::new(settings, store);
    api_keys::revoke(&state, &key.org_id, &key.id, false)
        .await
        .map_err(describe)?;
    println!("revoked {} ({}, org {org})", key.id, key.prefix);
    let org_id = key.org_id.clone();
    let admins = state
        .store
        .run(move |conn| crate::store::api_keys::count_active_admin_keys(conn, &org_id))
        .await
        .map_err(CliError::of)?;
    if admins == 0 {
        println!(
            "org {org} has no active admin key left; `unicontacts keys create --org {org} --scopes admin` makes one"
        );
    }
    Ok(())
}

/// `relink [--org NAME]`: every live contact of each org (or of one) relinked
/// by the rules in force; prints what moved.
pub async fn relink(settings: Settings, org: Option<&str>) -> Result<(), CliError> {
    let store = open_store(&settings).await.map_err(CliError::of)?;
    let done = crate::service::people::relink(&store, org)
        .await
        .map_err(describe)?;
    if done.is_empty() {
        println!("no orgs");
    }
    for (org, counts) in done {
        println!(
            "{} ({}): {} people; {} contacts moved, {} people made, {} removed",
            org.name,
            org.id,
            counts.people,
            counts.contacts_moved,
            counts.people_created,
            counts.people_removed
        );
    }
    Ok(())
}

/// `connections list`: every org's connections with their health.
pub async fn list_connections(settings: Settings) -> Result<(), CliError> {
    let store = open_store(&settings).await.map_err(CliError::of)?;
    let state = State::new(settings, store);
    let all = sync_runs::connections_to_sync(&state, None)
        .await
        .map_err(describe)?;
    if all.is_empty() {
        println!("no connections");
        return Ok(());
    }
    let details = crate::service::connections::details(&state, all)
        .await
        .map_err(describe)?;
    let mut rows = vec![[
        "ID",
        "ORG",
        "PROVIDER",
        "NAME",
        "HEALTH",
        "SYNC",
        "LAST SYNC",
        "LAST ERROR",
    ]
    .map(String::from)
    .to_vec()];
    for d in details {
        let c = &d.connection;
        let health = serde_json::to_value(d.health)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        rows.push(vec![
            c.id.clone(),
            c.org_id.clone(),
            c.provider.to_string(),
            c.name.clone(),
            health,
            if d.status.sync_paused { "paused" } else { "on" }.to_string(),
            d.last_sync
                .as_ref()
                .map(|r| format!("{} {}", r.status, or_dash(r.finished_at)))
                .unwrap_or_else(|| "-".into()),
            d.status
                .last_error_message
                .clone()
                .filter(|_| d.status.error_count > 0)
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    print_table(&rows);
    Ok(())
}

/// `sync-runs held`: every org's runs whose deletions are held for review.
pub async fn list_held(settings: Settings) -> Result<(), CliError> {
    let store = open_store(&settings).await.map_err(CliError::of)?;
    let state = State::new(settings, store);
    let held = sync_runs::all_held(&state).await.map_err(describe)?;
    if held.is_empty() {
        println!("no deletions held");
        return Ok(());
    }
    let mut rows = vec![["RUN", "ORG", "CONNECTION", "HELD", "SINCE", "WHY"]
        .map(String::from)
        .to_vec()];
    for h in held {
        rows.push(vec![
            h.run_id,
            h.org_id,
            h.connection_id,
            h.held.to_string(),
            or_dash(Some(h.since)),
            h.reason,
        ]);
    }
    print_table(&rows);
    Ok(())
}

/// `sync-runs apply ID` / `sync-runs discard ID`: ends a run's hold (any org).
pub async fn end_hold(settings: Settings, run_id: &str, apply: bool) -> Result<(), CliError> {
    let store = open_store(&settings).await.map_err(CliError::of)?;
    let state = State::new(settings, store);
    let org = sync_runs::org_of_run(&state, run_id)
        .await
        .map_err(describe)?;
    let outcome = if apply {
        sync_runs::apply_held(&state, &org, run_id, "cli").await
    } else {
        sync_runs::discard_held(&state, &org, run_id, "cli").await
    }
    .map_err(describe)?;
    if apply {
        println!(
            "applied the deletions held by {}: {} contact(s) marked deleted",
            outcome.run_id, outcome.count
        );
    } else {
        println!(
            "discarded the deletions held by {}: {} contact(s) kept",
            outcome.run_id, outcome.count
        );
    }
    Ok(())
}

/// `healthcheck [--url URL]`: `GET /readyz` of the server (the `bind` setting's
/// address unless given, 127.0.0.1 for an unspecified one); an error unless 200.
pub async fn healthcheck(settings: Settings, url: Option<String>) -> Result<(), CliError> {
    let base = url.unwrap_or_else(|| {
        let mut addr = settings.bind;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{addr}")
    });
    let target = format!("{}/readyz", base.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .build()
        .map_err(CliError::of)?;
    match client.get(&target).send().await {
        Ok(res) if res.status() == reqwest::StatusCode::OK => {
            println!("ready ({target})");
            Ok(())
        }
        Ok(res) => Err(format!("not ready: {target} answered {}", res.status()).into()),
        Err(e) => Err(CliError::caused(format!("not ready: {target}"), e)),
    }
}

/// `secrets rotate --new-key KEY`: every connection's credentials re-sealed with
/// the new key in one transaction. On SQLite without `secret_key` the key file
/// then holds the new key (written beside it first, put in its place after the
/// commit; a start after a crash between the two completes the swap).
pub async fn rotate_secret(settings: Settings, new_key: &str) -> Result<(), CliError> {
    use crate::config::DatabaseUrl;
    use crate::secrets::{self, Sealer};
    let new_key = if new_key == "-" {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("cannot read the new key from standard input")?;
        line.trim().to_string()
    } else {
        new_key.trim().to_string()
    };
    let new = Sealer::from_base64(&new_key).context("--new-key")?;
    let store = open_store(&settings).await.map_err(CliError::of)?;
    let old = store.sealer().map_err(CliError::of)?;
    if old.key_id() == new.key_id() {
        return Err(format!("--new-key is the key in use ({})", new.key_id()).into());
    }
    let key_file = match (&settings.secret_key, &settings.database_url) {
        (None, DatabaseUrl::Sqlite(path)) => Some(secrets::key_file_of(path)),
        _ => None,
    };
    let pending = key_file.as_deref().map(secrets::pending_file_of);
    if let Some(p) = &pending {
        secrets::write_key_file(p, &new_key).map_err(CliError::of)?;
    }
    let resealer = new.clone();
    let resealed = store
        .write(move |conn| crate::store::connections::reseal_all(conn, &old, &resealer))
        .await;
    let count = match resealed {
        Ok(n) => n,
        Err(e) => {
            if let Some(p) = &pending {
                let _ = std::fs::remove_file(p);
            }
            return Err(CliError::caused("nothing rotated", e));
        }
    };
    match (&key_file, &pending) {
        (Some(file), Some(p)) => {
            std::fs::rename(p, file).map_err(|e| {
                CliError::caused(
                    format!(
                        "the credentials are sealed with the new key (the next start completes it), \
                         but {} could not replace {}",
                        p.display(),
                        file.display()
                    ),
                    e,
                )
            })?;
            println!(
                "rotated the credentials of {count} connections to key {}; {} holds it",
                new.key_id(),
                file.display()
            );
        }
        _ => println!(
            "rotated the credentials of {count} connections to key {}; set UNICONTACTS_SECRET_KEY to the new key and restart every replica",
            new.key_id()
        ),
    }
    Ok(())
}

/// The simulators' options for `sim`.
#[cfg(feature = "demo")]
pub struct SimOptions {
    pub periskope_port: u16,
    pub wacr_port: u16,
    pub gateway_port: u16,
    pub seed: u64,
    pub size: usize,
    pub api_key: String,
    pub session: String,
    pub rate_limit: Option<u32>,
    pub rate_window: u64,
}

#[cfg(feature = "demo")]
pub async fn run_sims(args: SimOptions) -> Result<(), CliError> {
    use unicontacts_simulators::{start_all, RateLimit, SimAddrs};
    let at = |port: u16| std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let rate = args.rate_limit.map(|limit| RateLimit {
        limit,
        window_secs: args.rate_window.max(1),
    });
    let sims = start_all(
        args.seed,
        args.size,
        &args.api_key,
        &args.session,
        SimAddrs {
            periskope: at(args.periskope_port),
            wacr: at(args.wacr_port),
            gateway: at(args.gateway_port),
        },
        rate,
    )
    .await
    .context("cannot start the simulators")?;
    let key = &args.api_key;
    println!(
        "simulators up (seed {}, {} people); every one accepts `Authorization: Bearer {key}`",
        args.seed, args.size
    );
    println!(
        "  periskope  {}   (also send x-phone: 918527184400)",
        sims.periskope.api_base()
    );
    println!("  wacr       {}", sims.wacr.api_base());
    println!(
        "  gateway    {}   (session {})",
        sims.gateway.api_base(),
        args.session
    );
    println!("try:");
    println!("  curl -H 'Authorization: Bearer {key}' -H 'x-phone: 918527184400' '{}/contacts?offset=0&limit=5'", sims.periskope.api_base());
    println!("  curl -H 'Authorization: Bearer {key}' '{}/contacts?page=1&per_page=5&include=groups,source,status'", sims.wacr.api_base());
    println!(
        "  curl -H 'Authorization: Bearer {key}' '{}/api/v1/sessions/{}/contacts?limit=5'",
        sims.gateway.api_base(),
        args.session
    );
    println!(
        "faults at run time: curl -X PUT {}/__sim/faults -d '{{\"error_rate\": 0.2}}'",
        sims.periskope.base_url()
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}

#[cfg(feature = "demo")]
fn print_demo(
    info: &crate::demo::DemoInfo,
    sims: &unicontacts_simulators::SimSet,
    port: u16,
    json_logs: bool,
) {
    let mut lines: Vec<String> = Vec::new();
    let base = format!("http://127.0.0.1:{port}");
    let key = &info.admin_key;
    lines.push(String::new());
    lines.push(
        "unicontacts demo: three simulated providers on loopback, their contacts loaded"
            .to_string(),
    );
    for (c, counts) in &info.connections {
        lines.push(format!(
            "  {:<10} {}  {} contacts ({} new)",
            c.provider.as_str(),
            c.id,
            counts.created + counts.updated + counts.unchanged,
            counts.created
        ));
    }
    lines.push(
        "admin key of org `demo` (scopes admin, contacts:read, contacts:write), shown once:"
            .to_string(),
    );
    lines.push(key.to_string());
    lines.push("try:".to_string());
    lines.push(format!(
        "  curl -s -H 'Authorization: Bearer {key}' '{base}/v1/contacts?limit=3'"
    ));
    if let Some(p) = sims
        .world
        .people
        .iter()
        .find(|p| p.provider_count() == 3 && p.phone.is_some())
    {
        let phone = p.e164().unwrap_or_default().replace('+', "%2B");
        lines.push(format!("  curl -s -H 'Authorization: Bearer {key}' '{base}/v1/people?phone={phone}'   # one person, three providers"));
    }
    if let Some((gateway, _)) = info
        .connections
        .iter()
        .find(|(c, _)| c.provider == unicontacts_adapters::ProviderKind::Gateway)
    {
        if let Some(p) = sims.world.gateway_people().next() {
            lines.push(format!(
                "  curl -s -i -H 'Authorization: Bearer {key}' '{base}/v1/connections/{}/contacts/{}'   # live read, cached",
                gateway.id,
                p.lid.trim_end_matches("@lid")
            ));
        }
    }
    if let Some((wacr, _)) = info
        .connections
        .iter()
        .find(|(c, _)| c.provider == unicontacts_adapters::ProviderKind::Wacr)
    {
        lines.push(format!(
            "  curl -s -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' -H 'Idempotency-Key: demo-1' '{base}/v1/connections/{}/contacts' -d '{{\"first_name\": \"Asha\", \"last_name\": \"Rao\", \"phone\": \"+91 98111 22334\"}}'   # create at WA.cr",
            wacr.id
        ));
    }
    lines.push(format!(
        "simulators (API key {}, Gateway session {}): Periskope {}, WA.cr {}, Gateway {}",
        sims.api_key,
        sims.session,
        sims.periskope.api_base(),
        sims.wacr.api_base(),
        sims.gateway.api_base()
    ));
    lines.push(format!("API docs: {base}/docs/"));
    // With JSON logs on stdout, the banner goes to stderr: stdout stays JSON lines.
    for line in lines {
        if json_logs {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
}

/// A token cancelled by the first SIGINT or SIGTERM: the run in progress stops
/// after the page it is writing and is recorded (its lease released). A second
/// signal exits at once.
fn stop_on_signal() -> CancellationToken {
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move {
        #[cfg(unix)]
        let (mut term, mut hup) = {
            use tokio::signal::unix::{signal, SignalKind};
            // SIGHUP: the terminal went away; the run is recorded all the same.
            match (
                signal(SignalKind::terminate()),
                signal(SignalKind::hangup()),
            ) {
                (Ok(t), Ok(h)) => (t, h),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!(error = %e, "cannot watch SIGTERM and SIGHUP");
                    return;
                }
            }
        };
        for n in 0.. {
            #[cfg(unix)]
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
                _ = hup.recv() => {}
            }
            #[cfg(not(unix))]
            if tokio::signal::ctrl_c().await.is_err() {
                return;
            }
            if n > 0 {
                std::process::exit(130);
            }
            crate::telemetry::eprint_above_bar(
                "stopping after the page being written (again to quit at once)",
            );
            token.cancel();
        }
    });
    stop
}

/// `sync [--connection ID]`: syncs one connection (any org) or all of them now,
/// with progress; an error when a run does not succeed.
pub async fn sync(settings: Settings, only: Option<String>) -> Result<(), CliError> {
    let store = open_store(&settings).await.map_err(CliError::of)?;
    let state = State::new(settings, store);
    let connections = sync_runs::connections_to_sync(&state, only.clone())
        .await
        .map_err(describe)?;
    if connections.is_empty() {
        return match only {
            Some(id) => Err(format!("no connection {id}").into()),
            None => {
                println!("no connections to sync");
                Ok(())
            }
        };
    }
    let terminal = std::io::stdout().is_terminal();
    let stop = stop_on_signal();
    let mut failed = 0;
    for c in connections {
        if stop.is_cancelled() {
            break;
        }
        let begun = match state.runner.begin(&c, Trigger::Cli, None).await {
            Ok(b) => b,
            Err(BeginError::Busy(_) | BeginError::NotDue) => {
                println!("{} ({}): a sync is already running; skipped", c.name, c.id);
                failed += 1;
                continue;
            }
            Err(BeginError::Unusable(run)) => {
                println!(
                    "{} ({}): failed: {}",
                    c.name,
                    c.id,
                    run.error.unwrap_or_default()
                );
                failed += 1;
                continue;
            }
            Err(e) => return Err(CliError::of(e)),
        };
        println!(
            "{} ({}, {}): run {}",
            c.name, c.provider, c.id, begun.run.id
        );
        let bar = terminal.then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} {prefix}") {
                bar.set_style(style);
            }
            bar.set_message("page 1");
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            // Log lines go above it.
            crate::telemetry::show_bar(Some(bar.clone()));
            bar
        });
        // Within a page: the calls made so far (a detail per record at the Gateway).
        let ticker = bar.clone().map(|bar| {
            let adapter = begun.adapter().clone();
            let base = adapter.stats().requests;
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_millis(200));
                loop {
                    tick.tick().await;
                    let made = adapter.stats().requests.saturating_sub(base);
                    bar.set_prefix(format!("· {made} requests"));
                }
            })
        });
        let show = |line: String| match &bar {
            Some(b) => b.set_message(line),
            None => println!("  {line}"),
        };
        let run = state
            .runner
            .run(begun, stop.clone(), |r| show(sync_runs::progress_line(r)))
            .await;
        let done = SyncRunView::from(&run);
        if let Some(t) = ticker {
            t.abort();
        }
        if let Some(b) = &bar {
            crate::telemetry::show_bar(None);
            b.finish_and_clear();
        }
        println!(
            "  {}: {} created, {} updated, {} unchanged, {} deleted, {} pages, {} upstream requests, {} x 429{}",
            done.status,
            done.counts.created,
            done.counts.updated,
            done.counts.unchanged,
            done.counts.deleted,
            done.pages,
            done.upstream_requests,
            done.throttled_429,
            done.error.as_deref().map(|e| format!("; {e}")).unwrap_or_default()
        );
        // A partial run left records behind: worth a non-zero exit for a scheduler.
        if done.status != RunStatus::Succeeded {
            failed += 1;
        }
    }
    if stop.is_cancelled() {
        return Err("interrupted".into());
    }
    if failed > 0 {
        return Err(format!("{failed} run(s) did not succeed").into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commands_error_keeps_its_cause_chain() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let read: Result<(), _> = Err(io);
        let e = read.context("cannot read the key file").unwrap_err();
        assert_eq!(e.to_string(), "cannot read the key file");
        assert_eq!(e.chain(), "cannot read the key file: no such file");
        assert!(std::error::Error::source(&e).is_some(), "the cause is kept");

        // A service error's own cause comes after it.
        let api = ApiError::new(ErrorCode::Internal, "the store failed")
            .with_cause(std::io::Error::other("disk full"));
        let e = CliError::of(api);
        assert_eq!(e.chain(), "internal: the store failed: disk full");

        // An error that prints its cause already is not repeated.
        let e = CliError::caused(
            "nothing rotated: disk full",
            std::io::Error::other("disk full"),
        );
        assert_eq!(e.chain(), "nothing rotated: disk full");
    }
}
