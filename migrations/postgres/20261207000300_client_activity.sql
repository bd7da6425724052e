-- Events that concern an OAuth client (tokens issued to it, revoked by it, consents to it,
-- its failed authentications) carry its id: the operator's view of a client reads them by
-- this column, not by the product name, which two clients may share.
ALTER TABLE activity_events ADD COLUMN client_id TEXT;

-- Events recorded before the column named their client only in the details (always a JSON
-- object written by Gotthard; the LIKE skips the cast for every other row).
UPDATE activity_events SET client_id = details::jsonb ->> 'client_id'
    WHERE action IN ('token.issued', 'token.revoked', 'token.reuse_detected',
                     'consent.granted', 'consent.revoked')
      AND details LIKE '%"client_id"%';

CREATE INDEX activity_client_time ON activity_events (client_id, created_at DESC, id DESC)
    WHERE client_id IS NOT NULL;

-- Machine tokens have no user: the per-user indexes skip them (three index writes fewer per token,
-- the client's one added). Every query that reads them says `user_id = $1`, a strict comparison
-- that implies the predicate, so the planner still uses them (and so does the cascade of a
-- user's deletion).
DROP INDEX activity_user_time;
DROP INDEX activity_user_action_time;
DROP INDEX activity_user_product_time;
CREATE INDEX activity_user_time ON activity_events (user_id, created_at DESC, id DESC)
    WHERE user_id IS NOT NULL;
CREATE INDEX activity_user_action_time ON activity_events (user_id, action, created_at DESC, id DESC)
    WHERE user_id IS NOT NULL;
CREATE INDEX activity_user_product_time ON activity_events (user_id, product, created_at DESC, id DESC)
    WHERE user_id IS NOT NULL;
