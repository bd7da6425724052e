//! Writing a batch of issued tokens (refresh tokens and their activity events), per backend:
//! the group commit's one transaction (`record_issues`).

use super::{IssueRecord, NewRefreshToken};
use crate::store::{PostgresStore, SqliteStore};

/// Two multi-row statements for a whole batch of issued tokens: the round trips, not the
/// rows, are what a batch costs.
impl SqliteStore {
    pub(in crate::store) async fn insert_issues(
        tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
        issues: &[IssueRecord],
    ) -> Result<(), sqlx::Error> {
        let refreshes: Vec<&NewRefreshToken> =
            issues.iter().filter_map(|(r, _)| r.as_ref()).collect();
        if !refreshes.is_empty() {
            let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO oauth_refresh_tokens (token_hash, grant_id, created_at, expires_at) ",
            );
            insert.push_values(refreshes, |mut row, r| {
                row.push_bind(r.digest.as_bytes().to_vec())
                    .push_bind(r.grant_id)
                    .push_bind(r.created_at)
                    .push_bind(r.expires_at);
            });
            insert.build().execute(&mut **tx).await?;
        }
        if !issues.is_empty() {
            let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO activity_events (id, user_id, actor_id, action, product, client_id, \
                 ip, user_agent, details, created_at) ",
            );
            insert.push_values(issues.iter().map(|(_, e)| e), |mut row, e| {
                row.push_bind(e.id)
                    .push_bind(e.user_id)
                    .push_bind(e.actor_id)
                    .push_bind(e.action.as_str())
                    .push_bind(e.product.as_str())
                    .push_bind(e.client_id.as_deref())
                    .push_bind(e.ip.as_str())
                    .push_bind(e.user_agent.as_str())
                    .push_bind(e.details.as_str())
                    .push_bind(e.created_at);
            });
            insert.build().execute(&mut **tx).await?;
        }
        Ok(())
    }
}

/// The same on PostgreSQL, as one statement text whatever the batch's size (arrays through
/// `UNNEST`): prepared once per connection. A `VALUES` list of n rows is a new statement for
/// each n, parsed and planned again whenever the size changes, which under load is always.
impl PostgresStore {
    pub(in crate::store) async fn insert_issues(
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        issues: &[IssueRecord],
    ) -> Result<(), sqlx::Error> {
        let refreshes: Vec<&NewRefreshToken> =
            issues.iter().filter_map(|(r, _)| r.as_ref()).collect();
        if !refreshes.is_empty() {
            sqlx::query(
                "INSERT INTO oauth_refresh_tokens (token_hash, grant_id, created_at, expires_at) \
                 SELECT * FROM UNNEST($1::bytea[], $2::uuid[], $3::timestamptz[], $4::timestamptz[])",
            )
            .bind(refreshes.iter().map(|r| r.digest.as_bytes().to_vec()).collect::<Vec<_>>())
            .bind(refreshes.iter().map(|r| r.grant_id).collect::<Vec<_>>())
            .bind(refreshes.iter().map(|r| r.created_at).collect::<Vec<_>>())
            .bind(refreshes.iter().map(|r| r.expires_at).collect::<Vec<_>>())
            .execute(&mut **tx)
            .await?;
        }
        if !issues.is_empty() {
            let events: Vec<_> = issues.iter().map(|(_, e)| e).collect();
            sqlx::query(
                "INSERT INTO activity_events (id, user_id, actor_id, action, product, client_id, \
                 ip, user_agent, details, created_at) \
                 SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], \
                 $6::text[], $7::text[], $8::text[], $9::text[], $10::timestamptz[])",
            )
            .bind(events.iter().map(|e| e.id).collect::<Vec<_>>())
            .bind(events.iter().map(|e| e.user_id).collect::<Vec<_>>())
            .bind(events.iter().map(|e| e.actor_id).collect::<Vec<_>>())
            .bind(events.iter().map(|e| e.action.as_str()).collect::<Vec<_>>())
            .bind(
                events
                    .iter()
                    .map(|e| e.product.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                events
                    .iter()
                    .map(|e| e.client_id.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(events.iter().map(|e| e.ip.as_str()).collect::<Vec<_>>())
            .bind(
                events
                    .iter()
                    .map(|e| e.user_agent.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                events
                    .iter()
                    .map(|e| e.details.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(events.iter().map(|e| e.created_at).collect::<Vec<_>>())
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }
}
