//! The `gotthard` command: serve, migrate, and operator commands on the same configuration.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use gotthard::AppState;
use gotthard::config::{Config, LogFormat};
use gotthard::orgs::OrgRole;

#[derive(Parser)]
#[command(
    name = "gotthard",
    version,
    about = "Identity provider and auth gateway"
)]
struct Cli {
    /// A TOML file overriding the embedded defaults (environment variables override both).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log format (overrides `log.format`).
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormatArg>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage organizations.
    #[command(subcommand)]
    Org(OrgCommand),
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; the password is read from the first line of standard input.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "")]
        name: String,
        /// Read the password from stdin (required: passwords never go on the command line).
        #[arg(long)]
        password_stdin: bool,
        /// Make the user an administrator of this Gotthard instance.
        #[arg(long)]
        admin: bool,
    },
    /// List users.
    List,
    /// Unlock an account locked after too many wrong passwords.
    Unlock {
        #[arg(long)]
        email: String,
    },
}

#[derive(Subcommand)]
enum OrgCommand {
    /// Create an organization.
    Create {
        #[arg(long)]
        name: String,
    },
    /// Add a user to an organization, or change their role there.
    AddMember {
        #[arg(long)]
        org: String,
        #[arg(long)]
        email: String,
        /// legal-representative, admin or member
        #[arg(long, value_parser = parse_role)]
        role: OrgRole,
    },
    /// List organizations.
    List,
}

fn parse_role(value: &str) -> Result<OrgRole, String> {
    value.parse()
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: {err}");
            return std::process::ExitCode::from(2);
        }
    };
    let format = match cli.log_format {
        Some(LogFormatArg::Json) => LogFormat::Json,
        Some(LogFormatArg::Text) => LogFormat::Text,
        None => config.log.format,
    };
    gotthard::init_tracing(format, &config.log.level);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            AppState::open(config, 1).await?;
            println!("database is up to date");
            Ok(())
        }
        Command::User(command) => user(command, config).await,
        Command::Org(command) => org(command, config).await,
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let bind = config.http.bind;
    let threads = config.hash_threads();
    let state = AppState::open(config, threads).await?;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("cannot listen on {bind}"))?;
    tracing::info!(
        address = %bind,
        issuer = %state.config.issuer,
        database = ?state.store.backend(),
        hash_threads = threads,
        "Gotthard is listening"
    );
    if let Some(link) = state
        .first_start
        .issue_link_if_empty(state.clock.now())
        .await?
    {
        println!(
            "\nNo account exists yet. Create the first administrator within {} minutes at:\n\n    {link}\n",
            state.config.setup.link_ttl_minutes
        );
    }
    gotthard::serve(state, listener, gotthard::shutdown_signal()).await?;
    Ok(())
}

async fn user(command: UserCommand, config: Config) -> anyhow::Result<()> {
    let state = AppState::open(config, 1).await?;
    match command {
        UserCommand::Create {
            email,
            name,
            password_stdin,
            admin,
        } => {
            if !password_stdin {
                anyhow::bail!("pass --password-stdin and write the password to standard input");
            }
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("cannot read the password from stdin")?;
            let password = line.trim_end_matches(['\n', '\r']);
            let user = state
                .accounts
                .create_user(&email, &name, password, admin, state.clock.now())
                .await?;
            println!("created user {} <{}>", user.id, user.email);
        }
        UserCommand::List => {
            for user in state.accounts.list_users().await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    user.id,
                    user.email,
                    user.name,
                    if user.is_admin { "admin" } else { "" },
                    if user.locked_at.is_some() {
                        "locked"
                    } else {
                        ""
                    }
                );
            }
        }
        UserCommand::Unlock { email } => {
            let normalized = gotthard::accounts::normalize_email(&email)
                .map_err(|e| anyhow::anyhow!("e-mail address {e}"))?;
            let user = state
                .store
                .user_by_email(&normalized)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no user with e-mail `{normalized}`"))?;
            let client = gotthard::audit::ClientInfo::new("cli", "gotthard user unlock");
            if state
                .accounts
                .unlock_by_admin(user.id, None, &client, state.clock.now())
                .await?
            {
                println!("unlocked {}", user.email);
            } else {
                println!("{} was not locked", user.email);
            }
        }
    }
    Ok(())
}

async fn org(command: OrgCommand, config: Config) -> anyhow::Result<()> {
    let state = AppState::open(config, 1).await?;
    let now = state.clock.now();
    match command {
        OrgCommand::Create { name } => {
            let org = state.orgs.create(&name, now).await?;
            println!("created organization {} {}", org.id, org.name);
        }
        OrgCommand::AddMember { org, email, role } => {
            state.orgs.add_member(&org, &email, role, now).await?;
            println!("{email} is now {} of {org}", role.as_str());
        }
        OrgCommand::List => {
            for org in state.orgs.list().await? {
                println!("{}\t{}", org.id, org.name);
            }
        }
    }
    Ok(())
}
