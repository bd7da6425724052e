-- Avatars: the re-encoded images of each user's uploaded picture (JPEG, one column per served
-- size), found by their content key. The user row holds only the key, so that reading users
-- never reads image bytes; no avatar (NULL) shows the initials image.
CREATE TABLE avatars (
    user_id     UUID PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    key         TEXT NOT NULL UNIQUE,               -- base64url of a SHA-256 over the user id and images
    image_64    BYTEA NOT NULL,
    image_128   BYTEA NOT NULL,
    image_256   BYTEA NOT NULL,
    image_512   BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

ALTER TABLE users ADD COLUMN avatar_key TEXT;
