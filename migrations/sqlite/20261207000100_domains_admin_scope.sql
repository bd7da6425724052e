-- Issue 14 (security review), items 1 and 2.
--
-- An organization's e-mail domains are its own, no longer its SSO connection's, and each must
-- be proven by a DNS TXT record before it routes or blocks anyone. A domain may be listed by
-- several organizations while unverified (so that squatting blocks nobody); once verified it
-- is one organization's only. Domains listed before this migration start unverified.
CREATE TABLE org_domains (
    org_id           BLOB NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    domain           TEXT NOT NULL,                   -- lower-case
    verified_at      TEXT,                            -- NULL: listed, proves nothing yet
    verified_by      TEXT CHECK (verified_by IN ('dns', 'operator')),
    last_checked_at  TEXT,                            -- last DNS answer (found or missing)
    missing_checks   INTEGER NOT NULL DEFAULT 0,      -- consecutive answers without the record
    created_at       TEXT NOT NULL,
    PRIMARY KEY (org_id, domain)
);
CREATE UNIQUE INDEX org_domains_verified ON org_domains (domain) WHERE verified_at IS NOT NULL;
CREATE INDEX org_domains_recheck ON org_domains (last_checked_at) WHERE verified_by = 'dns';
INSERT INTO org_domains (org_id, domain, created_at)
    SELECT org_id, domain, strftime('%Y-%m-%dT%H:%M:%fZ', 'now') FROM sso_domains;
DROP TABLE sso_domains;

-- The per-organization value of `_gotthard-challenge.<domain>` TXT records (public, not a secret).
CREATE TABLE org_domain_challenges (
    org_id      BLOB PRIMARY KEY REFERENCES organizations(id) ON DELETE CASCADE,
    token       TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

-- Clients registered for the `admin` scope: the only ones that may ask for it, and never
-- without the user's consent.
ALTER TABLE oauth_clients ADD COLUMN admin_scope INTEGER NOT NULL DEFAULT 0;

-- A relying app's prompt=login / max_age, passed on to Entra ID with the sign-in and checked
-- against the auth_time that comes back (item 3).
ALTER TABLE sso_flows ADD COLUMN reauth_prompt INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sso_flows ADD COLUMN reauth_max_age BIGINT;
