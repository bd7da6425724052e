//! Gotthard: identity provider and auth gateway. This file wires the modules: the state the
//! handlers share, the router with its layers, and the server loop.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod accounts;
pub mod api;
pub mod audit;
pub mod avatars;
pub mod clock;
pub mod config;
pub mod error;
pub mod federation;
#[cfg(test)]
mod fuzz;
pub mod http;
pub mod i18n;
#[cfg(test)]
mod layers;
pub mod mail;
pub mod oidc;
pub mod ops;
pub mod orgs;
pub mod outbound;
pub mod sessions;
pub mod signin;
pub mod store;
pub mod tokens;
pub mod web;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Request, StatusCode, header};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::accounts::{
    Accounts, FirstStart, LockoutPolicy, MailContext, PasswordHasher, PasswordPolicy,
};
use crate::audit::ActivityLog;
use crate::clock::Clock;
use crate::config::{Config, LogFormat};
use crate::federation::{Discovery, Federation, UpstreamSecrets};
use crate::http::{Pages, rate_limit::RateLimits};
use crate::mail::Mailer;
use crate::oidc::{CacheScope, Provider};
use crate::ops::Metrics;
use crate::orgs::{DnsChallenges, OrgDomains, Orgs, RecheckPolicy, SsoConnections};
use crate::outbound::AllowedHosts;
use crate::sessions::{SessionPolicy, Sessions};
use crate::signin::SignIn;
use crate::store::Store;
use crate::store::cache::SharedCache;
use crate::tokens::{Keyring, SigningKeys};

/// What handlers share: one `Arc`, so that the clones axum makes per request (each
/// `from_fn_with_state` layer, each `State` extractor: dozens per request) cost one atomic
/// increment, not a copy of every service and its strings (measured: ~500 allocations per
/// introspection before, see BENCHMARKS.md).
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The services and settings behind [`AppState`].
pub struct Services {
    pub config: Arc<Config>,
    /// Reached only through the services (and the probes below): handlers never use it.
    store: Arc<dyn Store>,
    pub accounts: Accounts,
    pub sessions: Sessions,
    /// The sign-in sequences (password, first administrator).
    pub signin: SignIn,
    pub activity: ActivityLog,
    pub orgs: Orgs,
    pub mailer: Mailer,
    pub first_start: FirstStart,
    pub keyring: Arc<Keyring>,
    pub pages: Arc<Pages>,
    pub metrics: Arc<Metrics>,
    pub rate_limits: Arc<RateLimits>,
    pub provider: Provider,
    /// Wakes the back-channel logout sender when a session ends here.
    pub backchannel: Arc<tokio::sync::Notify>,
    pub clock: Clock,
    /// Organizations' SSO connections (Entra ID tenants).
    pub sso: SsoConnections,
    /// Organizations' e-mail domains and their verification.
    pub domains: OrgDomains,
    /// The relying party towards those tenants.
    pub federation: Federation,
    /// Redis, when several instances share it.
    pub shared: Option<SharedCache>,
    /// Uploaded avatars and the initials images.
    pub avatars: avatars::Avatars,
}

impl Services {
    /// The readiness probe: a cheap round trip to the database.
    pub async fn ready(&self) -> Result<(), store::StoreError> {
        self.store.ping().await
    }

    /// Which database backs this instance (SQLite or PostgreSQL).
    pub fn database_backend(&self) -> store::Backend {
        self.store.backend()
    }
}

impl AppState {
    /// For short-lived processes (the CLI): tells running instances, before the process
    /// exits, that it revoked something (deleted a client, ended sessions), so they drop what
    /// they remember now rather than within 5 s. A server's own feed does this as it goes.
    pub async fn announce_revocations(&self) {
        if let Some(shared) = &self.shared
            && self.provider.revoked_here()
            && !shared.announce_revocation().await
        {
            tracing::warn!(
                "Redis unreachable: running instances may trust what this command revoked for up to 5 s"
            );
        }
    }

    /// Opens the database (running migrations), the keys and the hashing pool.
    pub async fn open(config: Config, hash_threads: usize) -> anyhow::Result<Self> {
        Ok(Self::open_with_store(config, hash_threads).await?.0)
    }

    /// [`open`](Self::open), handing back the store as well: for the integration tests,
    /// which set up and inspect rows directly. Nothing in the crate calls it (handlers reach
    /// the store only through the services).
    #[doc(hidden)]
    pub async fn open_with_store(
        config: Config,
        hash_threads: usize,
    ) -> anyhow::Result<(Self, Arc<dyn Store>)> {
        let keyring = Keyring::load_or_create(&config.keys.dir)?;
        let clock = Clock::default();
        let signing = Arc::new(SigningKeys::load_or_create(
            &config.keys.dir,
            config.oidc.key_retention(),
            clock.now(),
        )?);
        if config.database.url.is_empty() {
            // The default SQLite file lives there: a folder of ours alone.
            store::files::ensure_private_dir(&config.data_dir).with_context(|| {
                format!("cannot create data folder {}", config.data_dir.display())
            })?;
        }
        let url = config.database_url();
        let store = store::connect_with(
            &url,
            config.database.max_connections,
            Duration::from_secs(config.database.acquire_timeout_secs),
        )
        .await
        .with_context(|| format!("cannot open database {}", redact(&url)))?;
        store.migrate().await.context("database migration failed")?;
        // A check still queued when its request timed out (408) is dropped, not hashed.
        let hasher = PasswordHasher::start(&config.password, hash_threads)?
            .with_max_wait(Duration::from_secs(config.http.request_timeout_secs));
        let pages = Arc::new(Pages::load()?);
        let mail_context = MailContext {
            issuer: config.issuer.clone(),
            i18n: pages.i18n.clone(),
            unlock_link_ttl: time::Duration::minutes(config.lockout.unlock_link_ttl_minutes),
            password_reset_ttl: time::Duration::minutes(config.accounts.password_reset_ttl_minutes),
        };
        let mailer = Mailer::new(store.clone(), &config)?;
        let shared = if config.redis.url.is_empty() {
            None
        } else {
            Some(
                SharedCache::start(&config.redis.url, &config.redis.prefix).map_err(|e| {
                    anyhow::anyhow!("configuration key `redis.url` (env GOTTHARD_REDIS__URL): {e}")
                })?,
            )
        };
        // Re-checks of signed-in users' passwords are limited per account and per network.
        let rate_limits = Arc::new(RateLimits::new(&config.rate_limit, shared.clone()));
        let accounts = Accounts::new(
            store.clone(),
            hasher,
            PasswordPolicy {
                min_length: config.password.min_length,
            },
            LockoutPolicy {
                min_threshold: config.lockout.min_threshold,
                max_threshold: config.lockout.max_threshold,
                default_threshold: config.lockout.default_threshold,
            },
            mail_context.clone(),
            rate_limits.clone(),
        );
        let first_start = FirstStart::new(
            store.clone(),
            accounts.clone(),
            config.issuer.clone(),
            time::Duration::minutes(config.setup.link_ttl_minutes),
        );
        let session_policy = SessionPolicy {
            idle_timeout: config.sessions.idle_timeout(),
            absolute_lifetime: config.sessions.absolute_lifetime(),
            touch_interval: config.sessions.touch_interval(),
        };
        let secrets = Arc::new(UpstreamSecrets::load_or_create(&config.keys.dir)?);
        let allowed = AllowedHosts::new(&config.sso.authority_allow_hosts);
        let sso = SsoConnections::new(store.clone(), secrets.clone(), allowed.clone());
        let domains = OrgDomains::new(
            store.clone(),
            Arc::new(DnsChallenges::new(
                config.sso.dns_server(),
                Duration::from_secs(config.sso.dns_timeout_secs),
            )),
            RecheckPolicy {
                every: time::Duration::hours(config.sso.domain_recheck_hours),
                withdraw_after: config.sso.domain_withdraw_after,
            },
        );
        let federation = Federation::new(
            store.clone(),
            sso.clone(),
            accounts.clone(),
            secrets,
            &config.issuer,
            Discovery::new(allowed, config.sso.upstream_body_limit_bytes)?,
        )?;
        let sessions = Sessions::new(store.clone(), session_policy, mail_context);
        let signin = SignIn::new(
            accounts.clone(),
            first_start.clone(),
            federation.clone(),
            sessions.clone(),
        );
        // As many decodes at once as there are cores: uploads never take more.
        let decode_threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let avatars = avatars::Avatars::new(store.clone(), &config.issuer, decode_threads)?;
        let state = Self(Arc::new(Services {
            avatars,
            sso,
            domains,
            federation,
            mailer,
            sessions,
            signin,
            provider: Provider::new(
                store.clone(),
                signing,
                &config.issuer,
                config.oidc.clone(),
                session_policy,
                // Without Redis, Gotthard runs as one instance (DESIGN: Scaling out).
                match &shared {
                    None => CacheScope::SingleInstance,
                    // Started by `serve`: commands need not listen (they announce on exit).
                    Some(shared) => {
                        CacheScope::Shared(shared.revocation_feed(store.revocations().clone()))
                    }
                },
            ),
            backchannel: Arc::new(tokio::sync::Notify::new()),
            activity: ActivityLog::new(store.clone(), config.activity.retention()),
            orgs: Orgs::new(store.clone()),
            first_start,
            accounts,
            store: store.clone(),
            keyring: Arc::new(keyring),
            pages,
            metrics: Arc::new(Metrics::new()),
            rate_limits,
            shared,
            clock,
            config: Arc::new(config),
        }));
        Ok((state, store))
    }
}

/// Hides the password of a database URL in messages.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

/// The whole HTTP surface with its layers.
pub fn router(state: AppState) -> Router {
    let config = &state.config;
    let request_id = HeaderName::from_static("x-request-id");
    let mut security_headers = vec![
        (
            header::CONTENT_SECURITY_POLICY,
            // No inline script or style anywhere (the one script is the account pages' file);
            // forms post only to us; never framed. (The OIDC provider must widen form-action
            // for the redirect that follows a login POST to a relying party: Chrome applies
            // it to redirects.)
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    if config.is_https() {
        security_headers.push((
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=63072000; includeSubDomains",
        ));
    }
    let mut app = Router::new()
        .merge(web::routes())
        .merge(oidc::http::routes())
        .merge(ops::routes())
        .nest("/api/v1", api::routes())
        .fallback(web::not_found)
        // Runs every handler to completion even when its client goes away: a dropped
        // request future could otherwise leave a pooled PostgreSQL connection inside an
        // open transaction (sqlx 0.8.6 cancelling `begin`, launchbadge/sqlx#4393), and the
        // writes that later ride on it would be lost.
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(tokio::sync::Semaphore::new(
                config.http.max_requests_in_flight,
            )),
            run_to_completion,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            http::rate_limit::limit_sign_in,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            http::error_pages,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            ops::track,
        ));
    for (name, value) in security_headers {
        app = app.layer(SetResponseHeaderLayer::if_not_present(
            name,
            HeaderValue::from_static(value),
        ));
    }
    let timeout = Duration::from_secs(config.http.request_timeout_secs);
    let body_limit = config.http.body_limit_bytes;
    app.layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
            .layer(
                TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                    let id = request
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    tracing::info_span!(
                        "request",
                        method = %request.method(),
                        path = %request.uri().path(),
                        request_id = %id,
                    )
                }),
            )
            .layer(PropagateRequestIdLayer::new(request_id))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                timeout,
            ))
            // Bodies are read only by extractors, which this limit bounds (413 page).
            .layer(DefaultBodyLimit::max(body_limit)),
    )
    .merge(oidc::http::public_routes())
    .with_state(state)
}

/// Runs the rest of the request in its own task, which neither a client disconnect nor the
/// request timeout cancels (cancelling could poison a pooled connection, see `router`). That
/// task may outlive its request (the client got its 408), so the work is bounded instead:
/// at most `http.max_requests_in_flight` such tasks at once, counting those whose client is
/// gone, and a new request beyond that is answered 503 at once instead of piling up; each
/// task's waits are bounded too (database pool acquisition, password checks dropped once
/// they waited past the request timeout, timeouts on outgoing calls).
async fn run_to_completion(
    axum::extract::State(in_flight): axum::extract::State<Arc<tokio::sync::Semaphore>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let Ok(permit) = in_flight.try_acquire_owned() else {
        tracing::warn!("too many requests still running; answering 503");
        return axum::response::IntoResponse::into_response(error::WebError::Busy);
    };
    let work = async move {
        let response = next.run(request).await;
        drop(permit);
        response
    };
    match tokio::spawn(work).await {
        Ok(response) => response,
        Err(err) => {
            tracing::error!(error = %err, "request task failed");
            axum::response::IntoResponse::into_response(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

/// Serves until `shutdown` resolves, then finishes the requests in flight.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    state.provider.start_revocation_feed();
    let maintenance = tokio::spawn(maintenance(state.clone()));
    let mail = tokio::spawn(send_mail(state.clone()));
    let logouts = tokio::spawn(send_logouts(state.clone()));
    let app = router(state);
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    maintenance.abort();
    mail.abort();
    logouts.abort();
    served
}

/// Background task: delivers due mail from the outbox every `smtp.poll_interval_secs`.
async fn send_mail(state: AppState) {
    let mut ticks =
        tokio::time::interval(Duration::from_secs(state.config.smtp.poll_interval_secs));
    loop {
        ticks.tick().await;
        if let Err(err) = state.mailer.deliver_due(state.clock.now()).await {
            tracing::warn!(error = %err, "mail outbox unreachable; retrying");
        }
    }
}

/// Background task: sends queued back-channel logout tokens, when a session ends here, when
/// a delivery finishes, and every `oidc.backchannel_poll_interval_secs` (sessions end on
/// other instances too).
async fn send_logouts(state: AppState) {
    let mut sender = match oidc::LogoutSender::new(state.provider.clone(), state.clock.clone()) {
        Ok(sender) => sender,
        Err(err) => {
            tracing::error!(error = %err, "cannot build the HTTP client for back-channel logout");
            return;
        }
    };
    let every = Duration::from_secs(state.config.oidc.backchannel_poll_interval_secs.max(1));
    loop {
        if let Err(err) = sender.send_due().await {
            tracing::warn!(error = %err, "back-channel logout queue unreachable; retrying");
        }
        sender.wait(every, &state.backchannel).await;
    }
}

/// Background task, every `maintenance.interval_minutes`: [`maintain`].
async fn maintenance(state: AppState) {
    let every = state.config.maintenance.interval();
    let mut ticks = tokio::time::interval(every);
    loop {
        ticks.tick().await;
        maintain(&state).await;
    }
}

/// One maintenance tick: deletes ended and expired sessions, expired codes and tokens, SSO
/// state, activity past its retention and sent mail past its own, in small batches; forgets
/// idle rate-limit counters and reloads the signing keys.
pub async fn maintain(state: &AppState) {
    match state.sessions.prune(state.clock.now()).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(deleted = n, "pruned ended and expired sessions"),
        Err(err) => tracing::warn!(error = %err, "session pruning failed; retrying later"),
    }
    state.rate_limits.forget_idle();
    if let Err(err) = state.provider.keys().reload(state.clock.now()) {
        tracing::warn!(error = %err, "signing keys could not be reloaded; keeping the loaded ones");
    }
    match state.provider.prune(state.clock.now()).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(deleted = n, "pruned expired codes and tokens"),
        Err(err) => tracing::warn!(error = %err, "token pruning failed; retrying later"),
    }
    if let Err(err) = state.federation.prune(state.clock.now()).await {
        tracing::warn!(error = %err, "SSO state pruning failed; retrying later");
    }
    if let Err(err) = state.domains.recheck_due(state.clock.now()).await {
        tracing::warn!(error = %err, "domain re-checks failed; retrying later");
    }
    match state.activity.prune(state.clock.now()).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(deleted = n, "pruned activity past its retention"),
        Err(err) => tracing::warn!(error = %err, "activity pruning failed; retrying later"),
    }
    match state.accounts.prune_links(state.clock.now()).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(deleted = n, "pruned expired password and e-mail links"),
        Err(err) => tracing::warn!(error = %err, "link pruning failed; retrying later"),
    }
    match state.mailer.prune(state.clock.now()).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(deleted = n, "pruned sent mail past its retention"),
        Err(err) => tracing::warn!(error = %err, "mail pruning failed; retrying later"),
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

/// Structured logs to stderr, as text or JSON lines.
pub fn init_tracing(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    /// Work that outlives its request (answered 408) still counts against the bound, and a
    /// request beyond it is answered 503 at once; once the work ends, requests go through.
    #[tokio::test]
    async fn work_past_the_timeout_is_bounded() {
        let app = Router::new()
            .route(
                "/slow",
                axum::routing::get(|| async {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    "slow"
                }),
            )
            .route("/fast", axum::routing::get(|| async { "fast" }))
            .layer(axum::middleware::from_fn_with_state(
                Arc::new(tokio::sync::Semaphore::new(1)),
                run_to_completion,
            ))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                Duration::from_millis(50),
            ));
        let get = |path: &str| {
            axum::http::Request::builder()
                .uri(path)
                .body(axum::body::Body::empty())
                .unwrap()
        };
        let slow = app.clone().oneshot(get("/slow")).await.unwrap();
        assert_eq!(slow.status(), StatusCode::REQUEST_TIMEOUT);
        let refused = app.clone().oneshot(get("/fast")).await.unwrap();
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(refused.headers().contains_key(header::RETRY_AFTER));
        tokio::time::sleep(Duration::from_millis(400)).await;
        let fast = app.clone().oneshot(get("/fast")).await.unwrap();
        assert_eq!(fast.status(), StatusCode::OK);
    }
}
