//! The DNS side of domain verification: looks up `_gotthard-challenge.<domain>` TXT records
//! (hickory-resolver), each lookup bounded in time, nothing cached between checks.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::ProtoErrorKind;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::{Resolver, TokioResolver};

/// The label under which an organization publishes its challenge.
pub const CHALLENGE_LABEL: &str = "_gotthard-challenge";

/// What DNS said about a challenge record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxtAnswer {
    /// A TXT record at the name holds the expected value.
    Found,
    /// The name does not exist, has no TXT record, or none holds the value: a definite "no".
    Missing,
    /// No answer (timeout, refused, server failure): neither yes nor no.
    Unavailable,
}

/// Looks up challenge records through the configured DNS server (or the system's).
pub struct DnsChallenges {
    resolver: Option<TokioResolver>,
    timeout: Duration,
}

impl DnsChallenges {
    /// `server`: one DNS server to ask (`None`: the servers of `/etc/resolv.conf`).
    pub fn new(server: Option<SocketAddr>, timeout: Duration) -> Self {
        let system = || match hickory_resolver::system_conf::read_system_conf() {
            Ok(found) => Some(found),
            Err(err) => {
                tracing::warn!(error = %err, "no DNS configuration: domains cannot be verified");
                None
            }
        };
        let found = match server {
            Some(addr) => Some((
                ResolverConfig::from_parts(
                    None,
                    vec![],
                    NameServerConfigGroup::from_ips_clear(&[addr.ip()], addr.port(), true),
                ),
                ResolverOpts::default(),
            )),
            None => system(),
        };
        let resolver = found.map(|(config, mut options)| {
            options.timeout = timeout;
            options.attempts = 1;
            // Each check asks again: a record just published (or withdrawn) counts at once.
            options.positive_max_ttl = Some(Duration::ZERO);
            options.negative_max_ttl = Some(Duration::ZERO);
            Resolver::builder_with_config(config, TokioConnectionProvider::default())
                .with_options(options)
                .build()
        });
        Self { resolver, timeout }
    }

    /// Whether `domain` publishes `expected` under [`CHALLENGE_LABEL`].
    pub async fn check(&self, domain: &str, expected: &str) -> TxtAnswer {
        let Some(resolver) = &self.resolver else {
            return TxtAnswer::Unavailable;
        };
        let name = format!("{CHALLENGE_LABEL}.{domain}.");
        // The resolver's own timeout is per server; this one bounds the whole lookup.
        let lookup = tokio::time::timeout(self.timeout * 2, resolver.txt_lookup(name)).await;
        match lookup {
            Err(_) => TxtAnswer::Unavailable,
            Ok(Ok(records)) => {
                let holds = records.iter().any(|txt| {
                    // A long record is split into strings of 255 bytes: they join.
                    let joined: Vec<u8> = txt.txt_data().iter().flatten().copied().collect();
                    joined == expected.as_bytes()
                });
                if holds {
                    TxtAnswer::Found
                } else {
                    TxtAnswer::Missing
                }
            }
            Ok(Err(err)) => match err.proto().map(|p| p.kind()) {
                Some(ProtoErrorKind::NoRecordsFound { response_code, .. })
                    if matches!(
                        *response_code,
                        ResponseCode::NXDomain | ResponseCode::NoError
                    ) =>
                {
                    TxtAnswer::Missing
                }
                _ => {
                    tracing::info!(error = %err, "DNS lookup of a domain challenge failed");
                    TxtAnswer::Unavailable
                }
            },
        }
    }
}
