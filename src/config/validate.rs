//! The checks of every configuration value: an invalid one stops start-up with a message
//! naming its key and environment variable.

use super::{
    Config, ConfigError, MAX_MEMORY_KIB, MIN_ITERATIONS, MIN_MEMORY_KIB, SsoConfig, invalid,
};

impl Config {
    pub(super) fn validate(mut self) -> Result<Self, ConfigError> {
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
        if !(1..=60).contains(&self.database.acquire_timeout_secs) {
            return Err(invalid(
                "database.acquire_timeout_secs",
                "GOTTHARD_DATABASE__ACQUIRE_TIMEOUT_SECS",
                "must be between 1 and 60",
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
        if p.memory_kib > MAX_MEMORY_KIB {
            return Err(invalid(
                "password.memory_kib",
                "GOTTHARD_PASSWORD__MEMORY_KIB",
                format!("must be at most {MAX_MEMORY_KIB} (4 GiB per hashing thread)"),
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
        if !(1..=1_000_000).contains(&p.queue_limit) {
            // The queue's slots are allocated at start-up.
            return Err(invalid(
                "password.queue_limit",
                "GOTTHARD_PASSWORD__QUEUE_LIMIT",
                "must be between 1 and 1000000",
            ));
        }
        if p.hash_threads > 1024 {
            return Err(invalid(
                "password.hash_threads",
                "GOTTHARD_PASSWORD__HASH_THREADS",
                "must be between 0 (one per CPU) and 1024",
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
        if !(1..=3600).contains(&self.http.request_timeout_secs) {
            return Err(invalid(
                "http.request_timeout_secs",
                "GOTTHARD_HTTP__REQUEST_TIMEOUT_SECS",
                "must be between 1 and 3600",
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
        // OWASP: a reset link is short-lived; a day is the longest an operator may choose.
        if !(1..=24 * 60).contains(&self.accounts.password_reset_ttl_minutes) {
            return Err(invalid(
                "accounts.password_reset_ttl_minutes",
                "GOTTHARD_ACCOUNTS__PASSWORD_RESET_TTL_MINUTES",
                "must be between 1 and 1440",
            ));
        }
        // Upper bounds keep every lifetime a time the calendar holds once added to now.
        let sessions = &self.sessions;
        if !(1..=366 * 24 * 60).contains(&sessions.idle_timeout_minutes) {
            return Err(invalid(
                "sessions.idle_timeout_minutes",
                "GOTTHARD_SESSIONS__IDLE_TIMEOUT_MINUTES",
                "must be between 1 and 527040 (a year)",
            ));
        }
        if !(1..=10 * 366 * 24).contains(&sessions.absolute_lifetime_hours) {
            return Err(invalid(
                "sessions.absolute_lifetime_hours",
                "GOTTHARD_SESSIONS__ABSOLUTE_LIFETIME_HOURS",
                "must be between 1 and 87840 (ten years)",
            ));
        }
        if !(1..=3600).contains(&sessions.touch_interval_secs) {
            return Err(invalid(
                "sessions.touch_interval_secs",
                "GOTTHARD_SESSIONS__TOUCH_INTERVAL_SECS",
                "must be between 1 and 3600",
            ));
        }
        if !(1..=100 * 366).contains(&self.activity.retention_days) {
            return Err(invalid(
                "activity.retention_days",
                "GOTTHARD_ACTIVITY__RETENTION_DAYS",
                "must be between 1 and 36600 (a hundred years)",
            ));
        }
        if !(1..=100 * 366).contains(&self.activity.machine_retention_days) {
            return Err(invalid(
                "activity.machine_retention_days",
                "GOTTHARD_ACTIVITY__MACHINE_RETENTION_DAYS",
                "must be between 1 and 36600 (a hundred years)",
            ));
        }
        if !(1..=24 * 60).contains(&self.maintenance.interval_minutes) {
            return Err(invalid(
                "maintenance.interval_minutes",
                "GOTTHARD_MAINTENANCE__INTERVAL_MINUTES",
                "must be between 1 and 1440",
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
        for (value, range, key, env, message) in [
            (
                oidc.access_token_ttl_secs,
                1..=86_400,
                "oidc.access_token_ttl_secs",
                "GOTTHARD_OIDC__ACCESS_TOKEN_TTL_SECS",
                "must be between 1 and 86400",
            ),
            (
                oidc.id_token_ttl_secs,
                1..=86_400,
                "oidc.id_token_ttl_secs",
                "GOTTHARD_OIDC__ID_TOKEN_TTL_SECS",
                "must be between 1 and 86400",
            ),
            (
                // RFC 6749 §4.1.2: a maximum of 10 minutes is recommended.
                oidc.code_ttl_secs,
                1..=600,
                "oidc.code_ttl_secs",
                "GOTTHARD_OIDC__CODE_TTL_SECS",
                "must be between 1 and 600",
            ),
            (
                oidc.refresh_token_ttl_days,
                1..=3_660,
                "oidc.refresh_token_ttl_days",
                "GOTTHARD_OIDC__REFRESH_TOKEN_TTL_DAYS",
                "must be between 1 and 3660",
            ),
            (
                oidc.refresh_grace_secs,
                0..=3_600,
                "oidc.refresh_grace_secs",
                "GOTTHARD_OIDC__REFRESH_GRACE_SECS",
                "must be between 0 and 3600",
            ),
        ] {
            if !range.contains(&value) {
                return Err(invalid(key, env, message));
            }
        }
        if !(1..=3_600).contains(&oidc.backchannel_poll_interval_secs) {
            return Err(invalid(
                "oidc.backchannel_poll_interval_secs",
                "GOTTHARD_OIDC__BACKCHANNEL_POLL_INTERVAL_SECS",
                "must be between 1 and 3600",
            ));
        }
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
        // Each directive trimmed: tracing-subscriber 0.3 walks a directive trimmed but cuts
        // it untrimmed, and panics when leading white space precedes a non-ASCII character.
        self.log.level = self
            .log
            .level
            .split(',')
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(",");
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(invalid(
                "log.level",
                "GOTTHARD_LOG__LEVEL",
                "not a valid tracing filter",
            ));
        }
        Ok(self)
    }
}

impl SsoConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
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
