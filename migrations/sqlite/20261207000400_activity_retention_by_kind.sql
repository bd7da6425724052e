-- Retention per kind: machine clients' own events (tokens issued without a user, failed
-- client authentication) and all the rest. Each kind is pruned oldest first from its own
-- partial index, so neither batch walks over the other kind's rows. The conditions are
-- repeated word for word by the pruning statements (src/store/activity.rs).
DROP INDEX activity_time;
CREATE INDEX activity_account_time ON activity_events (created_at)
    WHERE (user_id IS NOT NULL OR action NOT IN ('token.issued', 'client.auth_failed'));
CREATE INDEX activity_machine_time ON activity_events (created_at)
    WHERE (user_id IS NULL AND action IN ('token.issued', 'client.auth_failed'));
