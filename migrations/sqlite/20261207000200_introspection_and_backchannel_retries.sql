-- Resource servers: the clients whose access tokens a client may introspect (JSON array of
-- client ids). Without an entry, a client introspects only its own tokens.
ALTER TABLE oauth_clients ADD COLUMN introspect_for TEXT NOT NULL DEFAULT '[]';

-- Back-channel logouts that failed oidc.backchannel_max_attempts times: no longer retried,
-- kept (30 days) for the operator to see (gotthard_backchannel_logouts{state="dead"}).
ALTER TABLE backchannel_outbox ADD COLUMN dead_at TEXT;
DROP INDEX backchannel_outbox_due;
CREATE INDEX backchannel_outbox_due ON backchannel_outbox (next_attempt_at)
    WHERE sent_at IS NULL AND dead_at IS NULL;
