//! The OpenID Connect provider: clients, the authorization and token endpoints, token
//! checks for userinfo, introspection and the account API, revocation and logout.

pub mod claims;
pub mod http;
mod model;
mod provider;

pub use claims::AccessClaims;
pub use model::*;
pub use provider::*;
