//! The OpenID Connect provider.

mod model;

pub use model::*;
