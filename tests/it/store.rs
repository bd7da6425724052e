//! The store conformance suite: the same assertions on SQLite and PostgreSQL, one file per
//! store trait (`store/*.rs`); `store/coverage.rs` fails when a store method is never called.

use std::sync::Arc;

use gotthard::accounts::NewUser;
use gotthard::audit::{Action, ActivityEvent, ClientInfo};
use gotthard::store::{Store, connect};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::support::databases;

mod accounts;
mod activity;
mod organizations;
mod sessions;

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc().replace_nanosecond(0).unwrap()
}

fn new_user(email: &str, at: OffsetDateTime) -> NewUser {
    NewUser {
        id: Uuid::now_v7(),
        email: email.to_string(),
        name: "Ada".to_string(),
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_string()),
        is_admin: false,
        lockout_threshold: 10,
        created_at: at,
    }
}

fn event(user: Uuid, action: Action, at: OffsetDateTime) -> ActivityEvent {
    ActivityEvent::new(
        Some(user),
        action,
        &ClientInfo::new("192.0.2.7", "TestAgent/1.0"),
        serde_json::json!({ "k": "v" }),
        at,
    )
}

async fn each_store() -> Vec<(Arc<dyn Store>, crate::support::TestDb)> {
    let mut stores = Vec::new();
    for db in databases().await {
        let store = connect(&db.url, 5).await.unwrap();
        store.migrate().await.unwrap();
        // Migrations are idempotent: a second run is a no-op.
        store.migrate().await.unwrap();
        stores.push((store, db));
    }
    stores
}
