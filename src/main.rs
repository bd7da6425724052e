//! The `gotthard` command: serve, migrate, and operator commands on the same configuration.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use gotthard::AppState;
use gotthard::config::{Config, LogFormat};
use gotthard::orgs::OrgRole;

#[path = "main/client.rs"]
mod client;
use client::client;

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
    #[command(flatten)]
    Operate(Operation),
    /// Manage token signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

/// The commands that change the database and exit (shown beside the others in `--help`).
#[derive(Subcommand)]
enum Operation {
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage organizations.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Manage relying applications (OAuth 2.0 / OpenID Connect clients).
    #[command(subcommand)]
    Client(ClientCommand),
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Register a client; prints its id and (once) its secret as JSON.
    Create {
        #[arg(long)]
        name: String,
        /// A redirect URI (exact match); repeat for several.
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        /// A public client (no secret; PKCE S256 required).
        #[arg(long)]
        public: bool,
        /// Operated by the platform itself: no consent screen.
        #[arg(long)]
        first_party: bool,
        /// Require PKCE from this confidential client too.
        #[arg(long)]
        require_pkce: bool,
        /// Where RP-initiated logout may return to; repeat for several.
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
        /// Receives back-channel logout tokens when a session with its tokens ends (https;
        /// http only to a loopback host).
        #[arg(long)]
        backchannel_logout_uri: Option<String>,
        /// client_secret_basic (default), client_secret_post or private_key_jwt.
        #[arg(long, default_value = "client_secret_basic")]
        auth_method: String,
        /// A JWK Set file with the client's public keys (private_key_jwt).
        #[arg(long, value_name = "FILE")]
        jwks: Option<std::path::PathBuf>,
        /// RS256 (default), ES256 or EdDSA.
        #[arg(long, default_value = "RS256")]
        id_token_alg: String,
        /// May ask for the `admin` scope (administration through the API; the user is asked
        /// each time, even for a first-party client).
        #[arg(long)]
        admin_scope: bool,
        /// A client whose access tokens this one may introspect (it is its resource
        /// server); repeat for several. Without, it introspects only its own tokens.
        #[arg(long = "introspect-for", value_name = "CLIENT_ID")]
        introspect_for: Vec<String>,
    },
    /// List clients.
    List,
    /// Delete a client (its tokens stop working).
    Delete {
        #[arg(long)]
        id: String,
    },
    /// What a client did: tokens issued (per hour, and from which addresses), its last
    /// token, failed authentications; then its events, newest first.
    Activity {
        #[arg(long)]
        id: String,
        /// From this date (`2026-12-01`, UTC) or RFC 3339 time, inclusive. The summary
        /// covers the 24 hours before `--to` without it.
        #[arg(long)]
        from: Option<String>,
        /// Up to this date (its whole day) or RFC 3339 time, exclusive; default now.
        #[arg(long)]
        to: Option<String>,
        /// Only events of this action, e.g. `token.issued` or `client.auth_failed`.
        #[arg(long)]
        action: Option<String>,
        /// Every matching event (up to 100 000) as CSV, in the columns of the activity
        /// export, instead of the summary.
        #[arg(long)]
        csv: bool,
        /// Events listed after the summary, 1 to 200.
        #[arg(long, default_value = "50")]
        limit: String,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Add a new signing key per algorithm; the old ones stay published until the tokens
    /// they signed have expired, then are deleted by a later rotation.
    Rotate,
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
    /// Remove a user from an organization (their SSO sign-in there stops with it).
    RemoveMember {
        #[arg(long)]
        org: String,
        #[arg(long)]
        email: String,
    },
    /// The organization's SSO connection (Microsoft Entra ID).
    #[command(subcommand)]
    Sso(SsoCommand),
    /// The organization's e-mail domains and their verification (DNS TXT record).
    #[command(subcommand)]
    Domain(DomainCommand),
}

#[derive(Subcommand)]
enum DomainCommand {
    /// List the domains, verified or not, with the TXT record that verifies them.
    List {
        #[arg(long)]
        org: String,
    },
    /// Look the domain's `_gotthard-challenge` TXT record up now and mark it verified; with
    /// `--without-dns` the operator vouches for it instead (it is then never re-checked).
    Verify {
        #[arg(long)]
        org: String,
        #[arg(long)]
        domain: String,
        #[arg(long)]
        without_dns: bool,
    },
}

#[derive(Subcommand)]
enum SsoCommand {
    /// Connect the organization to its Entra ID tenant, or change the connection. The client
    /// secret is read from the first line of standard input (never from the command line).
    Set {
        #[arg(long)]
        org: String,
        /// The Entra tenant id (a GUID).
        #[arg(long)]
        tenant_id: String,
        /// The application (client) id (a GUID).
        #[arg(long)]
        client_id: String,
        /// Read a new client secret from stdin (required for a new connection; without it
        /// the stored secret is kept).
        #[arg(long)]
        client_secret_stdin: bool,
        /// An e-mail domain the tenant answers for; repeat for several.
        #[arg(long = "domain", required = true)]
        domains: Vec<String>,
        /// Base URL of the Entra ID cloud (default: the public cloud).
        #[arg(long)]
        authority: Option<String>,
        /// Create an account at an unknown user's first sign-in.
        #[arg(long)]
        provision: bool,
        /// Role of provisioned users: member or admin.
        #[arg(long, value_parser = parse_role, default_value = "member")]
        default_role: OrgRole,
        /// Refuse password sign-in for these domains.
        #[arg(long)]
        enforce_sso: bool,
    },
    /// Link an existing account (a member) to its Entra identity by object id, without the
    /// password confirmation a user would give.
    Link {
        #[arg(long)]
        org: String,
        #[arg(long)]
        email: String,
        /// The user's object id (`oid`) in the tenant.
        #[arg(long)]
        object_id: String,
    },
    /// Show the connection (never the secret).
    Show {
        #[arg(long)]
        org: String,
    },
    /// Disconnect the organization from its tenant.
    Remove {
        #[arg(long)]
        org: String,
    },
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
        Command::Operate(operation) => {
            let state = AppState::open(config, 1).await?;
            let done = match operation {
                Operation::User(command) => user(command, &state).await,
                Operation::Org(command) => org(command, &state).await,
                Operation::Client(command) => client(command, &state).await,
            };
            // Also after a failure: what was committed before it counts.
            state.announce_revocations().await;
            done
        }
        Command::Keys(KeysCommand::Rotate) => {
            let kids = gotthard::tokens::signing::rotate(
                &config.keys.dir,
                config.oidc.key_retention(),
                gotthard::clock::Clock::default().now(),
            )?;
            println!("{}", serde_json::json!({ "new_kids": kids }));
            Ok(())
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    keep_large_allocations_out_of_the_heap();
    let bind = config.http.bind;
    let threads = config.hash_threads();
    let state = AppState::open(config, threads).await?;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("cannot listen on {bind}"))?;
    tracing::info!(
        address = %bind,
        issuer = %state.config.issuer,
        database = ?state.database_backend(),
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

async fn user(command: UserCommand, state: &AppState) -> anyhow::Result<()> {
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
                .accounts
                .by_email(&normalized)
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

async fn org(command: OrgCommand, state: &AppState) -> anyhow::Result<()> {
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
        OrgCommand::RemoveMember { org, email } => {
            let found = find_org(state, &org).await?;
            let normalized = gotthard::accounts::normalize_email(&email)
                .map_err(|e| anyhow::anyhow!("e-mail address {e}"))?;
            let user = state
                .accounts
                .by_email(&normalized)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no user with e-mail `{normalized}`"))?;
            let client = gotthard::audit::ClientInfo::new("cli", "gotthard org remove-member");
            if state
                .orgs
                .remove_member(found.id, user.id, &client, state.clock.now())
                .await?
            {
                println!("{normalized} is no longer a member of {}", found.name);
            } else {
                println!("{normalized} was not a member of {}", found.name);
            }
        }
        OrgCommand::Sso(command) => sso(state, command).await?,
        OrgCommand::Domain(command) => domain(state, command).await?,
    }
    Ok(())
}

async fn domain(state: &AppState, command: DomainCommand) -> anyhow::Result<()> {
    let client = gotthard::audit::ClientInfo::new("cli", "gotthard org domain");
    let now = state.clock.now();
    match command {
        DomainCommand::List { org } => {
            let found = find_org(state, &org).await?;
            for d in state.domains.list(found.id).await? {
                let record = state.domains.challenge(found.id, &d.domain, now).await?;
                let status = d.verified.map_or("unverified", |(_, proof)| proof.as_str());
                println!(
                    "{}\t{status}\t{} TXT \"{}\"",
                    d.domain, record.name, record.value
                );
            }
        }
        DomainCommand::Verify {
            org,
            domain,
            without_dns,
        } => {
            let found = find_org(state, &org).await?;
            let verified = if without_dns {
                state.domains.vouch(found.id, &domain, &client, now).await
            } else {
                let operator = gotthard::orgs::DomainEditor::Operator;
                let verified = state
                    .domains
                    .verify(found.id, &domain, operator, &client, now);
                verified.await
            };
            let verified = verified.map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{} is verified for {}", verified.domain, found.name);
        }
    }
    Ok(())
}

async fn find_org(state: &AppState, name: &str) -> anyhow::Result<gotthard::orgs::Organization> {
    state
        .orgs
        .by_name(name)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no organization named `{}`", name.trim()))
}

async fn sso(state: &AppState, command: SsoCommand) -> anyhow::Result<()> {
    let client = gotthard::audit::ClientInfo::new("cli", "gotthard org sso");
    let now = state.clock.now();
    match command {
        SsoCommand::Set {
            org,
            tenant_id,
            client_id,
            client_secret_stdin,
            domains,
            authority,
            provision,
            default_role,
            enforce_sso,
        } => {
            let found = find_org(state, &org).await?;
            let client_secret = if client_secret_stdin {
                let mut line = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut line)
                    .context("cannot read the client secret from stdin")?;
                Some(line.trim_end_matches(['\n', '\r']).to_string())
            } else {
                None
            };
            let settings = gotthard::orgs::SsoSettings {
                tenant_id,
                client_id,
                client_secret,
                domains,
                authority,
                provision,
                default_role,
                enforce_sso,
            };
            let connection = state
                .sso
                .set(
                    found.id,
                    settings,
                    gotthard::orgs::SsoEditor::Operator,
                    &client,
                    now,
                )
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "{} signs in with Entra ID tenant {} for {}",
                found.name,
                connection.tenant_id,
                connection.domains.join(", ")
            );
            println!(
                "register this redirect URI in the Entra application: {}",
                state.federation.redirect_uri()
            );
        }
        SsoCommand::Link {
            org,
            email,
            object_id,
        } => {
            let found = find_org(state, &org).await?;
            let normalized = gotthard::accounts::normalize_email(&email)
                .map_err(|e| anyhow::anyhow!("e-mail address {e}"))?;
            let user = state
                .accounts
                .by_email(&normalized)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no user with e-mail `{normalized}`"))?;
            state
                .federation
                .link_by_operator(found.id, &user, &object_id, &client, now)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "{} now signs in with the SSO of {} (object id {})",
                user.email,
                found.name,
                object_id.trim()
            );
        }
        SsoCommand::Show { org } => {
            let found = find_org(state, &org).await?;
            let Some(c) = state.sso.get(found.id).await? else {
                anyhow::bail!("{} has no SSO connection", found.name);
            };
            println!("tenant_id\t{}", c.tenant_id);
            println!("client_id\t{}", c.client_id);
            println!("client_secret\t(set, not shown)");
            println!("domains\t{}", c.domains.join(","));
            println!("authority\t{}", c.authority);
            println!("provision\t{}", c.provision);
            println!("default_role\t{}", c.default_role.as_str());
            println!("enforce_sso\t{}", c.enforce_sso);
            println!("redirect_uri\t{}", state.federation.redirect_uri());
        }
        SsoCommand::Remove { org } => {
            let found = find_org(state, &org).await?;
            if state
                .sso
                .remove(found.id, gotthard::orgs::SsoEditor::Operator, &client, now)
                .await?
            {
                println!("{} no longer signs in with SSO", found.name);
            } else {
                println!("{} had no SSO connection", found.name);
            }
        }
    }
    Ok(())
}

/// Each password check allocates argon2's memory (19 MiB at OWASP's parameters). glibc
/// serves such blocks with mmap and returns them at free, until a free raises its dynamic
/// threshold: from then on they come from the heap arenas, which keep them, and the process
/// grew to ~240 MiB in the login benchmark. A fixed threshold keeps them mapped per use.
fn keep_large_allocations_out_of_the_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes an allocator setting; called once before the workers
    // start hashing.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
