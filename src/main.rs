//! The `unicontacts` command: `serve` (the default), `migrate`, `keys create`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use unicontacts::auth::Scope;
use unicontacts::config::Settings;
use unicontacts::routes::api_keys::insert_new_key;
use unicontacts::startup::{open_store, Application};
use unicontacts::store::orgs;
use unicontacts::telemetry::{self, LogTarget};

#[derive(Parser)]
#[command(
    name = "unicontacts",
    version,
    about = "One contacts API over Periskope, WA.cr and WhatsApp Gateway"
)]
struct Cli {
    /// A TOML settings file (environment variables `UNICONTACTS_*` override it).
    #[arg(long, global = true, env = "UNICONTACTS_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API (the default when no command is given).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Sync one connection (any org) or every connection now, with progress; exits non-zero if a run fails.
    Sync {
        /// Only this connection.
        #[arg(long)]
        connection: Option<String>,
    },
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Run the three provider simulators (Periskope, WA.cr, Gateway) on loopback until Ctrl-C.
    #[cfg(feature = "sim")]
    Sim(SimArgs),
}

#[cfg(feature = "sim")]
#[derive(clap::Args)]
struct SimArgs {
    #[arg(long, default_value_t = 9101)]
    periskope_port: u16,
    #[arg(long, default_value_t = 9102)]
    wacr_port: u16,
    #[arg(long, default_value_t = 9103)]
    gateway_port: u16,
    /// Seed of the generated data set (same seed, same data).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Number of people in the data set (spread over the three providers).
    #[arg(long, default_value_t = 200)]
    size: usize,
    /// The API key every simulator accepts.
    #[arg(long, default_value = "sim-key-0123456789")]
    api_key: String,
    /// The Gateway session id.
    #[arg(long, default_value = "sess_demo")]
    session: String,
    /// Requests allowed per window (default: no limit).
    #[arg(long)]
    rate_limit: Option<u32>,
    /// Window length in seconds for --rate-limit.
    #[arg(long, default_value_t = 1)]
    rate_window: u64,
}

#[derive(clap::Args, Default)]
struct ServeArgs {
    /// Start the three provider simulators, connect an org `demo` to them, load their contacts and print a key.
    #[cfg(feature = "sim")]
    #[arg(long)]
    demo: bool,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create an API key, creating the org if needed. The key is printed once, alone on the last line.
    Create {
        /// The org (tenant) name.
        #[arg(long)]
        org: String,
        /// Comma-separated scopes: contacts:read, contacts:write, admin.
        #[arg(long, value_parser = parse_scopes)]
        scopes: ScopeList,
        /// A label for the key.
        #[arg(long, default_value = "cli")]
        name: String,
    },
}

#[derive(Clone)]
struct ScopeList(Vec<Scope>);

fn parse_scopes(s: &str) -> Result<ScopeList, String> {
    Scope::parse_list(s).map(ScopeList)
}

/// Pins glibc's mmap threshold at 1 MiB. By default glibc raises it (up to 32 MiB)
/// each time a large block is freed, after which the buffers of a sync page (a
/// response body of a few MB, its parsed tree, a page of records) come from the
/// per-thread heaps, where they are allocated on the runtime's threads and freed
/// on the database's, and fragment: the peak RSS of identical syncs of 1 000 000
/// contacts on SQLite varied from 169 to 225 MiB. Pinned, such blocks are mapped
/// and returned whole: 166 MiB in each of three runs, no slower.
#[allow(unsafe_code)]
fn pin_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt takes two integers and only sets an allocator parameter; it
    // is called first thing in main, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

fn main() -> ExitCode {
    pin_mmap_threshold();
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("unicontacts: {e}");
            return ExitCode::from(2);
        }
    };
    let command = cli.command.unwrap_or(Command::Serve(ServeArgs::default()));
    let target = match command {
        Command::Serve(_) => LogTarget::Stdout,
        _ => LogTarget::Stderr,
    };
    telemetry::init(&settings, target);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("unicontacts: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match command {
            Command::Serve(args) => serve(settings, args).await,
            Command::Migrate => migrate(settings).await,
            Command::Sync { connection } => sync(settings, connection).await,
            Command::Keys {
                command: KeysCommand::Create { org, scopes, name },
            } => create_key(settings, org, scopes.0, name).await,
            #[cfg(feature = "sim")]
            Command::Sim(args) => run_sims(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("unicontacts: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings, args: ServeArgs) -> Result<(), String> {
    let backend = settings.database_url.backend_name();
    #[cfg(feature = "sim")]
    let sims = if args.demo {
        Some(
            unicontacts_adapters::sim::start_all(
                42,
                200,
                unicontacts::demo::SIM_KEY,
                unicontacts::demo::SIM_SESSION,
                unicontacts_adapters::sim::SimAddrs::default(),
                None,
            )
            .await
            .map_err(|e| format!("cannot start the demo simulators: {e}"))?,
        )
    } else {
        None
    };
    #[cfg(not(feature = "sim"))]
    let _ = args;
    let app = Application::build(settings.clone())
        .await
        .map_err(|e| e.to_string())?;
    #[cfg(feature = "sim")]
    if let Some(sims) = &sims {
        let info = unicontacts::demo::setup(&app.state(), sims).await?;
        print_demo(&info, sims, app.port());
    }
    tracing::info!(
        port = app.port(),
        bind = %settings.bind,
        backend,
        "unicontacts listening; docs at /docs"
    );
    app.run_until_stopped().await.map_err(|e| e.to_string())?;
    tracing::info!("shut down cleanly");
    Ok(())
}

async fn migrate(settings: Settings) -> Result<(), String> {
    // open_store applies pending migrations.
    open_store(&settings).await.map_err(|e| e.to_string())?;
    println!(
        "migrations are up to date ({})",
        settings.database_url.backend_name()
    );
    Ok(())
}

async fn create_key(
    settings: Settings,
    org: String,
    scopes: Vec<Scope>,
    name: String,
) -> Result<(), String> {
    let org = org.trim().to_string();
    if org.is_empty() || org.chars().count() > 100 {
        return Err("--org must be 1 to 100 characters".into());
    }
    let store = open_store(&settings).await.map_err(|e| e.to_string())?;
    let (org, row, key) = store
        .run(move |conn| {
            let org = orgs::find_or_insert_org(conn, &org)?;
            let (row, key) = insert_new_key(conn, &org.id, &name, &scopes)?;
            Ok((org, row, key))
        })
        .await
        .map_err(|e| e.to_string())?;
    println!("org: {} ({})", org.name, org.id);
    println!(
        "key: {} prefix {} scopes {}",
        row.id, row.prefix, row.scopes
    );
    println!("the key below is shown once; store it now");
    println!("{key}");
    Ok(())
}

#[cfg(feature = "sim")]
async fn run_sims(args: SimArgs) -> Result<(), String> {
    use unicontacts_adapters::sim::{start_all, RateLimit, SimAddrs};
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
    .map_err(|e| format!("cannot start the simulators: {e}"))?;
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
        .map_err(|e| format!("waiting for Ctrl-C: {e}"))?;
    Ok(())
}

#[cfg(feature = "sim")]
fn print_demo(
    info: &unicontacts::demo::DemoInfo,
    sims: &unicontacts_adapters::sim::SimSet,
    port: u16,
) {
    let base = format!("http://127.0.0.1:{port}");
    let key = &info.admin_key;
    println!();
    println!("unicontacts demo: three simulated providers on loopback, their contacts loaded");
    for (c, counts) in &info.connections {
        println!(
            "  {:<10} {}  {} contacts ({} new)",
            c.provider.as_str(),
            c.id,
            counts.created + counts.updated + counts.unchanged,
            counts.created
        );
    }
    println!("admin key of org `demo` (scopes admin, contacts:read, contacts:write), shown once:");
    println!("{key}");
    println!("try:");
    println!("  curl -s -H 'Authorization: Bearer {key}' '{base}/v1/contacts?limit=3'");
    if let Some(p) = sims
        .world
        .people
        .iter()
        .find(|p| p.provider_count() == 3 && p.phone.is_some())
    {
        let phone = p.e164().unwrap_or_default().replace('+', "%2B");
        println!("  curl -s -H 'Authorization: Bearer {key}' '{base}/v1/contacts?phone={phone}'   # one person, three providers");
    }
    if let Some((gateway, _)) = info
        .connections
        .iter()
        .find(|(c, _)| c.provider == unicontacts_adapters::ProviderKind::Gateway)
    {
        if let Some(p) = sims.world.gateway_people().next() {
            println!(
                "  curl -s -i -H 'Authorization: Bearer {key}' '{base}/v1/connections/{}/contacts/{}'   # live read, cached",
                gateway.id,
                p.lid.trim_end_matches("@lid")
            );
        }
    }
    println!("API docs: {base}/docs/");
}

/// A token cancelled by the first SIGINT or SIGTERM: the run in progress stops
/// after the page it is writing and is recorded (its lease released). A second
/// signal exits at once.
fn stop_on_signal() -> tokio_util::sync::CancellationToken {
    let stop = tokio_util::sync::CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch SIGTERM");
                    return;
                }
            };
        for n in 0.. {
            #[cfg(unix)]
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            #[cfg(not(unix))]
            if tokio::signal::ctrl_c().await.is_err() {
                return;
            }
            if n > 0 {
                std::process::exit(130);
            }
            eprintln!("stopping after the page being written (again to quit at once)");
            token.cancel();
        }
    });
    stop
}

async fn sync(settings: Settings, only: Option<String>) -> Result<(), String> {
    use std::io::IsTerminal;
    use unicontacts::store::connections::Connection;
    use unicontacts::sync::run;

    let store = open_store(&settings).await.map_err(|e| e.to_string())?;
    let connections: Vec<Connection> = store
        .run(move |conn| {
            use diesel::prelude::*;
            use unicontacts::store::models::ConnectionRow;
            use unicontacts::store::schema::connections;
            let mut q = connections::table
                .select(ConnectionRow::as_select())
                .order(connections::id)
                .into_boxed();
            if let Some(id) = only {
                q = q.filter(connections::id.eq(id));
            }
            q.load(conn)?
                .into_iter()
                .map(unicontacts::store::connections::Connection::try_from)
                .collect()
        })
        .await
        .map_err(|e| e.to_string())?;
    if connections.is_empty() {
        return Err("no such connection".into());
    }
    let ttl = run::lease_ttl(&settings);
    let holder = run::holder_id();
    let terminal = std::io::stdout().is_terminal();
    let stop = stop_on_signal();
    let mut failed = 0;
    for c in connections {
        if stop.is_cancelled() {
            break;
        }
        let started = match run::start(&store, &c, "cli", &holder, ttl, None).await {
            Ok(r) => r,
            Err(
                unicontacts::store::sync_runs::LeaseError::Held(_)
                | unicontacts::store::sync_runs::LeaseError::NotDue,
            ) => {
                println!("{} ({}): a sync is already running; skipped", c.name, c.id);
                failed += 1;
                continue;
            }
            Err(e) => return Err(e.to_string()),
        };
        let provider = match unicontacts_adapters::connect(run::sync_adapter_config(&c)) {
            Ok(p) => p,
            Err(e) => {
                let done = run::fail_before_start(
                    &store,
                    started,
                    format!("the connection cannot be used: {e}"),
                )
                .await;
                println!(
                    "{} ({}): failed: {}",
                    c.name,
                    c.id,
                    done.error.unwrap_or_default()
                );
                failed += 1;
                continue;
            }
        };
        println!("{} ({}, {}): run {}", c.name, c.provider, c.id, started.id);
        let bar = terminal.then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        let progress = |r: &unicontacts::store::models::SyncRunRow| {
            let line = format!(
                "page {}: {} created, {} updated, {} unchanged",
                r.pages, r.created, r.updated, r.unchanged
            );
            match &bar {
                Some(b) => b.set_message(line),
                None => println!("  {line}"),
            }
        };
        let done = run::execute(
            store.clone(),
            provider,
            c,
            started,
            ttl,
            stop.clone(),
            progress,
        )
        .await;
        if let Some(b) = &bar {
            b.finish_and_clear();
        }
        println!(
            "  {}: {} created, {} updated, {} unchanged, {} deleted, {} pages, {} upstream requests, {} x 429{}",
            done.status,
            done.created,
            done.updated,
            done.unchanged,
            done.deleted,
            done.pages,
            done.upstream_requests,
            done.throttled_429,
            done.error.as_deref().map(|e| format!("; {e}")).unwrap_or_default()
        );
        // A partial run left records behind: worth a non-zero exit for a scheduler.
        if done.status != "succeeded" {
            failed += 1;
        }
    }
    if stop.is_cancelled() {
        return Err("interrupted".into());
    }
    if failed > 0 {
        return Err(format!("{failed} run(s) did not succeed"));
    }
    Ok(())
}
