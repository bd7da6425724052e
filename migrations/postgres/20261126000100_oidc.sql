-- OpenID Connect provider: clients, authorizations (token families), codes, refresh tokens,
-- consents, revoked access tokens and the back-channel logout queue. Secrets (client secrets,
-- codes, refresh tokens) are stored only as SHA-256 digests.

CREATE TABLE oauth_clients (
    id                         TEXT PRIMARY KEY,            -- the client_id relying parties use
    name                       TEXT NOT NULL,               -- shown on consent, activity "product"
    secret_hash                BYTEA,                        -- NULL for public clients
    auth_method                TEXT NOT NULL CHECK (auth_method IN
                                   ('client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none')),
    jwks                       TEXT,                        -- JWK Set for private_key_jwt
    redirect_uris              TEXT NOT NULL DEFAULT '[]',  -- JSON array, exact match
    post_logout_redirect_uris  TEXT NOT NULL DEFAULT '[]',
    backchannel_logout_uri     TEXT,
    first_party                BOOLEAN NOT NULL DEFAULT FALSE,
    require_pkce               BOOLEAN NOT NULL DEFAULT TRUE,
    id_token_alg               TEXT NOT NULL DEFAULT 'RS256' CHECK (id_token_alg IN ('RS256', 'ES256', 'EdDSA')),
    created_at                 TIMESTAMPTZ NOT NULL
);

-- One authorization: what a code redemption (or client credentials) started. Its refresh
-- tokens form one family; revoking the grant stops all of them and its access tokens.
CREATE TABLE oauth_grants (
    id              UUID PRIMARY KEY,
    client_id       TEXT NOT NULL REFERENCES oauth_clients(id) ON DELETE CASCADE,
    user_id         UUID REFERENCES users(id) ON DELETE CASCADE,
    session_id      UUID,                                   -- no FK: pruning a session keeps the revocation
    scope           TEXT NOT NULL,
    auth_time       TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL,
    revoked_at      TIMESTAMPTZ,
    revoked_reason  TEXT
);
CREATE INDEX oauth_grants_session ON oauth_grants (session_id);
CREATE INDEX oauth_grants_user_client ON oauth_grants (user_id, client_id);

CREATE TABLE oauth_codes (
    code_hash       BYTEA PRIMARY KEY,
    client_id       TEXT NOT NULL REFERENCES oauth_clients(id) ON DELETE CASCADE,
    user_id         UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    session_id      UUID NOT NULL,
    redirect_uri    TEXT NOT NULL,
    scope           TEXT NOT NULL,
    nonce           TEXT,
    code_challenge  TEXT,
    auth_time       TIMESTAMPTZ NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    expires_at      TIMESTAMPTZ NOT NULL,
    grant_id        UUID                                    -- set by the first redemption
);

CREATE TABLE oauth_refresh_tokens (
    token_hash  BYTEA PRIMARY KEY,
    grant_id    UUID NOT NULL REFERENCES oauth_grants(id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    rotated_at  TIMESTAMPTZ
);
CREATE INDEX oauth_refresh_grant ON oauth_refresh_tokens (grant_id);

-- Access tokens revoked one by one (RFC 7009) and client assertions already seen, until expiry.
CREATE TABLE oauth_revoked_jti (
    jti         TEXT PRIMARY KEY,
    expires_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE oauth_consents (
    user_id     UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id   TEXT NOT NULL REFERENCES oauth_clients(id) ON DELETE CASCADE,
    scope       TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

-- Logout tokens to send (OIDC Back-Channel Logout), written with the session's end.
CREATE TABLE backchannel_outbox (
    id               UUID PRIMARY KEY,
    client_id        TEXT NOT NULL REFERENCES oauth_clients(id) ON DELETE CASCADE,
    subject          TEXT NOT NULL,
    session_id       TEXT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ NOT NULL,
    sent_at          TIMESTAMPTZ,
    last_error       TEXT
);
CREATE INDEX backchannel_outbox_due ON backchannel_outbox (next_attempt_at) WHERE sent_at IS NULL;
