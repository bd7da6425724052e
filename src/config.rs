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
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    /// Every key of the embedded defaults, as `section.key` (or `key` at the top).
    fn known_keys() -> Vec<String> {
        let mut section = String::new();
        let mut keys = Vec::new();
        for line in DEFAULT_TOML.lines() {
            let line = line.trim();
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = format!("{name}.");
            } else if let Some((key, _)) = line.split_once('=')
                && !line.starts_with('#')
            {
                keys.push(format!("{section}{}", key.trim()));
            }
        }
        keys
    }

    /// A TOML value as an operator (or a broken template) could write it.
    fn toml_value() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => any::<i64>().prop_map(|n| n.to_string()),
            4 => (-2i64..100_000).prop_map(|n| n.to_string()),
            1 => prop::sample::select(vec![
                "9223372036854775807", "-9223372036854775808", "18446744073709551615",
                "99999999999999999999", "0", "-1", "4294967296", "65536", "0x7fffffff",
            ]).prop_map(str::to_string),
            1 => prop::sample::select(vec!["1.5", "-0.0", "inf", "nan", "1e400", "2e9"])
                .prop_map(str::to_string),
            3 => ".{0,30}".prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
            3 => prop::sample::select(vec![
                "\"https://login.example.com\"", "\"http://127.0.0.1:8080/\"", "\"ftp://x\"",
                "\"sqlite:data/x.db\"", "\"postgres://u@h/db\"", "\"redis://127.0.0.1\"",
                "\"smtp://u:p@mail.example.com:25\"", "\"smtps://h:465\"", "\"127.0.0.1:0\"",
                "\"[::1]:8080\"", "\"json\"", "\"text\"", "\"info,gotthard=debug\"", "\"[\"",
                "\"\"", "[\"10.0.0.2\"]", "[\"::1\", \"not an ip\"]", "[]", "[1, \"a\"]",
                "{ a = 1 }", "true", "false", "1979-05-27T07:32:00Z", "\"a\\u0000b\"",
            ]).prop_map(str::to_string),
        ]
    }

    /// Files of known keys (in their sections) with values of any type, plus unknown keys,
    /// or text that is not TOML.
    fn toml_file() -> impl Strategy<Value = String> {
        let key = prop_oneof![
            9 => prop::sample::select(known_keys()),
            1 => "([a-z_]{1,8}\\.)?[a-z_]{1,12}",
        ];
        prop_oneof![
            8 => prop::collection::btree_map(key, toml_value(), 0..6).prop_map(|values| {
                let mut sections: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
                for (path, value) in values {
                    let (section, key) = path.rsplit_once('.').unwrap_or(("", &path));
                    sections
                        .entry(section.to_string())
                        .or_default()
                        .push((key.to_string(), value));
                }
                let mut text = String::new();
                for (section, pairs) in sections {
                    if !section.is_empty() {
                        text.push_str(&format!("[{section}]\n"));
                    }
                    for (key, value) in pairs {
                        text.push_str(&format!("{key} = {value}\n"));
                    }
                }
                text
            }),
            1 => ".{0,200}",
            1 => "(\\[[a-z_.]{0,10}\\]|[a-z_]{1,10} ?= ?[0-9\"a-z\\[\\]{}]{0,10}|\n){0,10}",
        ]
    }

    /// Everything the server derives from a configuration that loaded, computed as it does:
    /// lifetimes added to and taken from a time the calendar holds, intervals of timers.
    fn derive_everything(config: &Config) -> Result<(), TestCaseError> {
        let later = time::macros::datetime!(2100-01-01 0:00 UTC);
        let lifetimes = [
            config.sessions.idle_timeout(),
            config.sessions.absolute_lifetime(),
            config.sessions.touch_interval(),
            config.activity.retention().account,
            config.activity.retention().machine,
            config.oidc.code_ttl(),
            config.oidc.refresh_token_ttl(),
            config.oidc.refresh_grace(),
            config.oidc.key_retention(),
            time::Duration::seconds(config.oidc.access_token_ttl_secs),
            time::Duration::seconds(config.oidc.id_token_ttl_secs),
            time::Duration::hours(config.smtp.sent_retention_hours),
            time::Duration::minutes(config.lockout.unlock_link_ttl_minutes),
            time::Duration::minutes(config.setup.link_ttl_minutes),
            time::Duration::hours(config.sso.domain_recheck_hours),
        ];
        for lifetime in lifetimes {
            prop_assert!(!lifetime.is_negative());
            prop_assert!(
                later.checked_add(lifetime).is_some() && later.checked_sub(lifetime).is_some()
            );
        }
        let start = std::time::Instant::now();
        for interval in [
            config.maintenance.interval(),
            std::time::Duration::from_secs(config.smtp.poll_interval_secs),
            std::time::Duration::from_secs(config.oidc.backchannel_poll_interval_secs),
            std::time::Duration::from_secs(config.http.request_timeout_secs),
        ] {
            prop_assert!(!interval.is_zero());
            // A timer adds its period again at every tick.
            let ticks = interval
                .checked_mul(1000)
                .and_then(|d| start.checked_add(d));
            prop_assert!(ticks.is_some());
        }
        prop_assert!(config.hash_threads() >= 1);
        Ok(())
    }

    fn check(loaded: Result<Config, ConfigError>) -> Result<(), TestCaseError> {
        match loaded {
            Ok(config) => derive_everything(&config),
            Err(ConfigError::Invalid { key, env, .. }) => {
                prop_assert!(known_keys().iter().any(|k| k == key), "{key}");
                prop_assert_eq!(
                    env,
                    format!("GOTTHARD_{}", key.replace('.', "__").to_uppercase())
                );
                Ok(())
            }
            Err(ConfigError::Parse(message)) => {
                prop_assert!(!message.is_empty());
                Ok(())
            }
        }
    }

    proptest! {
        #![proptest_config(crate::fuzz::config(128))]

        /// A configuration file of any content: a configuration whose every derived lifetime
        /// and interval exists, or an error naming the key (and its environment variable).
        #[test]
        fn fuzz_config_file_of_any_content(file in toml_file()) {
            let figment = Figment::from(Toml::string(DEFAULT_TOML)).merge(Toml::string(&file));
            check(Config::finish(figment))?;
        }

        /// Environment overrides of any key with any text.
        #[test]
        fn fuzz_config_environment_values(
            pairs in prop::collection::vec(
                (
                    prop_oneof![9 => prop::sample::select(known_keys()), 1 => "[a-z_.]{1,20}"],
                    prop_oneof![
                        toml_value(),
                        any::<u64>().prop_map(|n| n.to_string()),
                        ".{0,20}",
                    ],
                ),
                0..4,
            )
        ) {
            let pairs: Vec<(&str, &str)> =
                pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            check(Config::from_overrides(&pairs))?;
        }

        /// Every number a key accepts loads as written (the defaults' file round-trips).
        #[test]
        fn fuzz_config_round_trip(
            ttl in 1i64..=86_400,
            days in 1i64..=3_660,
            idle in 1i64..=527_040,
        ) {
            let file = format!(
                "[oidc]\naccess_token_ttl_secs = {ttl}\nrefresh_token_ttl_days = {days}\n\
                 [sessions]\nidle_timeout_minutes = {idle}\n"
            );
            let figment = Figment::from(Toml::string(DEFAULT_TOML)).merge(Toml::string(&file));
            let config = Config::finish(figment).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(config.oidc.access_token_ttl_secs, ttl);
            prop_assert_eq!(config.oidc.refresh_token_ttl_days, days);
            prop_assert_eq!(config.sessions.idle_timeout_minutes, idle);
        }
    }

    /// Found by `fuzz_config_environment_values`: a quoted value with a non-ASCII character
    /// before a backslash panicked inside figment instead of loading or naming its key.
    #[test]
    fn environment_text_with_backslash_and_non_ascii_is_taken_as_written() {
        for value in ["\"¡\\u0000\"", "\"café\\n\"", "[\"é\\t\"]"] {
            let err = Config::from_overrides(&[("issuer", value)])
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("GOTTHARD_ISSUER"), "{value}: {err}");
        }
        let config = Config::from_overrides(&[("smtp.from", "\"Café\\\" <a@b.c>")]).unwrap();
        assert_eq!(config.smtp.from, "\"Café\\\" <a@b.c>");
    }

    /// Found by `scripts/fuzz` (a million cases of both `fuzz_config_*`): a `log.level`
    /// directive with white space before a non-ASCII character panicked inside
    /// tracing-subscriber instead of loading or naming the key.
    #[test]
    fn log_levels_with_white_space_before_non_ascii_do_not_panic() {
        for level in [
            "\u{b}À=",
            "\u{b}ァ[",
            "info, \u{b}ァ=debug",
            " gotthard=debug , info",
        ] {
            match Config::from_overrides(&[("log.level", level)]) {
                Ok(config) => assert!(!config.log.level.contains(char::is_whitespace)),
                Err(err) => assert!(err.to_string().contains("log.level"), "{level}: {err}"),
            }
        }
    }

    /// Found by `fuzz_config_environment_values`: these loaded, then panicked at start-up
    /// (a lifetime past what `time::Duration` holds) or on the first token (a date past the
    /// calendar's end), or made tokens that were born expired.
    #[test]
    fn lifetimes_out_of_range_are_refused_with_their_key() {
        for (key, value) in [
            ("sessions.idle_timeout_minutes", "9223372036854775807"),
            ("sessions.absolute_lifetime_hours", "9223372036854775807"),
            ("activity.retention_days", "9223372036854775807"),
            ("oidc.refresh_token_ttl_days", "9223372036854775807"),
            ("oidc.access_token_ttl_secs", "9223372036854775807"),
            ("oidc.access_token_ttl_secs", "-300"),
            ("oidc.code_ttl_secs", "0"),
            ("maintenance.interval_minutes", "307445734561825861"),
            (
                "oidc.backchannel_poll_interval_secs",
                "18446744073709551615",
            ),
            ("password.queue_limit", "18446744073709551615"),
        ] {
            let err = Config::from_overrides(&[(key, value)])
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(key), "{key} = {value}: {err}");
        }
    }

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
