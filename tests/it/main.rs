//! Gotthard's integration tests: one binary, real server, real databases, real browser.

mod activity;
mod avatar;
mod browser;
mod cli;
mod client_activity;
mod data_at_rest;
mod dns;
mod domains;
mod entra;
mod hostile;
mod lockout;
mod login;
mod me;
mod oidc;
mod ops;
mod outage;
mod redis;
mod sessions;
mod setup;
mod smtp;
mod sso;
mod store;
mod support;
