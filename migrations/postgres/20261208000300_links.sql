-- Mailed links: the forgotten password and the verified change of the login e-mail address.
-- Only SHA-256 digests of the links' tokens are stored.

-- Whether the owner proved to read mail at the address (opened a link mailed to it). Every
-- existing address starts unverified: none was ever checked by mail, and claims said so.
ALTER TABLE users ADD COLUMN email_verified BOOLEAN NOT NULL DEFAULT FALSE;

-- Every mail of the forgotten-password form: a link to set a new password ('link', single
-- use), or the notice to an SSO-only account that carries no link ('sso'). The rows of the
-- last hour are the per-account limit on those mails.
CREATE TABLE password_resets (
    token_hash  BYTEA PRIMARY KEY,
    user_id     UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL DEFAULT 'link' CHECK (kind IN ('link', 'sso')),
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ
);
CREATE INDEX password_resets_user ON password_resets (user_id, created_at);

-- A change of the login address: 'confirm' links go to the new address, 'undo' links to the
-- old one once the change is made.
CREATE TABLE email_changes (
    token_hash  BYTEA PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('confirm', 'undo')),
    user_id     UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    old_email   TEXT NOT NULL,
    new_email   TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ
);
CREATE INDEX email_changes_user ON email_changes (user_id, kind);
-- Pruning walks both tables from the oldest expiry.
CREATE INDEX password_resets_expiry ON password_resets (expires_at);
CREATE INDEX email_changes_expiry ON email_changes (expires_at);
