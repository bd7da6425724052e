//! Requests to servers that settings name (an organization's SSO authority): only to public
//! addresses unless an operator allowed the host, never following redirects, and with a
//! bound on how much of an answer is read. A leaf module: services and adapters both use it.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use openidconnect::{AsyncHttpClient, HttpRequest, HttpResponse};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether `ip` is reachable on the internet: not loopback, private, link-local, shared
/// (CGNAT), documentation, multicast, broadcast or unspecified — the addresses a request
/// forged through settings would use to reach this machine or its network (SSRF).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && v4.octets()[2] == 0)
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || first == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
        }
    }
}

/// The hosts an operator allowed although they are not public (`sso.authority_allow_hosts`).
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts(Arc<Vec<String>>);

impl AllowedHosts {
    pub fn new(hosts: &[String]) -> Self {
        Self(Arc::new(
            hosts
                .iter()
                .map(|h| h.trim().trim_end_matches('.').to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
        ))
    }

    pub fn contains(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        self.0.iter().any(|h| h == &host || h == bare)
    }

    /// Resolves `host` and keeps the addresses a request may go to: all of them for an
    /// allowed host, else only public ones. An error says why nothing is left.
    pub async fn addresses(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let found: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((bare, port))
                .await
                .map_err(|e| format!("{host} does not resolve: {e}"))?
                .collect(),
        };
        if self.contains(host) {
            return Ok(found);
        }
        let public: Vec<SocketAddr> = found.into_iter().filter(|a| is_public(a.ip())).collect();
        if public.is_empty() {
            return Err(format!(
                "{host} resolves to no public address (private, loopback and link-local \
                 addresses need `sso.authority_allow_hosts`)"
            ));
        }
        Ok(public)
    }
}

impl Resolve for AllowedHosts {
    fn resolve(&self, name: Name) -> Resolving {
        let allowed = self.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = allowed.addresses(&host, 0).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("refused: {0}")]
    Refused(String),
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
    #[error("request: {0}")]
    Request(#[from] reqwest::Error),
    #[error("answer: {0}")]
    Http(#[from] openidconnect::http::Error),
}

/// The HTTP client of requests to configured servers, for the `openidconnect` crate.
#[derive(Clone)]
pub struct Outbound {
    http: reqwest::Client,
    allowed: AllowedHosts,
    body_limit: usize,
}

impl Outbound {
    pub fn new(
        allowed: AllowedHosts,
        body_limit: usize,
        timeout: Duration,
    ) -> reqwest::Result<Self> {
        let http = reqwest::Client::builder()
            // Redirects are not followed: an answer must come from the configured server.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            // Host names resolve through the address policy (no DNS rebinding around it).
            .dns_resolver(Arc::new(allowed.clone()))
            .build()?;
        Ok(Self {
            http,
            allowed,
            body_limit,
        })
    }

    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, OutboundError> {
        let request: reqwest::Request = request.try_into()?;
        // Addresses written as such skip the resolver: checked here.
        if let Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) = request.url().host() {
            let host = request.url().host_str().unwrap_or_default().to_string();
            let port = request.url().port_or_known_default().unwrap_or(443);
            self.allowed
                .addresses(&host, port)
                .await
                .map_err(OutboundError::Refused)?;
        }
        let mut response = self.http.execute(request).await?;
        if response
            .content_length()
            .is_some_and(|n| n > self.body_limit as u64)
        {
            return Err(OutboundError::TooLarge(self.body_limit));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > self.body_limit {
                return Err(OutboundError::TooLarge(self.body_limit));
            }
            body.extend_from_slice(&chunk);
        }
        let mut builder = openidconnect::http::Response::builder().status(response.status());
        for (name, value) in response.headers() {
            builder = builder.header(name, value);
        }
        Ok(builder.body(body)?)
    }
}

impl<'c> AsyncHttpClient<'c> for Outbound {
    type Error = OutboundError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, OutboundError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server on loopback answering every request with a body of `size` bytes.
    async fn server(size: usize) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut request = vec![0u8; 4096];
                let _ = socket.read(&mut request).await;
                let head = "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n";
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(&vec![b'x'; size]).await;
            }
        });
        base
    }

    fn get(url: &str) -> HttpRequest {
        openidconnect::http::Request::get(url)
            .body(Vec::new())
            .unwrap()
    }

    #[tokio::test]
    async fn answers_are_bounded_and_loopback_needs_the_operators_word() {
        let allowed = AllowedHosts::new(&["127.0.0.1".into()]);
        let outbound = Outbound::new(allowed, 8192, Duration::from_secs(5)).unwrap();
        let small = server(1000).await;
        let answer = outbound.call(get(&small)).await.unwrap();
        assert_eq!(answer.body().len(), 1000);
        let large = server(1 << 20).await;
        let refused = outbound.call(get(&large)).await.unwrap_err();
        assert!(
            matches!(refused, OutboundError::TooLarge(8192)),
            "{refused}"
        );
        let strict = Outbound::new(AllowedHosts::default(), 8192, Duration::from_secs(5)).unwrap();
        let refused = strict.call(get(&small)).await.unwrap_err();
        assert!(matches!(refused, OutboundError::Refused(_)), "{refused}");
        let by_name = small.replace("127.0.0.1", "localhost");
        assert!(strict.call(get(&by_name)).await.is_err());
    }

    #[test]
    fn only_public_addresses_pass() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["20.190.128.1", "2603:1026::1"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
        let allowed = AllowedHosts::new(&["Login.Internal.example".into(), "::1".into()]);
        assert!(allowed.contains("login.internal.example."));
        assert!(allowed.contains("[::1]"));
        assert!(!allowed.contains("other.example"));
    }
}
