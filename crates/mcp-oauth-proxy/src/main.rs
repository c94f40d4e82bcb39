//! `mcp-oauth-proxy`: serve, check a configuration, or make an encryption key.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use mcp_oauth_core::SystemClock;
use mcp_oauth_proxy::config::{Config, ConfigErrors};
use mcp_oauth_proxy::explain::{describe, doctor, redact_password};
use mcp_oauth_proxy::{BoxError, admin, logging, runtime};
use mcp_oauth_store::GrantFilter;

#[derive(Parser)]
#[command(
    name = "mcp-oauth-proxy",
    version,
    about = "OAuth 2.1 authorization server and reverse proxy for remote MCP servers"
)]
struct Cli {
    /// Log lines as text, or as one JSON object per line for log collectors.
    #[arg(long, global = true, value_enum, default_value = "text", env = "MCP_OAUTH_PROXY_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Serve {
        /// The TOML configuration file (every key may also come from the environment).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Validate a configuration and explain what it sets up; prints no secret.
    CheckConfig {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Fetch a brokered server's (`upstream_auth = "oauth"`) metadata and say what its first
    /// login will do: the discovered issuer, the registration method, the scopes. Registers
    /// nothing.
    Doctor {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The server's slug.
        #[arg(long)]
        server: String,
    },
    /// Print a new random encryption key (base64 of 32 bytes).
    Keygen,
    /// Re-seal every stored credential with the current encryption key, so that
    /// `encryption.previous_keys` can be emptied. Safe while the proxy serves.
    RotateKey {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Copy every client, grant, token, credential and pinned tool from the configured SQLite
    /// storage into an empty PostgreSQL database (stop the proxy first), and check the counts.
    MigrateStorage {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The PostgreSQL database to move to (postgres://…); it must be empty.
        #[arg(long)]
        to: String,
    },
    /// The steps of one login attempt, by the trace id its error page or error showed,
    /// from the audit trail (`[audit] path`).
    Trace {
        trace_id: String,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Exit 0 if the proxy at URL answers its liveness probe (for container health checks,
    /// where no curl is installed).
    Healthcheck {
        #[arg(long, default_value = "http://127.0.0.1:8080/healthz")]
        url: String,
    },
    /// Registered clients (on the configured storage; safe while the proxy serves).
    Clients {
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: ClientsCommand,
    },
    /// Grants: who authorized which client (on the configured storage; safe while serving).
    Grants {
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: GrantsCommand,
    },
    /// Pinned tool definitions: each server's tools as first seen, and the changes seen since
    /// (on the configured storage; safe while serving).
    Tools {
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: ToolsCommand,
    },
    /// Run everything on loopback: a development identity provider, a sample MCP server
    /// and the proxy in front of it. Offline; for trying the flow with a real client.
    Demo {
        /// The proxy's port on 127.0.0.1 (0: any free port).
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Where to keep the database (default: a new temporary folder).
        #[arg(long)]
        data: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ClientsCommand {
    /// Every dynamically registered client.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One client's registration and how many grants it has.
    Show { client_id: String },
    /// Delete a registration and end its grants.
    Delete { client_id: String },
}

#[derive(Subcommand)]
enum GrantsCommand {
    /// Grants, newest first, optionally only those matching every filter given.
    List {
        #[arg(long)]
        subject: Option<String>,
        #[arg(long)]
        client: Option<String>,
        #[arg(long)]
        slug: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// End grants: every one of a user, of a client, or one by its id.
    #[command(group = clap::ArgGroup::new("which").required(true))]
    Revoke {
        #[arg(long, group = "which")]
        subject: Option<String>,
        #[arg(long, group = "which")]
        client: Option<String>,
        #[arg(long, group = "which")]
        grant: Option<String>,
    },
}

#[derive(Subcommand)]
enum ToolsCommand {
    /// Pinned tools by server and name, and whether their definition changed since.
    List {
        /// Only this server's tools (its slug).
        #[arg(long)]
        server: Option<String>,
        /// Only tools with a changed definition waiting to be accepted.
        #[arg(long)]
        changed: bool,
        #[arg(long)]
        json: bool,
    },
    /// A tool's pinned definition and its changed one, as JSON, to compare.
    Show {
        /// The server's slug.
        #[arg(long)]
        server: String,
        /// The tool's name.
        #[arg(long)]
        tool: String,
    },
    /// Make a tool's changed definition its pin, so that it is no longer reported (or blocked).
    Accept {
        /// The server's slug.
        #[arg(long)]
        server: String,
        /// The tool's name.
        #[arg(long)]
        tool: String,
        /// Only if the pending change is still this one (its digest, as `tools show` printed it).
        #[arg(long)]
        digest: Option<String>,
    },
}

/// Sets up logging to standard output; what is buffered is written when the returned
/// value is dropped, at the end of the command.
fn init_logging(format: LogFormat) -> impl Drop {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let out = logging::Batched::new(Box::new(std::io::stdout()));
    // Colours for a terminal only, not for a file or a journal.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_ansi(ansi).with_writer(out.clone());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    FlushAtEnd(out)
}

struct FlushAtEnd(logging::Batched);

impl Drop for FlushAtEnd {
    fn drop(&mut self) {
        self.0.flush();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Keygen => {
            println!("{}", mcp_oauth_core::seal::generate_key());
            ExitCode::SUCCESS
        }
        Command::CheckConfig { config } => match Config::load(config.as_deref()) {
            Ok(c) => {
                print!("{}", describe(&c));
                ExitCode::SUCCESS
            }
            Err(e) => config_error(&e),
        },
        Command::Doctor { config, server } => match Config::load(config.as_deref()) {
            Ok(config) => run("doctor", doctor(config, server)),
            Err(e) => config_error(&e),
        },
        Command::RotateKey { config } => {
            let _log = init_logging(cli.log_format);
            match Config::load(config.as_deref()) {
                Ok(config) => run("rotate-key", rotate_key(config)),
                Err(e) => config_error(&e),
            }
        }
        Command::Trace { trace_id, config } => match Config::load(config.as_deref()) {
            Ok(config) => run("trace", async move {
                match config.audit_path.as_deref() {
                    None | Some("-") => Err("trace reads the audit trail: set [audit] path to a file".into()),
                    Some(path) => admin::trace(path, &trace_id),
                }
            }),
            Err(e) => config_error(&e),
        },
        Command::MigrateStorage { config, to } => match Config::load(config.as_deref()) {
            Ok(config) => run("migrate-storage", migrate_storage(config, to)),
            Err(e) => config_error(&e),
        },
        Command::Healthcheck { url } => run("healthcheck", async move {
            mcp_oauth_upstream::http_client::install_crypto_provider();
            let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(2)).build()?;
            let status = client.get(&url).send().await?.status();
            if status.is_success() { Ok(()) } else { Err(format!("{url} answered {status}").into()) }
        }),
        Command::Clients { config, command } => match Config::load(config.as_deref()) {
            Ok(config) => run("clients", async move {
                let store = mcp_oauth_store::open(&config.storage_url).await?;
                match command {
                    ClientsCommand::List { json } => admin::list_clients(store.as_ref(), json).await,
                    ClientsCommand::Show { client_id } => admin::show_client(store.as_ref(), &client_id).await,
                    ClientsCommand::Delete { client_id } => admin::delete_client(store.as_ref(), &client_id).await,
                }
            }),
            Err(e) => config_error(&e),
        },
        Command::Grants { config, command } => match Config::load(config.as_deref()) {
            Ok(config) => run("grants", async move {
                let store = mcp_oauth_store::open(&config.storage_url).await?;
                match command {
                    GrantsCommand::List { subject, client, slug, json } => {
                        let filter = GrantFilter { subject, client_id: client, server: slug, grant_id: None };
                        admin::list_grants(store.as_ref(), &filter, json).await
                    }
                    GrantsCommand::Revoke { subject, client, grant } => {
                        let filter = GrantFilter { subject, client_id: client, server: None, grant_id: grant };
                        let (keys, clock) = (Arc::new(config.keys), Arc::new(SystemClock));
                        // A new process knows no former authorization server: it sees no move to audit.
                        let audit = Arc::new(mcp_oauth_http::Audit::off());
                        let brokers =
                            mcp_oauth_http::Brokers::new(Arc::clone(&store), keys, clock, audit, &config.settings);
                        admin::revoke_grants(store.as_ref(), &filter, &config.settings, &brokers).await
                    }
                }
            }),
            Err(e) => config_error(&e),
        },
        Command::Tools { config, command } => match Config::load(config.as_deref()) {
            Ok(config) => run("tools", async move {
                let store = mcp_oauth_store::open(&config.storage_url).await?;
                match command {
                    ToolsCommand::List { server, changed, json } => {
                        admin::list_tools(store.as_ref(), server.as_deref(), changed, json).await
                    }
                    ToolsCommand::Show { server, tool } => admin::show_tool(store.as_ref(), &server, &tool).await,
                    ToolsCommand::Accept { server, tool, digest } => {
                        admin::accept_tool(store.as_ref(), &server, &tool, digest.as_deref()).await
                    }
                }
            }),
            Err(e) => config_error(&e),
        },
        Command::Demo { port, data } => {
            let _log = init_logging(cli.log_format);
            run("demo", async move {
                let demo = mcp_oauth_proxy::demo::start(port, data).await?;
                println!("{}", demo.banner());
                demo.serve().await?;
                Ok(())
            })
        }
        Command::Serve { config } => {
            let _log = init_logging(cli.log_format);
            match Config::load(config.as_deref()) {
                Ok(config) => run("serve", serve(config)),
                Err(e) => config_error(&e),
            }
        }
    }
}

fn config_error(e: &ConfigErrors) -> ExitCode {
    eprint!("{e}");
    ExitCode::from(2)
}

/// Runs a command's work to its end; a failure is printed and exits non-zero.
fn run<T: RunOutput>(command: &str, work: impl Future<Output = Result<T, BoxError>>) -> ExitCode {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(work) {
        Ok(output) => {
            output.print();
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mcp-oauth-proxy {command}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What a command prints when it succeeds.
trait RunOutput {
    fn print(self);
}

impl RunOutput for () {
    fn print(self) {}
}

impl RunOutput for String {
    fn print(self) {
        println!("{self}");
    }
}

async fn serve(config: Config) -> Result<(), BoxError> {
    let (listen, metrics_listen) = (config.listen, config.metrics_listen);
    let app = runtime::build(config, Arc::new(SystemClock)).await?;
    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    runtime::serve(app, listener, metrics_listen).await?;
    Ok(())
}

async fn rotate_key(config: Config) -> Result<String, BoxError> {
    let store = mcp_oauth_store::open(&config.storage_url).await?;
    let done = mcp_oauth_proxy::rekey::reseal_all(store.as_ref(), &config.keys).await?;
    Ok(format!(
        "re-sealed with key id {}: {} provider credential(s), {} refresh-token successor(s), {} upstream \
         registration secret(s); {} changed meanwhile \
         and were already current.\nNo stored value needs a previous key now: encryption.previous_keys may be \
         emptied once every replica runs with this configuration.",
        config.keys.current_key_id(),
        done.provider_credentials,
        done.refresh_successors,
        done.upstream_registrations,
        done.changed_meanwhile
    ))
}

async fn migrate_storage(config: Config, to: String) -> Result<String, BoxError> {
    use mcp_oauth_store::Backend;
    if Backend::for_url(&config.storage_url) != Some(Backend::Sqlite) {
        return Err("storage.url must name the SQLite database to move from".into());
    }
    if Backend::for_url(&to) != Some(Backend::Postgres) {
        return Err("--to must be a postgres:// URL".into());
    }
    let copied = mcp_oauth_store::copy::copy_all(&config.storage_url, &to).await?;
    Ok(format!(
        "copied {} client(s), {} grant(s), {} authorization code(s), {} refresh token(s), {} access token(s), \
         {} pinned tool(s), {} upstream registration(s); the counts match.\nNow run every replica with:\n\n[storage]\nurl = \"{}\"\n\n(or \
         MCP_OAUTH_PROXY_STORAGE__URL, which keeps the password out of the file)",
        copied.clients,
        copied.grants,
        copied.codes,
        copied.refresh_tokens,
        copied.access_tokens,
        copied.tool_pins,
        copied.upstream_registrations,
        redact_password(&to)
    ))
}
