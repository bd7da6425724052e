//! The HTTP kit the adapters share (`web`, `api`, `oidc::http`, `ops`): who the client is,
//! the signed-in browser and its session cookie, CSRF, the strict form extractor, the `next`
//! a sign-in form follows, the rate limits, page rendering (templates, `PageContext`), the
//! error answers (pages, problem details), the activity filters of a query string, and the
//! OAuth parameters (the authorization request a sign-in form resumes).
//! The adapters import it and never one another; it imports services and what lies below
//! them, never an adapter.

mod activity_query;
mod client;
pub mod csrf;
mod error_pages;
mod forms;
pub mod next_path;
mod oauth;
mod pages;
mod problem;
pub mod rate_limit;
mod session;

pub use activity_query::{ActivityQuery, BadParameter};
pub use client::{client_info, client_ip};
pub use error_pages::error_pages;
pub use forms::{CsrfOnly, HtmlForm};
pub use oauth::{ResumedRequest, csp_allowing, parse_pairs};
pub use pages::{PageContext, Pages};
pub use problem::Problem;
pub use session::{SESSION_COOKIE, SignedIn};

/// How a sign-in ended, as the pages that sign in report it to the metrics (`ops`).
#[derive(Clone, Copy, Debug)]
pub enum LoginOutcome {
    Success,
    WrongCredentials,
    Busy,
    Error,
}
