//! The openidconnect plumbing towards one Entra ID tenant: the claims Entra adds (`tid`,
//! `oid`, `nbf`), discovery of `{authority}/{tenant}/v2.0/.well-known/openid-configuration`
//! (cached; fetched again when a token names a key the cached JWKS lacks), and the full
//! validation of an ID token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreErrorResponseType, CoreGenderClaim, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreProviderMetadata,
    CoreRevocableToken, CoreRevocationErrorResponse, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, Client, EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet,
    IdTokenClaims, IdTokenFields, IdTokenVerifier, IssuerUrl, StandardErrorResponse,
    StandardTokenResponse,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::outbound::{AllowedHosts, Outbound};

/// What Entra ID puts in its tokens beyond the standard claims.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EntraClaims {
    /// The tenant that issued the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<String>,
    /// The user's immutable object id in that tenant: with `tid`, the identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
}

impl AdditionalClaims for EntraClaims {}

pub type EntraIdTokenFields = IdTokenFields<
    EntraClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
pub type EntraTokenResponse = StandardTokenResponse<EntraIdTokenFields, CoreTokenType>;
pub type EntraIdTokenClaims = IdTokenClaims<EntraClaims, CoreGenderClaim>;

/// A client built from a tenant's discovery document.
pub type EntraClient = Client<
    EntraClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    EntraTokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const LEEWAY: time::Duration = time::Duration::minutes(2);
/// How long a discovery document (with its keys) is used before it is fetched again.
const DISCOVERY_TTL: time::Duration = time::Duration::hours(1);
/// Timeout of each request to Entra ID.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(10);

/// Discovery documents per issuer, shared by the requests of this instance.
#[derive(Clone)]
pub struct Discovery {
    http: Outbound,
    cache: Arc<Mutex<HashMap<String, (CoreProviderMetadata, OffsetDateTime)>>>,
}

impl Discovery {
    /// Requests go to public addresses only (or `allowed` hosts), answers are read up to
    /// `body_limit` bytes, redirects are not followed.
    pub fn new(allowed: AllowedHosts, body_limit: usize) -> anyhow::Result<Self> {
        Ok(Self {
            http: Outbound::new(allowed, body_limit, UPSTREAM_TIMEOUT)?,
            cache: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    pub fn http(&self) -> &Outbound {
        &self.http
    }

    /// The provider metadata of `issuer` (`{authority}/{tenant}/v2.0`): the cached copy while
    /// it is fresh, unless `refresh`. The crate checks that the document names exactly this
    /// issuer, so tokens of another tenant cannot pass the issuer check.
    pub async fn metadata(
        &self,
        issuer: &str,
        refresh: bool,
        now: OffsetDateTime,
    ) -> Result<CoreProviderMetadata, String> {
        if !refresh && let Some(cached) = self.cached(issuer, now) {
            return Ok(cached);
        }
        let url = IssuerUrl::new(issuer.to_string()).map_err(|e| e.to_string())?;
        let metadata = CoreProviderMetadata::discover_async(url, &self.http)
            .await
            .map_err(|e| format!("discovery of {issuer} failed: {e}"))?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(issuer.to_string(), (metadata.clone(), now));
        }
        Ok(metadata)
    }

    fn cached(&self, issuer: &str, now: OffsetDateTime) -> Option<CoreProviderMetadata> {
        let cache = self.cache.lock().ok()?;
        let (metadata, fetched) = cache.get(issuer)?;
        (now - *fetched < DISCOVERY_TTL).then(|| metadata.clone())
    }
}

/// The verifier of one ID token: RS256 only (never the client secret as an HMAC key), this
/// issuer, this client id as audience, `exp` and `iat` against `now` with [`LEEWAY`].
pub fn verifier(
    metadata: &CoreProviderMetadata,
    client_id: &str,
    now: OffsetDateTime,
) -> IdTokenVerifier<'static, CoreJsonWebKey> {
    let exp_now = to_chrono(now - LEEWAY);
    let latest_iat = to_chrono(now + LEEWAY);
    IdTokenVerifier::new_public_client(
        openidconnect::ClientId::new(client_id.to_string()),
        metadata.issuer().clone(),
        metadata.jwks().clone(),
    )
    .set_allowed_algs([CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256])
    // Entra sends one audience; any other one is not trusted (OIDC Core §3.1.3.7 step 3).
    .set_other_audience_verifier_fn(|_| false)
    .set_time_fn(move || exp_now)
    .set_issue_time_verifier_fn(move |iat| {
        if iat <= latest_iat {
            Ok(())
        } else {
            Err("issued in the future".to_string())
        }
    })
}

fn to_chrono(t: OffsetDateTime) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(t.unix_timestamp(), 0).unwrap_or_default()
}
