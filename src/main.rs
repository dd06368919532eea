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
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("unicontacts: {e}");
            return ExitCode::from(2);
        }
    };
    let command = cli.command.unwrap_or(Command::Serve);
    let target = match command {
        Command::Serve => LogTarget::Stdout,
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
            Command::Serve => serve(settings).await,
            Command::Migrate => migrate(settings).await,
            Command::Keys {
                command: KeysCommand::Create { org, scopes, name },
            } => create_key(settings, org, scopes.0, name).await,
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

async fn serve(settings: Settings) -> Result<(), String> {
    let backend = settings.database_url.backend_name();
    let app = Application::build(settings.clone())
        .await
        .map_err(|e| e.to_string())?;
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
