//! The OpenID Connect provider: clients, the authorization and token endpoints, token
//! checks for userinfo, introspection and the account API, revocation and logout.

mod checks;
pub mod claims;
pub mod http;
mod issue_log;
mod model;
mod provider;

pub use checks::CacheScope;
pub use claims::AccessClaims;
pub use model::*;
pub use provider::*;
