//! Typed configuration: `config/default.toml` (embedded) < `--config FILE` < `GOTTHARD_*` env.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

/// The embedded defaults; the same file documents every key and its environment name.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// OWASP's minimum argon2id parameters (Password Storage Cheat Sheet).
pub const MIN_MEMORY_KIB: u32 = 19_456;
pub const MIN_ITERATIONS: u32 = 2;

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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityConfig {
    pub retention_days: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceConfig {
    pub interval_minutes: u64,
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

impl SsoConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !self.dns_server.trim().is_empty() && self.dns_server().is_none() {
            return Err(invalid(
                "sso.dns_server",
                "GOTTHARD_SSO__DNS_SERVER",
                "must be `ip:port` (e.g. `127.0.0.1:53`) or empty for the system's resolver",
            ));
        }
        if !(1..=30).contains(&self.dns_timeout_secs) {
            return Err(invalid(
                "sso.dns_timeout_secs",
                "GOTTHARD_SSO__DNS_TIMEOUT_SECS",
                "must be between 1 and 30",
            ));
        }
        if !(1..=24 * 30).contains(&self.domain_recheck_hours) {
            return Err(invalid(
                "sso.domain_recheck_hours",
                "GOTTHARD_SSO__DOMAIN_RECHECK_HOURS",
                "must be between 1 and 720",
            ));
        }
        if !(1..=100).contains(&self.domain_withdraw_after) {
            return Err(invalid(
                "sso.domain_withdraw_after",
                "GOTTHARD_SSO__DOMAIN_WITHDRAW_AFTER",
                "must be between 1 and 100",
            ));
        }
        if !(4096..=16 << 20).contains(&self.upstream_body_limit_bytes) {
            return Err(invalid(
                "sso.upstream_body_limit_bytes",
                "GOTTHARD_SSO__UPSTREAM_BODY_LIMIT_BYTES",
                "must be between 4096 and 16777216",
            ));
        }
        Ok(())
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
            let value: figment::value::Value = value
                .parse()
                .unwrap_or_else(|_| figment::value::Value::from(value.to_string()));
            figment = figment.merge(figment::providers::Serialized::default(key, value));
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
        Self::finish(figment.merge(env))
    }

    fn finish(figment: Figment) -> Result<Self, ConfigError> {
        let config: Config = figment.extract().map_err(|e| {
            let messages: Vec<String> = e.into_iter().map(describe).collect();
            ConfigError::Parse(messages.join("; "))
        })?;
        config.validate()
    }

    fn validate(mut self) -> Result<Self, ConfigError> {
        let issuer = self.issuer.trim().trim_end_matches('/').to_string();
        let parsed = url::Url::parse(&issuer)
            .map_err(|e| invalid("issuer", "GOTTHARD_ISSUER", format!("not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
            return Err(invalid(
                "issuer",
                "GOTTHARD_ISSUER",
                "must be an http:// or https:// URL with a host",
            ));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(invalid(
                "issuer",
                "GOTTHARD_ISSUER",
                "must not have a query or fragment",
            ));
        }
        self.issuer = issuer;

        let url = self.database.url.trim().to_string();
        if !(url.is_empty()
            || url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "database.url",
                "GOTTHARD_DATABASE__URL",
                "must start with sqlite:, postgres:// or postgresql://",
            ));
        }
        self.database.url = url;
        if self.database.max_connections == 0 {
            return Err(invalid(
                "database.max_connections",
                "GOTTHARD_DATABASE__MAX_CONNECTIONS",
                "must be at least 1",
            ));
        }
        if !(self.redis.url.is_empty()
            || self.redis.url.starts_with("redis://")
            || self.redis.url.starts_with("rediss://"))
        {
            return Err(invalid(
                "redis.url",
                "GOTTHARD_REDIS__URL",
                "must be empty or start with redis:// or rediss://",
            ));
        }
        if !(self.smtp.url.is_empty()
            || self.smtp.url.starts_with("smtp://")
            || self.smtp.url.starts_with("smtps://"))
        {
            return Err(invalid(
                "smtp.url",
                "GOTTHARD_SMTP__URL",
                "must be empty or start with smtp:// or smtps://",
            ));
        }
        if self.smtp.credentials_in_clear() {
            return Err(invalid(
                "smtp.url",
                "GOTTHARD_SMTP__URL",
                "has credentials but no TLS, which would send them (and every unlock link) in \
                 clear: use smtps://… (TLS) or add ?tls=required (STARTTLS); plain smtp:// \
                 with credentials only towards this machine (127.0.0.1, ::1, localhost)",
            ));
        }
        if !(1..=24 * 400).contains(&self.smtp.sent_retention_hours) {
            return Err(invalid(
                "smtp.sent_retention_hours",
                "GOTTHARD_SMTP__SENT_RETENTION_HOURS",
                "must be between 1 and 9600",
            ));
        }
        if !(1..=3600).contains(&self.smtp.poll_interval_secs) {
            return Err(invalid(
                "smtp.poll_interval_secs",
                "GOTTHARD_SMTP__POLL_INTERVAL_SECS",
                "must be between 1 and 3600",
            ));
        }
        let p = &self.password;
        if p.memory_kib < MIN_MEMORY_KIB {
            return Err(invalid(
                "password.memory_kib",
                "GOTTHARD_PASSWORD__MEMORY_KIB",
                format!("must be at least {MIN_MEMORY_KIB} (OWASP minimum for argon2id)"),
            ));
        }
        if p.iterations < MIN_ITERATIONS {
            return Err(invalid(
                "password.iterations",
                "GOTTHARD_PASSWORD__ITERATIONS",
                format!("must be at least {MIN_ITERATIONS}"),
            ));
        }
        if !(1..=16).contains(&p.parallelism) {
            return Err(invalid(
                "password.parallelism",
                "GOTTHARD_PASSWORD__PARALLELISM",
                "must be between 1 and 16",
            ));
        }
        if !(8..=128).contains(&p.min_length) {
            return Err(invalid(
                "password.min_length",
                "GOTTHARD_PASSWORD__MIN_LENGTH",
                "must be between 8 and 128",
            ));
        }
        if p.queue_limit == 0 {
            return Err(invalid(
                "password.queue_limit",
                "GOTTHARD_PASSWORD__QUEUE_LIMIT",
                "must be at least 1",
            ));
        }
        if self.rate_limit.sign_in_per_minute == 0 {
            return Err(invalid(
                "rate_limit.sign_in_per_minute",
                "GOTTHARD_RATE_LIMIT__SIGN_IN_PER_MINUTE",
                "must be at least 1",
            ));
        }
        if self.rate_limit.sign_in_burst == 0 {
            return Err(invalid(
                "rate_limit.sign_in_burst",
                "GOTTHARD_RATE_LIMIT__SIGN_IN_BURST",
                "must be at least 1",
            ));
        }
        if self.rate_limit.reauth_per_minute == 0 {
            return Err(invalid(
                "rate_limit.reauth_per_minute",
                "GOTTHARD_RATE_LIMIT__REAUTH_PER_MINUTE",
                "must be at least 1",
            ));
        }
        if self.rate_limit.reauth_burst == 0 {
            return Err(invalid(
                "rate_limit.reauth_burst",
                "GOTTHARD_RATE_LIMIT__REAUTH_BURST",
                "must be at least 1",
            ));
        }
        if self.rate_limit.ipv4_prefix_len > 32 {
            return Err(invalid(
                "rate_limit.ipv4_prefix_len",
                "GOTTHARD_RATE_LIMIT__IPV4_PREFIX_LEN",
                "must be between 0 and 32",
            ));
        }
        if self.rate_limit.ipv6_prefix_len > 128 {
            return Err(invalid(
                "rate_limit.ipv6_prefix_len",
                "GOTTHARD_RATE_LIMIT__IPV6_PREFIX_LEN",
                "must be between 0 and 128",
            ));
        }
        if !(1..=10_000_000).contains(&self.rate_limit.max_tracked_clients) {
            return Err(invalid(
                "rate_limit.max_tracked_clients",
                "GOTTHARD_RATE_LIMIT__MAX_TRACKED_CLIENTS",
                "must be between 1 and 10000000",
            ));
        }
        if self.http.request_timeout_secs == 0 {
            return Err(invalid(
                "http.request_timeout_secs",
                "GOTTHARD_HTTP__REQUEST_TIMEOUT_SECS",
                "must be at least 1",
            ));
        }
        if !(1..=1_000_000).contains(&self.http.max_requests_in_flight) {
            return Err(invalid(
                "http.max_requests_in_flight",
                "GOTTHARD_HTTP__MAX_REQUESTS_IN_FLIGHT",
                "must be between 1 and 1000000",
            ));
        }
        if self.http.body_limit_bytes < 1024 {
            return Err(invalid(
                "http.body_limit_bytes",
                "GOTTHARD_HTTP__BODY_LIMIT_BYTES",
                "must be at least 1024",
            ));
        }
        self.sso.validate()?;
        let lockout = &self.lockout;
        if !(1..=1000).contains(&lockout.min_threshold) {
            return Err(invalid(
                "lockout.min_threshold",
                "GOTTHARD_LOCKOUT__MIN_THRESHOLD",
                "must be between 1 and 1000",
            ));
        }
        if !(lockout.min_threshold..=1000).contains(&lockout.max_threshold) {
            return Err(invalid(
                "lockout.max_threshold",
                "GOTTHARD_LOCKOUT__MAX_THRESHOLD",
                "must be between lockout.min_threshold and 1000",
            ));
        }
        if !(lockout.min_threshold..=lockout.max_threshold).contains(&lockout.default_threshold) {
            return Err(invalid(
                "lockout.default_threshold",
                "GOTTHARD_LOCKOUT__DEFAULT_THRESHOLD",
                "must be between lockout.min_threshold and lockout.max_threshold",
            ));
        }
        if !(1..=7 * 24 * 60).contains(&lockout.unlock_link_ttl_minutes) {
            return Err(invalid(
                "lockout.unlock_link_ttl_minutes",
                "GOTTHARD_LOCKOUT__UNLOCK_LINK_TTL_MINUTES",
                "must be between 1 and 10080",
            ));
        }
        let sessions = &self.sessions;
        if sessions.idle_timeout_minutes < 1 {
            return Err(invalid(
                "sessions.idle_timeout_minutes",
                "GOTTHARD_SESSIONS__IDLE_TIMEOUT_MINUTES",
                "must be at least 1",
            ));
        }
        if sessions.absolute_lifetime_hours < 1 {
            return Err(invalid(
                "sessions.absolute_lifetime_hours",
                "GOTTHARD_SESSIONS__ABSOLUTE_LIFETIME_HOURS",
                "must be at least 1",
            ));
        }
        if !(1..=3600).contains(&sessions.touch_interval_secs) {
            return Err(invalid(
                "sessions.touch_interval_secs",
                "GOTTHARD_SESSIONS__TOUCH_INTERVAL_SECS",
                "must be between 1 and 3600",
            ));
        }
        if self.activity.retention_days < 1 {
            return Err(invalid(
                "activity.retention_days",
                "GOTTHARD_ACTIVITY__RETENTION_DAYS",
                "must be at least 1",
            ));
        }
        if self.maintenance.interval_minutes < 1 {
            return Err(invalid(
                "maintenance.interval_minutes",
                "GOTTHARD_MAINTENANCE__INTERVAL_MINUTES",
                "must be at least 1",
            ));
        }
        if !(1..=24 * 60).contains(&self.setup.link_ttl_minutes) {
            return Err(invalid(
                "setup.link_ttl_minutes",
                "GOTTHARD_SETUP__LINK_TTL_MINUTES",
                "must be between 1 and 1440",
            ));
        }
        let oidc = &self.oidc;
        if !(1..=30).contains(&oidc.backchannel_max_attempts) {
            return Err(invalid(
                "oidc.backchannel_max_attempts",
                "GOTTHARD_OIDC__BACKCHANNEL_MAX_ATTEMPTS",
                "must be between 1 and 30",
            ));
        }
        if !(1..=86_400).contains(&oidc.backchannel_retry_base_secs) {
            return Err(invalid(
                "oidc.backchannel_retry_base_secs",
                "GOTTHARD_OIDC__BACKCHANNEL_RETRY_BASE_SECS",
                "must be between 1 and 86400",
            ));
        }
        if !(1..=64).contains(&oidc.backchannel_per_receiver) {
            return Err(invalid(
                "oidc.backchannel_per_receiver",
                "GOTTHARD_OIDC__BACKCHANNEL_PER_RECEIVER",
                "must be between 1 and 64",
            ));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(invalid(
                "log.level",
                "GOTTHARD_LOG__LEVEL",
                "not a valid tracing filter",
            ));
        }
        Ok(self)
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
mod tests {
    use super::*;

    #[test]
    fn defaults_load_and_validate() {
        let config = Config::from_overrides(&[]).unwrap();
        assert_eq!(config.http.bind.to_string(), "127.0.0.1:8080");
        assert!(config.database_url().ends_with("gotthard.db"));
        assert!(!config.is_https());
    }

    #[test]
    fn bad_value_names_the_key() {
        let err = Config::from_overrides(&[("http.bind", "not-an-address")])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("http.bind"), "{err}");
        let err = Config::from_overrides(&[("password.memory_kib", "1024")])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("GOTTHARD_PASSWORD__MEMORY_KIB"), "{err}");
    }

    #[test]
    fn smtp_credentials_need_tls_unless_on_this_machine() {
        let check = |url: &str| Config::from_overrides(&[("smtp.url", url)]).map(|_| ());
        for refused in [
            "smtp://u:p@mail.example.com:25",
            "smtp://u@mail.example.com:587",
            "smtp://u:p@mail.example.com:587?tls=opportunistic",
            "smtp://u:p@10.0.0.5:25",
            "smtp://u:p@localhost.example.com:25",
        ] {
            let err = check(refused)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                err.contains("smtp.url") && err.contains("GOTTHARD_SMTP__URL"),
                "{refused}: {err}"
            );
            assert!(!err.contains(":p@"), "the password is not repeated: {err}");
        }
        for accepted in [
            "",
            "smtps://u:p@mail.example.com:465",
            "smtp://u:p@mail.example.com:587?tls=required",
            "smtp://u:p@127.0.0.1:2525",
            "smtp://u:p@127.1.2.3:25",
            "smtp://u:p@[::1]:25",
            "smtp://u:p@localhost:25",
            "smtp://u:p@LOCALHOST.:25",
            // No credentials: allowed (an internal relay), with a warning at start-up.
            "smtp://relay.internal:25",
        ] {
            assert!(
                check(accepted).is_ok(),
                "{accepted}: {:?}",
                check(accepted).err().map(|e| e.to_string())
            );
        }
        let plain = Config::from_overrides(&[("smtp.url", "smtp://relay.internal:25")]).unwrap();
        assert!(plain.smtp.plain_towards_another_machine());
    }

    #[test]
    fn unknown_key_is_refused() {
        let err = Config::from_overrides(&[("http.bnd", "127.0.0.1:1")])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("bnd"), "{err}");
    }
}
