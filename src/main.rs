//! The `unicontacts` command: parses the command line and calls the library's
//! `cli` functions (`serve`, the default; `migrate`, `sync`, `keys create|list|revoke`,
//! `connections list`, `secrets generate-key`, `secrets rotate`, `sim`) or prints
//! shell completions.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use unicontacts::cli;
use unicontacts::config::{ConfigFile, Settings};
use unicontacts::service::api_keys::Scope;
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
    /// Relink every live contact of each org (or of one) into people by the
    /// rules in force: after `max_contacts_per_identifier` changed, or as a repair.
    Relink {
        /// Only the org of this name.
        #[arg(long)]
        org: Option<String>,
    },
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Look at provider connections.
    Connections {
        #[command(subcommand)]
        command: ConnectionsCommand,
    },
    /// Runs whose deletions a sync's deletion guard holds for review.
    SyncRuns {
        #[command(subcommand)]
        command: SyncRunsCommand,
    },
    /// Exit 0 when the server answers `GET /readyz` with 200 within 3 s, else 1 (for container healthchecks).
    Healthcheck {
        /// The server's base URL (default: the `bind` setting, on 127.0.0.1 when it binds every address).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
    /// Print a shell completion script (e.g. `unicontacts completions bash > /etc/bash_completion.d/unicontacts`).
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// The key provider credentials are sealed with at rest.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// Run the three provider simulators (Periskope, WA.cr, Gateway) on loopback until Ctrl-C.
    #[cfg(feature = "demo")]
    Sim(SimArgs),
}

#[cfg(feature = "demo")]
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
    #[cfg(feature = "demo")]
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
        /// When the key stops working (RFC 3339, e.g. 2027-06-30T00:00:00Z); never by default.
        #[arg(long, value_name = "TIME")]
        expires_at: Option<String>,
    },
    /// List API keys (never the keys themselves): one org's or every org's.
    List {
        /// Only this org (by name).
        #[arg(long)]
        org: Option<String>,
        /// Revoked keys too.
        #[arg(long)]
        all: bool,
    },
    /// Revoke an API key by id (`key_…`); it stops working at once, on every replica.
    Revoke {
        /// The key's id, as `keys list` shows it.
        id: String,
    },
}

#[derive(Subcommand)]
enum ConnectionsCommand {
    /// List every org's connections with their health and last sync.
    List,
}

#[derive(Subcommand)]
enum SyncRunsCommand {
    /// List every org's runs holding deletions: run, org, connection, how many, since when, why.
    Held,
    /// Mark the contacts a run holds deleted (their events and webhooks as for any deletion).
    Apply {
        /// The run's id (`run_…`), as `sync-runs held` shows it.
        id: String,
    },
    /// Release a run's hold: nothing is deleted.
    Discard {
        /// The run's id (`run_…`), as `sync-runs held` shows it.
        id: String,
    },
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// Print a fresh random key (base64 of 32 bytes) for UNICONTACTS_SECRET_KEY.
    GenerateKey,
    /// Re-seal every connection's credentials with a new key, in one transaction.
    /// The current key is UNICONTACTS_SECRET_KEY or, on SQLite, the key file,
    /// which then holds the new key.
    Rotate {
        /// The new key, base64 of 32 bytes; `-` reads it from standard input
        /// (keeping it out of the process list).
        #[arg(long, value_name = "KEY")]
        new_key: String,
    },
}

#[derive(Clone)]
struct ScopeList(Vec<Scope>);

fn parse_scopes(s: &str) -> Result<ScopeList, String> {
    Scope::parse_list(s).map(ScopeList)
}

/// Tunes glibc's allocator, first thing in main (before any other thread exists).
///
/// The mmap threshold is pinned at 1 MiB. By default glibc raises it (up to 32 MiB)
/// each time a large block is freed, after which the buffers of a sync page (a
/// response body of a few MB, its parsed tree, a page of records) come from the
/// per-thread heaps, where they are allocated on the runtime's threads and freed
/// on the database's, and fragment: the peak RSS of identical syncs of 1 000 000
/// contacts on SQLite varied from 169 to 225 MiB. Pinned, such blocks are mapped
/// and returned whole: 166 MiB in each of three runs, no slower.
///
/// The heaps ("arenas") are as many as the machine's cores, not glibc's eight per
/// core: each thread that allocates while another holds its arena's lock gets an
/// arena of its own, and what it frees there stays with it; the runtime's and the
/// database's threads ended up spread over more, partly empty, heaps. The peak RSS
/// of a sync on PostgreSQL, two runs each: 118-121 MiB at 100 000 contacts and
/// 199-200 at 1 000 000 with glibc's default, 108 and 190 with two arenas, as
/// fast; the read path's throughput did not move. `MALLOC_ARENA_MAX`, when set,
/// has the last word.
#[allow(unsafe_code)]
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let arenas = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
        let arenas = i32::try_from(arenas).unwrap_or(i32::MAX);
        // SAFETY: mallopt takes two integers and only sets an allocator parameter; it
        // is called first thing in main, before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
            if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
                libc::mallopt(libc::M_ARENA_MAX, arenas);
            }
        }
    }
}

fn main() -> ExitCode {
    tune_allocator();
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // Before the settings: completions need none, and a broken file must not stop them.
    if let Some(Command::Completions { shell }) = cli.command {
        clap_complete::generate(
            shell,
            &mut Cli::command(),
            "unicontacts",
            &mut std::io::stdout(),
        );
        return ExitCode::SUCCESS;
    }
    // The file as the user named it, so that an error about it says which.
    let file = cli.config.as_deref().map(|path| ConfigFile {
        path: path.to_path_buf(),
        named_by: match matches.value_source("config") {
            Some(ValueSource::EnvVariable) => "UNICONTACTS_CONFIG".into(),
            _ => "--config".into(),
        },
    });
    let settings = match Settings::load(file) {
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
    // Held to the end of `main`: the last log lines are written when it drops.
    let _log = telemetry::init(&settings, target);
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
            #[cfg(feature = "demo")]
            Command::Serve(args) => cli::serve(settings, args.demo).await,
            #[cfg(not(feature = "demo"))]
            Command::Serve(_) => cli::serve(settings, false).await,
            Command::Migrate => cli::migrate(settings).await,
            Command::Relink { org } => cli::relink(settings, org.as_deref()).await,
            Command::Sync { connection } => cli::sync(settings, connection).await,
            Command::Keys {
                command:
                    KeysCommand::Create {
                        org,
                        scopes,
                        name,
                        expires_at,
                    },
            } => cli::create_key(settings, &org, &scopes.0, &name, expires_at.as_deref()).await,
            Command::Keys {
                command: KeysCommand::List { org, all },
            } => cli::list_keys(settings, org.as_deref(), all).await,
            Command::Keys {
                command: KeysCommand::Revoke { id },
            } => cli::revoke_key(settings, &id).await,
            Command::Connections {
                command: ConnectionsCommand::List,
            } => cli::list_connections(settings).await,
            Command::SyncRuns {
                command: SyncRunsCommand::Held,
            } => cli::list_held(settings).await,
            Command::SyncRuns {
                command: SyncRunsCommand::Apply { id },
            } => cli::end_hold(settings, &id, true).await,
            Command::SyncRuns {
                command: SyncRunsCommand::Discard { id },
            } => cli::end_hold(settings, &id, false).await,
            Command::Completions { .. } => Ok(()),
            Command::Healthcheck { url } => cli::healthcheck(settings, url).await,
            Command::Secrets {
                command: SecretsCommand::GenerateKey,
            } => {
                println!("{}", unicontacts::secrets::Sealer::generate_key());
                Ok(())
            }
            Command::Secrets {
                command: SecretsCommand::Rotate { new_key },
            } => cli::rotate_secret(settings, &new_key).await,
            #[cfg(feature = "demo")]
            Command::Sim(a) => {
                cli::run_sims(cli::SimOptions {
                    periskope_port: a.periskope_port,
                    wacr_port: a.wacr_port,
                    gateway_port: a.gateway_port,
                    seed: a.seed,
                    size: a.size,
                    api_key: a.api_key,
                    session: a.session,
                    rate_limit: a.rate_limit,
                    rate_window: a.rate_window,
                })
                .await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("unicontacts: {}", e.chain());
            ExitCode::FAILURE
        }
    }
}
