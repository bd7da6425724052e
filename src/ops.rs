//! Operations: `/healthz`, `/readyz`, `/metrics` (Prometheus text) and request metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::AppState;
use crate::http::LoginOutcome;

/// Every label value comes from a fixed set (methods) or from the router (route templates),
/// never from the request as sent: a series is never removed, so a label that a client could
/// choose would grow memory without bound.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueStateLabels {
    state: &'static str,
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabels, Histogram>,
    logins: Family<OutcomeLabels, Counter>,
    argon2_queue: Gauge,
    password_hashes: Counter,
    token_checks_remembered: Gauge,
    backchannel_logouts: Family<QueueStateLabels, Gauge>,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("gotthard");
        let requests = Family::<RequestLabels, Counter>::default();
        let durations = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ])
        });
        let logins = Family::<OutcomeLabels, Counter>::default();
        let argon2_queue = Gauge::default();
        let password_hashes = Counter::default();
        let token_checks_remembered = Gauge::default();
        let backchannel_logouts = Family::<QueueStateLabels, Gauge>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            durations.clone(),
        );
        registry.register(
            "logins",
            "Password login attempts by outcome",
            logins.clone(),
        );
        registry.register(
            "argon2_queue_depth",
            "Password checks waiting for a hashing thread",
            argon2_queue.clone(),
        );
        registry.register(
            "password_hashes",
            "argon2 computations run (password hashes and verifies, dummy ones included)",
            password_hashes.clone(),
        );
        registry.register(
            "token_checks_remembered",
            "1 while bearer checks may be answered from this instance's memory (always without \
             Redis; with Redis, while the revocation feed is heard), else 0",
            token_checks_remembered.clone(),
        );
        registry.register(
            "backchannel_logouts",
            "Back-channel logout tokens by state: queued (to be sent or retried) and dead \
             (every attempt failed; kept 30 days)",
            backchannel_logouts.clone(),
        );
        Self {
            registry,
            requests,
            durations,
            logins,
            argon2_queue,
            password_hashes,
            token_checks_remembered,
            backchannel_logouts,
        }
    }

    pub fn login(&self, outcome: LoginOutcome) {
        let outcome = match outcome {
            LoginOutcome::Success => "success",
            LoginOutcome::WrongCredentials => "wrong_credentials",
            LoginOutcome::Busy => "busy",
            LoginOutcome::Error => "error",
        };
        self.logins.get_or_create(&OutcomeLabels { outcome }).inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the database answers within two seconds.
async fn readyz(State(state): State<AppState>) -> Response {
    match tokio::time::timeout(Duration::from_secs(2), state.ready()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready").into_response(),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "readiness: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response()
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database timed out").into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let metrics = &state.metrics;
    metrics
        .argon2_queue
        .set(state.accounts.hasher().queue_depth() as i64);
    // The hasher counts; the counter shows its total (it never goes down).
    metrics.password_hashes.inner().store(
        state.accounts.hasher().computed(),
        std::sync::atomic::Ordering::Relaxed,
    );
    metrics
        .token_checks_remembered
        .set(i64::from(state.provider.remembers_token_checks()));
    // Read from SQL (shared by every instance); left as last seen when it does not answer.
    if let Ok(Ok(counts)) =
        tokio::time::timeout(Duration::from_secs(1), state.provider.logout_counts()).await
    {
        for (state, n) in [("queued", counts.queued), ("dead", counts.dead)] {
            metrics
                .backchannel_logouts
                .get_or_create(&QueueStateLabels { state })
                .set(n);
        }
    }
    let mut body = String::new();
    if encode(&mut body, &metrics.registry).is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// The method as a label: the methods of HTTP that routes use, every other one `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Counts every request by its route template (not its path) and its method folded to a
/// fixed set, so that the label sets stay bounded whatever clients send.
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    metrics
        .durations
        .get_or_create(&RouteLabels {
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .get_or_create(&RequestLabels {
            route,
            method,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_fold_into_other() {
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        assert_eq!(method_label(&Method::TRACE), "other");
        assert_eq!(
            method_label(&Method::from_bytes(b"FOOBAR").unwrap()),
            "other"
        );
    }
}
