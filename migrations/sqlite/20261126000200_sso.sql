-- Sign in with SSO (issue 7): the state of the round trips to Entra ID, in SQL so that the
-- callback may reach any instance. Both are single-use (deleted when used) and short-lived.

-- A sign-in sent to Entra ID, found again by the digest of its `state` parameter.
CREATE TABLE sso_flows (
    state_hash    BLOB PRIMARY KEY,                  -- SHA-256 of `state`
    org_id        BLOB NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    browser_hash  BLOB NOT NULL,                     -- SHA-256 of the CSRF cookie of the browser that began it
    nonce         TEXT NOT NULL,                     -- not a secret: it comes back inside the ID token
    next          TEXT,                              -- the authorization request to resume (OIDC), if any
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL
);
CREATE INDEX sso_flows_expiry ON sso_flows (expires_at);

-- An Entra identity whose address is that of an existing account: never linked silently; the
-- link is recorded once the owner has typed the account's password in the same browser.
CREATE TABLE sso_pending_links (
    token_hash    BLOB PRIMARY KEY,                  -- SHA-256 of the token in the link form
    browser_hash  BLOB NOT NULL,
    tenant_id     TEXT NOT NULL,
    object_id     TEXT NOT NULL,
    user_id       BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    org_id        BLOB NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    next          TEXT,
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL
);
CREATE INDEX sso_pending_links_expiry ON sso_pending_links (expires_at);
CREATE INDEX federated_identities_user ON federated_identities (user_id);
