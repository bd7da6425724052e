//! Typed configuration: `config/default.toml` (embedded) < `--config FILE` < `GOTTHARD_*` env.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::Deserialize;

mod validate;

/// The embedded defaults; the same file documents every key and its environment name.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// OWASP's minimum argon2id parameters (Password Storage Cheat Sheet).
pub const MIN_MEMORY_KIB: u32 = 19_456;
pub const MIN_ITERATIONS: u32 = 2;
/// 4 GiB per hashing thread: more cannot be what an operator meant.
pub const MAX_MEMORY_KIB: u32 = 4 << 20;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub issuer: String,
    pub data_dir: PathBuf,
    pub http: HttpConfig,
    pub rate_limit: RateLimitConfig,
    pub keys: KeysConfig,
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    pub smtp: SmtpConfig,
    pub password: PasswordConfig,
    pub lockout: LockoutConfig,
    pub sessions: SessionsConfig,
    pub activity: ActivityConfig,
    pub maintenance: MaintenanceConfig,
    pub setup: SetupConfig,
    pub oidc: OidcConfig,
    pub sso: SsoConfig,
    pub log: LogConfig,
    pub accounts: AccountsConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub bind: SocketAddr,
    pub request_timeout_secs: u64,
    pub body_limit_bytes: usize,
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Requests whose work may run at once, including work that outlived its request.
    pub max_requests_in_flight: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    pub sign_in_per_minute: u32,
    pub sign_in_burst: u32,
    pub reauth_per_minute: u32,
    pub reauth_burst: u32,
    /// Clients count per network: IPv4 addresses by this prefix (32 = per address)…
    pub ipv4_prefix_len: u8,
    /// …and IPv6 addresses by this one (64: one host commonly holds a whole /64).
    pub ipv6_prefix_len: u8,
    /// Networks this instance remembers at most (without Redis, or while it is down).
    pub max_tracked_clients: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    pub url: String,
    pub max_connections: u32,
    /// The longest wait for a pooled connection before a request gets 503.
    pub acquire_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    pub url: String,
    pub prefix: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub url: String,
    pub from: String,
    pub poll_interval_secs: u64,
    /// Sent mail (outbox rows, `.eml` files) is deleted this long after it went out.
    pub sent_retention_hours: i64,
}

impl SmtpConfig {
    /// The server as a URL, when one is set and parses.
    fn parsed(&self) -> Option<url::Url> {
        url::Url::parse(&self.url).ok()
    }

    /// Whether mail goes out encrypted: `smtps://` (TLS from the start) or `smtp://` with
    /// `?tls=required` (STARTTLS or nothing). `tls=opportunistic` falls back to clear text
    /// when the server (or someone in between) does not offer STARTTLS, so it does not count.
    fn requires_tls(url: &url::Url) -> bool {
        url.scheme() == "smtps"
            || url
                .query_pairs()
                .any(|(key, value)| key == "tls" && value == "required")
    }

    fn towards_loopback(url: &url::Url) -> bool {
        match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.to_canonical().is_loopback(),
            // smtp: is not a special scheme to the URL standard, so an IPv4 address comes
            // as an opaque host name.
            Some(url::Host::Domain(name)) => {
                let name = name.trim_end_matches('.');
                name.eq_ignore_ascii_case("localhost")
                    || name
                        .parse::<std::net::Ipv4Addr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
            None => false,
        }
    }

    /// A user name or password without TLS towards another machine.
    pub fn credentials_in_clear(&self) -> bool {
        self.parsed().is_some_and(|url| {
            (!url.username().is_empty() || url.password().is_some())
                && !Self::requires_tls(&url)
                && !Self::towards_loopback(&url)
        })
    }

    /// Mail (with its unlock links) in clear text to another machine, without credentials:
    /// allowed (an internal relay), but worth a warning.
    pub fn plain_towards_another_machine(&self) -> bool {
        self.parsed()
            .is_some_and(|url| !Self::requires_tls(&url) && !Self::towards_loopback(&url))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordConfig {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    pub min_length: usize,
    pub hash_threads: usize,
    pub queue_limit: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockoutConfig {
    pub min_threshold: i32,
    pub max_threshold: i32,
    pub default_threshold: i32,
    pub unlock_link_ttl_minutes: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsConfig {
    pub idle_timeout_minutes: i64,
    pub absolute_lifetime_hours: i64,
    pub touch_interval_secs: i64,
}

impl SessionsConfig {
    pub fn idle_timeout(&self) -> time::Duration {
        time::Duration::minutes(self.idle_timeout_minutes)
    }

    pub fn absolute_lifetime(&self) -> time::Duration {
        time::Duration::hours(self.absolute_lifetime_hours)
    }

    pub fn touch_interval(&self) -> time::Duration {
        time::Duration::seconds(self.touch_interval_secs)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityConfig {
    /// Events of accounts.
    pub retention_days: i64,
    /// Events of machine clients acting on their own (tokens without a user, failed client
    /// authentication): many more, useful for an incident's weeks.
    pub machine_retention_days: i64,
}

impl ActivityConfig {
    /// How long each kind of event is kept.
    pub fn retention(&self) -> crate::audit::Retention {
        crate::audit::Retention {
            account: time::Duration::days(self.retention_days),
            machine: time::Duration::days(self.machine_retention_days),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceConfig {
    pub interval_minutes: u64,
}

impl MaintenanceConfig {
    pub fn interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.interval_minutes * 60)
    }
}

/// The mailed links of account recovery (forgotten password).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountsConfig {
    pub password_reset_ttl_minutes: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetupConfig {
    pub link_ttl_minutes: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    pub access_token_ttl_secs: i64,
    pub id_token_ttl_secs: i64,
    pub code_ttl_secs: i64,
    pub refresh_token_ttl_days: i64,
    pub refresh_grace_secs: i64,
    pub backchannel_poll_interval_secs: u64,
    pub backchannel_max_attempts: u32,
    pub backchannel_retry_base_secs: u64,
    pub backchannel_per_receiver: u32,
}

impl OidcConfig {
    pub fn code_ttl(&self) -> time::Duration {
        time::Duration::seconds(self.code_ttl_secs)
    }

    pub fn refresh_token_ttl(&self) -> time::Duration {
        time::Duration::days(self.refresh_token_ttl_days)
    }

    pub fn refresh_grace(&self) -> time::Duration {
        time::Duration::seconds(self.refresh_grace_secs)
    }

    /// How long a superseded signing key stays published: longer than any token it signed.
    pub fn key_retention(&self) -> time::Duration {
        time::Duration::seconds(self.id_token_ttl_secs.max(self.access_token_ttl_secs))
            + time::Duration::minutes(10)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsoConfig {
    /// `ip:port` of the DNS server asked for domain challenges; empty: the system's.
    pub dns_server: String,
    pub dns_timeout_secs: u64,
    pub domain_recheck_hours: i64,
    pub domain_withdraw_after: i32,
    /// Hosts an instance administrator may point an SSO authority at although they resolve
    /// to private, loopback or link-local addresses.
    pub authority_allow_hosts: Vec<String>,
    /// Largest discovery, JWKS or token answer read from an SSO authority.
    pub upstream_body_limit_bytes: usize,
}

impl SsoConfig {
    /// The DNS server of `dns_server`, `None` for the system's (checked by `validate`).
    pub fn dns_server(&self) -> Option<SocketAddr> {
        self.dns_server.trim().parse().ok()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

/// A value of an environment variable as figment reads one ("1024" is a number, "true" a
/// boolean, `[…]` an array, `"…"` a string with escapes), except text holding both a
/// backslash and a non-ASCII character, which is taken as written: figment 0.10's unescaping
/// counts characters where it means bytes and panics on it (or shifts the text).
fn env_value(raw: &str) -> figment::value::Value {
    if raw.contains('\\') && !raw.is_ascii() {
        return figment::value::Value::from(raw.to_string());
    }
    raw.parse()
        .unwrap_or_else(|_| figment::value::Value::from(raw.to_string()))
}

/// The `GOTTHARD_*` variables as figment's `Env` finds them, their values read by
/// [`env_value`].
struct Environment(Env);

impl figment::Provider for Environment {
    fn metadata(&self) -> figment::Metadata {
        self.0.metadata()
    }

    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        let mut values = Figment::new();
        for (key, value) in self.0.iter() {
            values = values.merge(Serialized::default(key.as_str(), env_value(&value)));
        }
        values.data()
    }
}

/// Names the key of a figment error as the config file spells it and as its environment
/// variable, whichever source it came from.
fn describe(error: figment::Error) -> String {
    let path: Vec<String> = error.path.iter().map(|p| p.to_lowercase()).collect();
    let key = path.join(".");
    let env = format!("GOTTHARD_{}", path.join("__").to_uppercase());
    let source = error
        .metadata
        .as_ref()
        .map(|m| format!(" (from {})", m.name))
        .unwrap_or_default();
    format!("key `{key}` (env {env}){source}: {}", error.kind)
}

/// A configuration error names the key (and its environment variable) that is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Parse(String),
    #[error("configuration key `{key}` (env {env}): {message}")]
    Invalid {
        key: &'static str,
        env: &'static str,
        message: String,
    },
}

fn invalid(key: &'static str, env: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        env,
        message: message.into(),
    }
}

impl Config {
    /// Loads defaults, then `file`, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, Env::prefixed("GOTTHARD_"))
    }

    /// Defaults plus an explicit list of `GOTTHARD_*`-style overrides (tests use this instead of
    /// mutating the process environment).
    pub fn from_overrides(pairs: &[(&str, &str)]) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        for (key, value) in pairs {
            // Parsed like environment values: "1024" is a number, "true" a boolean.
            figment = figment.merge(Serialized::default(key, env_value(value)));
        }
        Self::finish(figment)
    }

    fn load_from(file: Option<&Path>, env: Env) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError::Parse(format!(
                    "config file {} does not exist",
                    file.display()
                )));
            }
            figment = figment.merge(Toml::file(file));
        }
        // GOTTHARD_TEST_* belong to the test harness, not to the server.
        let env = env
            .split("__")
            .filter(|key| !key.as_str().to_ascii_lowercase().starts_with("test_"));
        Self::finish(figment.merge(Environment(env)))
    }

    fn finish(figment: Figment) -> Result<Self, ConfigError> {
        let config: Config = figment.extract().map_err(|e| {
            let messages: Vec<String> = e.into_iter().map(describe).collect();
            ConfigError::Parse(messages.join("; "))
        })?;
        config.validate()
    }

    /// The database URL in effect: the configured one, or the SQLite file under `data_dir`.
    pub fn database_url(&self) -> String {
        if self.database.url.is_empty() {
            format!("sqlite:{}", self.data_dir.join("gotthard.db").display())
        } else {
            self.database.url.clone()
        }
    }

    /// Cookies and HSTS depend on whether the public URL is https.
    pub fn is_https(&self) -> bool {
        self.issuer.starts_with("https://")
    }

    pub fn hash_threads(&self) -> usize {
        if self.password.hash_threads > 0 {
            self.password.hash_threads
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        }
    }
}

#[cfg(test)]
mod tests;
