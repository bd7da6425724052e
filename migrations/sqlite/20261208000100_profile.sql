-- The profile (issue 17): first and last name instead of one name field, the reader's time
-- zone, and phone numbers. `name` stays as the display name ("given family"), written with
-- the two parts, so lists and mails keep reading one column.
ALTER TABLE users ADD COLUMN given_name TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN family_name TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN time_zone TEXT;             -- IANA name; NULL: the browser's, else UTC
-- Existing names split at the first space: "Ada King Lovelace" gives "Ada" and "King
-- Lovelace" (a second given name is rarer than a compound family name); one word is a
-- given name.
UPDATE users SET
    given_name = CASE WHEN instr(trim(name), ' ') > 0
                      THEN substr(trim(name), 1, instr(trim(name), ' ') - 1) ELSE trim(name) END,
    family_name = CASE WHEN instr(trim(name), ' ') > 0
                       THEN trim(substr(trim(name), instr(trim(name), ' ') + 1)) ELSE '' END;

-- Phone numbers in E.164, each with the owner's label. Verification needs an SMS provider
-- this product does not have yet: verified_at stays NULL, and no claim releases them.
CREATE TABLE phone_numbers (
    id           BLOB PRIMARY KEY,
    user_id      BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    label        TEXT NOT NULL,
    number       TEXT NOT NULL,                       -- E.164, e.g. +41446681800
    verified_at  TEXT,
    created_at   TEXT NOT NULL,
    UNIQUE (user_id, number)
);
