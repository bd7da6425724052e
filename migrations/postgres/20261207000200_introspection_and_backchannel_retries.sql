-- Resource servers: the clients whose access tokens a client may introspect (JSON array of
-- client ids). Without an entry, a client introspects only its own tokens.
ALTER TABLE oauth_clients ADD COLUMN introspect_for TEXT NOT NULL DEFAULT '[]';
