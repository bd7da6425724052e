//! Who is asking: the client's address (behind a trusted proxy, from `X-Forwarded-For`) and
//! its User-Agent, as every adapter records them.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

use crate::AppState;
use crate::audit::ClientInfo;

/// The client's address (behind a trusted proxy, from `X-Forwarded-For`) and User-Agent.
pub fn client_info(parts: &Parts, state: &AppState) -> ClientInfo {
    let ip = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| {
            client_ip(
                addr.ip(),
                &parts.headers,
                &state.config.http.trusted_proxies,
            )
            .to_string()
        })
        .unwrap_or_else(|| "unknown".to_string());
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    ClientInfo::new(ip, user_agent)
}

/// The client alone, for endpoints that need no page (the token and revocation endpoints):
/// no language negotiated, no cookie read.
impl FromRequestParts<AppState> for ClientInfo {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        Ok(client_info(parts, state))
    }
}

/// The client's address: the peer, or — when the peer is a trusted proxy — the rightmost
/// address of `X-Forwarded-For` that is not itself a trusted proxy.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|hop| hop.trim().parse().ok())
        .collect();
    hops.iter()
        .rev()
        .find(|ip| !trusted.contains(ip))
        .or(hops.first())
        .copied()
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "6.6.6.6, 203.0.113.9".parse().unwrap());
        assert_eq!(client_ip(proxy, &headers, &[]), proxy, "untrusted: ignored");
        assert_eq!(
            client_ip(proxy, &headers, &[proxy]),
            "203.0.113.9".parse::<IpAddr>().unwrap(),
            "the rightmost hop the proxy saw, not what the client claims first"
        );
    }
}
