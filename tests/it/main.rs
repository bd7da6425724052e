//! Gotthard's integration tests: one binary, real server, real databases, real browser.

mod activity;
mod browser;
mod cli;
mod client_activity;
mod console;
mod data_at_rest;
mod dns;
mod domains;
mod email_change;
mod entra;
mod hostile;
mod lockout;
mod login;
mod me;
mod oidc;
mod ops;
mod outage;
mod profile;
mod recovery;
mod redis;
mod sessions;
mod setup;
mod smtp;
mod sso;
mod store;
mod support;
