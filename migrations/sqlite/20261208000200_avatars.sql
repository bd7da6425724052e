-- Avatars: the re-encoded images of each user's uploaded picture (JPEG, one column per served
-- size), found by their content key. The user row holds only the key, so that reading users
-- never reads image bytes; no avatar (NULL) shows the initials image.
CREATE TABLE avatars (
    user_id     BLOB PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    key         TEXT NOT NULL UNIQUE,               -- base64url of a SHA-256 over the user id and images
    image_64    BLOB NOT NULL,
    image_128   BLOB NOT NULL,
    image_256   BLOB NOT NULL,
    image_512   BLOB NOT NULL,
    created_at  TEXT NOT NULL
);

ALTER TABLE users ADD COLUMN avatar_key TEXT;
