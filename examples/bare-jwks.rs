//! The machine's ceiling for discovery and JWKS, for `scripts/bench`: a bare axum handler that
//! answers every GET with the same bytes (Gotthard's JWKS document, read from a file), on the
//! same tokio runtime shape as the server. No middleware, no state, no database.
//!
//!   BODY_FILE=jwks.json BIND=127.0.0.1:9901 target/release/examples/bare-jwks

use axum::Router;
use axum::http::header;
use axum::routing::get;
use bytes::Bytes;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let path = std::env::var("BODY_FILE").map_err(|_| anyhow::anyhow!("set BODY_FILE"))?;
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:9901".into());
    let body = Bytes::from(std::fs::read(&path)?);
    let app = Router::new().fallback(get(move || {
        let body = body.clone();
        async move { ([(header::CONTENT_TYPE, "application/json")], body) }
    }));
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
