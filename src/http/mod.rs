//! The HTTP kit the adapters share (`web`, `api`, `oidc::http`, `ops`): who the client is,
//! the signed-in browser and its session cookie, CSRF, the strict form extractor, the `next`
//! a sign-in form follows, the rate limits, and page rendering (templates, `PageContext`).
//! The adapters import it and never one another; it imports services and what lies below
//! them, never an adapter.

mod client;
pub mod csrf;
mod forms;
pub mod next_path;
mod pages;
pub mod rate_limit;
mod session;

pub use client::{client_info, client_ip};
pub use forms::{CsrfOnly, HtmlForm};
pub use pages::{PageContext, Pages, translator_for};
pub use session::{SESSION_COOKIE, SignedIn};
